// Fast path "early start", client side: a one-task submit goes straight to a worker (StartTask).
//
// Purpose  A submit-result loop (W3) takes two network hops instead of three: the worker that
//          pushed the last result starts the next task at once, and the scheduler, told a
//          little later, places the task where it already runs.
// Inputs   A one-task submit (ClientCore::submit) that qualifies (may_start_early, below); the
//          target, taken in turn from the workers that pushed a result here (EarlyTargets,
//          below: on_pushed in pushed_results.cpp teaches it), or none when the task is left to
//          the scheduler to find more workers; the workers' answers on early_sock_: ResultPushed (early) or NotStarted.
// Action   early_start_for marks the spec (early_nonce, early_on) and builds the StartTask;
//          submit holds the SubmitTasks in outgoing_ (at most kEarlyHoldMs, outgoing.hpp) and
//          start_early sends the StartTask on early_sock_. The answer is taken by the thread
//          spinning for that result (spin_wait.cpp) or by the I/O thread (take_early_replies):
//          a ResultPushed goes to on_pushed, whose receipt is held right after the submit; a
//          NotStarted makes the held submit go at once (flush_outgoing(true)).
// Caveats  The scheduler stays in charge: it decides where the task lives, and a worker that did
//          not start it simply runs it when placed. A StartTask that cannot go (early_sock_ not
//          connected yet, a worker that died) is not sent: its submit is unmarked and sent at
//          once; unless its connection was only just asked for, the worker is not asked again
//          until it pushes a result. Off with FastPaths::early_start (or push_results or
//          run_on_loop, which it needs): then no StartTask is ever sent and submit sends every
//          SubmitTasks at once.
#include <algorithm>

#include "client/connection.hpp"

namespace dtask::detail {

using namespace protocol;

bool may_start_early(const FastPaths& fast, const TaskSpec& spec, const EarlyStartContext& ctx) {
  // The worker runs a StartTask only on its loop thread: with run_on_loop off it declines every
  // one, and each round trip would pay for the decline (W3 p50 ~420 µs against ~300 with none).
  if (!fast.early_start || !fast.push_results || !fast.run_on_loop) return false;
  if (!ctx.target_known || ctx.previous_pending || ctx.key_known) return false;
  if (!spec.push_result || !spec.workers.empty() || !spec.resources.empty()) return false;
  return std::all_of(spec.args.begin(), spec.args.end(), [](const ClientArg& a) { return a.kind == ClientArg::value; });
}

void EarlyTargets::learn(WorkerId worker, const std::string& address) {
  for (auto& t : known_) {
    if (t.address == address) {
      t.worker = worker;  // the same address again: a restarted worker has a new id
      return;
    }
  }
  if (known_.size() < kMaxTargets) known_.push_back({worker, address});
}

void EarlyTargets::forget(const std::string& address) {
  auto it = std::find_if(known_.begin(), known_.end(), [&](const Target& t) { return t.address == address; });
  if (it != known_.end()) known_.erase(it);
}

void EarlyTargets::declined(const std::string& address) {
  if (turn_ < known_.size() && known_[turn_].address == address) in_run_ = 0;
}

const EarlyTargets::Target* EarlyTargets::next() {
  if (explored_) {
    // The explored task has come back (one early start at a time): did it find a new worker?
    explored_ = false;
    if (known_.size() > known_before_) {
      gap_ = run_;
      turn_ = known_.size() - 1;  // the newcomer gets the next run: it has just run a task
      in_run_ = run_;
    } else {
      gap_ = std::min(gap_ * 2, std::max(kMaxGap, run_));
    }
  }
  if (known_.empty()) return nullptr;
  if (since_explore_ >= gap_) {
    since_explore_ = 0;
    explored_ = true;
    known_before_ = known_.size();
    return nullptr;
  }
  ++since_explore_;
  if (in_run_ == 0 || turn_ >= known_.size()) {
    turn_ = (turn_ + 1) % known_.size();
    in_run_ = run_;
  }
  --in_run_;
  return &known_[turn_];
}

std::optional<ClientCore::EarlyStart> ClientCore::early_start_for(TaskSpec& spec) {
  EarlyStartContext ctx;
  ctx.target_known = !early_targets_.empty();
  if (!early_key_.empty()) {
    auto it = states_.find(early_key_);
    ctx.previous_pending = it != states_.end() && it->second->status == FutureStatus::pending;
  }
  ctx.key_known = states_.count(spec.key) > 0;
  if (!may_start_early(opt_.fast_paths, spec, ctx)) return {};
  const EarlyTargets::Target* target = early_targets_.next();
  if (!target) return {};  // left to the scheduler: it explores (EarlyTargets)
  EarlyStart e;
  StartTask& m = e.message;
  m.nonce = next_nonce_;
  next_nonce_ += 2;  // odd, so never 0
  m.key = spec.key;
  m.func = spec.func;
  m.args.reserve(spec.args.size());
  for (const auto& a : spec.args) m.args.push_back(a.data);
  m.reply_to = data_identity_;
  spec.early_nonce = m.nonce;
  spec.early_on = target->worker;
  early_key_ = spec.key;
  e.address = target->address;
  return e;
}

bool ClientCore::start_early(const EarlyStart& e) {
  bool sent;
  bool fresh = false;
  {
    std::lock_guard sock(sock_mutex_);
    sent = send_early(e.message, e.address, fresh);
  }
  std::lock_guard lock(mutex_);
  if (sent) {
    ++early_starts_;
  } else {
    early_key_.clear();
    outgoing_.unmark_early(e.message.key);
    // A connection asked for just now is still being made (CURVE handshake): the next turn
    // will find it. One made before that fails: the worker is gone, or going.
    if (!fresh) early_targets_.forget(e.address);  // asked again once it pushes a result here
  }
  return sent;
}

bool ClientCore::send_early(const StartTask& m, const std::string& address, bool& fresh) {
  if (!early_sock_) {
    // One ROUTER for every target, so the I/O thread and a spinning waiter watch a single
    // socket whichever worker was asked. Each connection is named by its address
    // (connect_routing_id), which is how a StartTask picks its worker and a reply names its
    // sender; router_mandatory makes a send to a connection not made yet (or gone) fail at
    // once instead of queueing: such a StartTask is simply not sent.
    early_sock_ = std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::router);
    transport::configure_socket(*early_sock_);
    early_sock_->set(zmq::sockopt::linger, 0);
    early_sock_->set(zmq::sockopt::router_mandatory, 1);
    early_sock_->set(zmq::sockopt::routing_id, data_identity_ + "/early");
    transport::make_curve_client(*early_sock_, opt_.security);
    wakeup_.notify();  // the I/O thread polls the new socket's fd from now on
  }
  if (std::find(early_connected_.begin(), early_connected_.end(), address) == early_connected_.end()) {
    // Bounded like the targets: the oldest connection goes first.
    if (early_connected_.size() >= EarlyTargets::kMaxTargets) {
      try {
        early_sock_->disconnect(early_connected_.front());
      } catch (const zmq::error_t&) {
      }
      early_connected_.erase(early_connected_.begin());
    }
    early_sock_->set(zmq::sockopt::connect_routing_id, address);
    early_sock_->connect(address);
    early_connected_.push_back(address);
    fresh = true;
  }
  bool sent = transport::send_batch(*early_sock_, &address, std::vector<PeerRequest>{m});
  rearm_io_poll();
  return sent;
}

bool ClientCore::take_early_replies() {
  if (!early_sock_) return false;
  std::uint64_t not_started = 0;
  std::string declined_by;
  while (auto r = transport::try_recv(*early_sock_, true)) {
    const std::string& from = r->identity;  // the worker's address (connect_routing_id)
    auto d = transport::decode<PeerReply>(*r);
    if (!d.ok()) {
      log_->warn("dropping a bad message from worker {}: {}", from, d.error);
      continue;
    }
    for (auto& m : d.messages) {
      if (auto* pushed = std::get_if<ResultPushed>(&m)) on_pushed(*pushed, from);
      else if (std::holds_alternative<NotStarted>(m)) {
        ++not_started;
        declined_by = from;
      }
    }
    wake_waiters();
  }
  if (not_started) {
    std::lock_guard lock(mutex_);
    early_not_started_ += not_started;
    // A worker that declines (its function overran on its loop lately, and must be quick there a
    // few times again first) would decline the rest of its run too; the next target takes over.
    early_targets_.declined(declined_by);
  }
  return not_started > 0;
}

}  // namespace dtask::detail

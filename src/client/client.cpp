// The client: graph submission, waiting on futures, direct result fetches from workers.
#include <random>
#include <unordered_set>

#include <dtask/local_cluster.hpp>

#include "client/client_core.hpp"
#include "common/scheduler_file.hpp"

namespace dtask::detail {

using namespace protocol;

namespace {
std::string random_identity() {
  std::random_device rd;
  char buf[40];
  std::snprintf(buf, sizeof buf, "client-%08x%08x%08x", static_cast<unsigned>(rd()), static_cast<unsigned>(rd()),
                static_cast<unsigned>(rd()));
  return buf;
}

constexpr std::size_t kSubmitChunk = 10000;      // tasks per SubmitTasks message
constexpr std::uint64_t kFetchTimeoutMs = 15000; // a worker that does not answer a fetch
// Submissions up to this many tasks are sent by the submitting thread; bigger ones are
// encoded and sent by the I/O thread, so map() of a million tasks returns promptly.
constexpr std::size_t kDirectSendTasks = 64;
}  // namespace

// ---------------------------------------------------------------------------------------------
// keys and names

std::string fresh_key(const std::string& func) {
  static const std::uint32_t prefix = [] {
    std::random_device rd;
    return static_cast<std::uint32_t>(rd());
  }();
  static std::atomic<std::uint64_t> counter{0};
  char buf[48];
  std::snprintf(buf, sizeof buf, "-%08x-%llx", prefix, static_cast<unsigned long long>(counter++));
  return func + buf;
}

std::string name_of_task(const void* fn) {
  const char* name = task_name_of(fn);
  if (!name) {
    throw std::invalid_argument(
        "dtask: this function is not a registered task (declare it with DTASK_TASKS in a plugin that this "
        "program links or has loaded)");
  }
  return name;
}

// ---------------------------------------------------------------------------------------------
// FutureRef

FutureRef::FutureRef(std::shared_ptr<ClientCore> core, std::shared_ptr<FutureState> state)
    : core_(std::move(core)), state_(std::move(state)) {}
FutureRef::~FutureRef() {
  if (core_) core_->drop_ref(*state_);
}
const std::string& FutureRef::key() const { return state_->key; }

// ---------------------------------------------------------------------------------------------
// the type-erased API behind the templates

std::vector<FutureRefPtr> submit_graph(ClientCore& core, const std::vector<DelayedNodePtr>& outputs) {
  // Post-order walk without recursion: dependencies are emitted before their dependents. Nodes
  // are told apart by address (hashing 100k pointers, not 100k key strings), and a node without
  // node arguments (every task of a map) is emitted at once, without a walk frame.
  std::vector<TaskSpec> specs;
  specs.reserve(outputs.size());
  std::unordered_set<const DelayedNode*> seen;
  seen.reserve(outputs.size());
  std::unordered_set<const DelayedNode*> wanted;
  wanted.reserve(outputs.size());
  for (const auto& o : outputs) wanted.insert(o.get());
  struct Frame {
    const DelayedNode* node;
    std::size_t next_child = 0;
    std::vector<const DelayedNode*> children;
  };
  auto children_of = [](const DelayedNode* n) {
    std::vector<const DelayedNode*> c;
    for (const auto& a : n->args) {
      if (a.kind == NodeArg::Kind::node) c.push_back(a.node.get());
      if (a.kind == NodeArg::Kind::node_list) {
        for (const auto& x : a.nodes) c.push_back(x.get());
      }
    }
    return c;
  };
  auto emit = [&](const DelayedNode* n) {
    TaskSpec& s = specs.emplace_back();
    s.key = n->key;
    s.func = n->func;
    s.priority = n->options.priority;
    s.retries = static_cast<std::uint32_t>(std::max(0, n->options.retries));
    s.workers = n->options.workers;
    s.allow_other_workers = n->options.allow_other_workers;
    for (const auto& [k, v] : n->options.resources) s.resources.emplace_back(k, v);
    s.wanted = wanted.count(n) > 0;
    s.args.reserve(n->args.size());
    for (const auto& a : n->args) {
      ClientArg& ca = s.args.emplace_back();
      switch (a.kind) {
        case NodeArg::Kind::value:
          ca.kind = ClientArg::value;
          ca.data = a.value;
          break;
        case NodeArg::Kind::node:
          ca.kind = ClientArg::dep;
          ca.refs.push_back(a.node->key);
          break;
        case NodeArg::Kind::future:
          ca.kind = ClientArg::dep;
          ca.refs.push_back(a.future->key());
          break;
        case NodeArg::Kind::node_list:
          ca.kind = ClientArg::dep_list;
          for (const auto& x : a.nodes) ca.refs.push_back(x->key);
          break;
        case NodeArg::Kind::future_list:
          ca.kind = ClientArg::dep_list;
          for (const auto& x : a.futures) ca.refs.push_back(x->key());
          break;
      }
    }
  };
  std::vector<Frame> stack;
  for (const auto& out : outputs) {
    if (!seen.insert(out.get()).second) continue;
    auto children = children_of(out.get());  // an empty vector allocates nothing
    if (children.empty()) {
      emit(out.get());
      continue;
    }
    stack.push_back({out.get(), 0, std::move(children)});
    while (!stack.empty()) {
      Frame& f = stack.back();
      if (f.next_child < f.children.size()) {
        const DelayedNode* c = f.children[f.next_child++];
        if (seen.insert(c).second) stack.push_back({c, 0, children_of(c)});
        continue;
      }
      emit(f.node);
      stack.pop_back();
    }
  }
  std::vector<std::string> keys;
  keys.reserve(outputs.size());
  for (const auto& o : outputs) keys.push_back(o->key);
  return core.submit(std::move(specs), keys);
}

const Payload& fetch(const FutureRef& ref, std::optional<std::chrono::milliseconds> timeout) {
  return ref.core().fetch(*ref.state(), timeout);
}
std::vector<const Payload*> fetch_all(const std::vector<const FutureRef*>& refs) {
  if (refs.empty()) return {};
  std::vector<FutureState*> states;
  for (auto* r : refs) states.push_back(r->state().get());
  return refs.front()->core().fetch_all(states);
}
FutureStatus status_of(const FutureRef& ref) { return ref.core().status(*ref.state()); }
std::string error_of(const FutureRef& ref) { return ref.core().error(*ref.state()); }
bool wait_all(const std::vector<const FutureRef*>& refs, std::optional<std::chrono::milliseconds> timeout) {
  if (refs.empty()) return true;
  std::vector<FutureState*> states;
  for (auto* r : refs) states.push_back(r->state().get());
  return refs.front()->core().wait_all(states, timeout);
}
std::optional<std::size_t> wait_any(const std::vector<const FutureRef*>& refs,
                                    std::optional<std::chrono::milliseconds> timeout) {
  if (refs.empty()) return std::nullopt;
  std::vector<FutureState*> states;
  for (auto* r : refs) states.push_back(r->state().get());
  return refs.front()->core().wait_any(states, timeout);
}
void cancel(const std::vector<const FutureRef*>& refs) {
  if (refs.empty()) return;
  std::vector<FutureState*> states;
  for (auto* r : refs) states.push_back(r->state().get());
  refs.front()->core().cancel(states);
}

// ---------------------------------------------------------------------------------------------
// ClientCore: user-thread side

ClientCore::ClientCore(ConnectOptions options)
    : opt_(std::move(options)), data_identity_(random_identity()), next_nonce_(std::random_device{}() | 1) {
  log_ = log::make("client", opt_.name);
  transport::configure_socket(sched_);
  transport::make_curve_client(sched_, opt_.security);
}

ClientCore::~ClientCore() { close(); }

void ClientCore::start() {
  try {
    sched_.connect(opt_.address);
  } catch (const zmq::error_t& e) {
    throw ConnectionError("cannot connect to scheduler at '" + opt_.address + "': " + e.what());
  }
  post(RegisterClient{kProtocolVersion, opt_.name, data_identity_});
  io_ = std::thread([this] { io_loop(); });
  std::unique_lock lock(mutex_);
  bool ok = cv_.wait_for(lock, opt_.connect_timeout, [&] { return welcomed_ || !connection_error_.empty(); });
  if (!ok || !connection_error_.empty()) {
    std::string why = connection_error_.empty()
                          ? "no answer from the scheduler at " + opt_.address + " within " +
                                std::to_string(opt_.connect_timeout.count() / 1000) +
                                " s (is it running, and are the security keys right?)"
                          : connection_error_;
    lock.unlock();
    close();
    throw ConnectionError(why);
  }
}

void ClientCore::close() {
  {
    std::lock_guard lock(mutex_);
    if (!closing_ && welcomed_ && connection_error_.empty()) outgoing_.push_back(ClientGoodbye{0});
    closing_ = true;
  }
  wakeup_.notify();
  if (io_.joinable() && std::this_thread::get_id() != io_.get_id()) io_.join();
  fail_all_pending("the client was closed");
}

void ClientCore::post(ClientToScheduler m) {
  {
    std::lock_guard lock(mutex_);
    outgoing_.push_back(std::move(m));
  }
  wakeup_.notify();
}

std::vector<FutureRefPtr> ClientCore::submit(std::vector<TaskSpec> specs, const std::vector<std::string>& outputs) {
  std::vector<FutureRefPtr> refs;
  refs.reserve(outputs.size());
  // A small submit is usually waited for at once (submit().result()): its results come
  // straight from the worker. Big ones would only double the messages arriving here.
  const bool push = specs.size() <= kDirectSendTasks;
  const std::size_t n_specs = specs.size();
  if (push) {
    for (auto& spec : specs) spec.push_result = spec.wanted;
  }
  std::optional<StartTask> early;
  std::string early_address;
  bool wake_io = false;
  {
    std::lock_guard lock(mutex_);
    if (stopped_ || closing_) throw ConnectionError("the client is closed");
    if (!connection_error_.empty()) throw ConnectionError(connection_error_);
    if (push && specs.size() == 1) {
      early = early_start_for(specs.front());
      early_address = early_address_;
    }
    for (const auto& key : outputs) {
      auto& st = states_[key];
      if (!st) {
        st = std::make_shared<FutureState>();
        st->key = key;
      }
      ++st->refs;
      if (push) st->push = true;
      refs.push_back(std::make_shared<FutureRef>(shared_from_this(), st));
    }
    if (early) {
      // Held back: the worker answers first, and the scheduler hears of it with the next batch.
      wake_io = held_since_ms_ == 0;
      if (held_since_ms_ == 0) held_since_ms_ = transport::now_ms();
      held_.push_back(SubmitTasks{std::move(specs)});
    } else {
      for (std::size_t i = 0; i < specs.size(); i += kSubmitChunk) {
        SubmitTasks m;
        auto end = std::min(specs.size(), i + kSubmitChunk);
        m.tasks.assign(std::make_move_iterator(specs.begin() + static_cast<std::ptrdiff_t>(i)),
                       std::make_move_iterator(specs.begin() + static_cast<std::ptrdiff_t>(end)));
        outgoing_.push_back(std::move(m));
      }
    }
  }
  if (early) {
    // To the worker only: it starts at once, and the scheduler hears of the task a little later.
    bool sent;
    {
      std::lock_guard sock(sock_mutex_);
      sent = send_early(*early, early_address);
    }
    std::lock_guard lock(mutex_);
    if (sent) {
      ++early_starts_;
    } else {
      // Not connected there (a worker that died, or a connection still being made): the
      // scheduler must not be told to prefer that worker.
      early_key_.clear();
      for (auto& m : held_) {
        if (auto* sub = std::get_if<SubmitTasks>(&m); sub && sub->tasks.front().key == early->key) {
          sub->tasks.front().early_nonce = 0;
          sub->tasks.front().early_on = {};
        }
      }
    }
    if (sent) {
      // The I/O thread times the held SubmitTasks; it already does if something was held.
      if (wake_io) wakeup_.notify();
      return refs;
    }
  }
  if (n_specs <= kDirectSendTasks) {
    flush_outgoing(early.has_value());  // forced for a StartTask that could not go: its held submit
  } else {
    wakeup_.notify();
  }
  return refs;
}

std::optional<StartTask> ClientCore::early_start_for(TaskSpec& spec) {
  if (early_address_.empty() || !spec.push_result || !spec.workers.empty() || !spec.resources.empty()) return {};
  for (const auto& a : spec.args) {
    if (a.kind != ClientArg::value) return {};  // inputs are the scheduler's business
  }
  if (!early_key_.empty()) {
    auto it = states_.find(early_key_);
    if (it != states_.end() && it->second->status == FutureStatus::pending) return {};
  }
  if (states_.count(spec.key)) return {};  // a key already known: the scheduler may have it
  StartTask m;
  m.nonce = next_nonce_;
  next_nonce_ += 2;  // odd, so never 0
  m.key = spec.key;
  m.func = spec.func;
  m.args.reserve(spec.args.size());
  for (const auto& a : spec.args) m.args.push_back(a.data);
  m.reply_to = data_identity_;
  spec.early_nonce = m.nonce;
  spec.early_on = early_worker_;
  early_key_ = spec.key;
  return m;
}

bool ClientCore::send_early(const StartTask& m, const std::string& address) {
  if (!early_sock_ || early_sock_address_ != address) {
    early_sock_ = std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::dealer);
    transport::configure_socket(*early_sock_);
    early_sock_->set(zmq::sockopt::linger, 0);
    // Nothing queues for a connection still being made: such a StartTask is simply not sent.
    early_sock_->set(zmq::sockopt::immediate, 1);
    wakeup_.notify();  // the I/O thread polls the new socket's fd from now on
    early_sock_->set(zmq::sockopt::routing_id, data_identity_ + "/early");
    transport::make_curve_client(*early_sock_, opt_.security);
    early_sock_->connect(address);
    early_sock_address_ = address;
  }
  bool sent = transport::send_batch(*early_sock_, nullptr, std::vector<PeerRequest>{m});
  rearm_io_poll();
  return sent;
}

bool ClientCore::take_early_replies() {
  if (!early_sock_) return false;
  std::uint64_t not_started = 0;
  while (auto r = transport::try_recv(*early_sock_, false)) {
    auto d = transport::decode<PeerReply>(*r);
    if (!d.ok()) {
      log_->warn("dropping a bad message from worker {}: {}", early_sock_address_, d.error);
      continue;
    }
    for (auto& m : d.messages) {
      if (auto* pushed = std::get_if<ResultPushed>(&m)) on_pushed(*pushed, early_sock_address_);
      else if (std::holds_alternative<NotStarted>(m)) ++not_started;
    }
    wake_waiters();
  }
  if (not_started) {
    std::lock_guard lock(mutex_);
    early_not_started_ += not_started;
  }
  return not_started > 0;
}

std::uint64_t ClientCore::early_starts() {
  std::lock_guard lock(mutex_);
  return early_starts_;
}

std::uint64_t ClientCore::early_not_started() {
  std::lock_guard lock(mutex_);
  return early_not_started_;
}

void ClientCore::flush_outgoing(bool force) {
  std::lock_guard sock(sock_mutex_);
  std::vector<ClientToScheduler> out;
  {
    std::lock_guard lock(mutex_);
    bool urgent = force || closing_ ||
                  std::any_of(outgoing_.begin(), outgoing_.end(),
                              [](const ClientToScheduler& m) { return !std::holds_alternative<ReleaseKeys>(m); });
    bool held = !held_.empty() || (!outgoing_.empty() && !urgent);  // only releases, if anything
    if (held && held_since_ms_ == 0) held_since_ms_ = transport::now_ms();
    if (!urgent && !(held && transport::now_ms() >= held_since_ms_ + kEarlyHoldMs)) return;
    // Held submits (with their receipts) first: later messages may name their keys.
    for (auto& m : held_) out.push_back(std::move(m));
    held_.clear();
    held_since_ms_ = 0;
    // Receipts never travel alone (the workers' held-back TaskDones cover a quiet client), and
    // they go before the rest: the scheduler must see a task done before this client releases it.
    if (!receipts_.empty() && (!out.empty() || !outgoing_.empty())) {
      out.push_back(ResultsReceived{std::move(receipts_)});
      receipts_.clear();
    }
    for (auto& m : outgoing_) out.push_back(std::move(m));
    outgoing_.clear();
  }
  if (out.empty()) return;
  // Batched, but a big graph still goes out in chunks of about kSubmitChunk tasks per
  // message, so the scheduler takes it in piece by piece and keeps answering meanwhile.
  std::vector<ClientToScheduler> batch;
  std::size_t batch_tasks = 0;
  for (auto& m : out) {
    if (auto* sub = std::get_if<SubmitTasks>(&m)) batch_tasks += sub->tasks.size();
    batch.push_back(std::move(m));
    if (batch_tasks >= kSubmitChunk) {
      transport::send_batch(sched_, nullptr, batch);
      batch.clear();
      batch_tasks = 0;
    }
  }
  if (!batch.empty()) transport::send_batch(sched_, nullptr, batch);
  rearm_io_poll();
}

void ClientCore::rearm_io_poll() {
  if (std::this_thread::get_id() == io_.get_id()) return;  // it looks before it polls
  try {
    if ((sched_.get(zmq::sockopt::events) & ZMQ_POLLIN) ||
        (early_sock_ && (early_sock_->get(zmq::sockopt::events) & ZMQ_POLLIN))) {
      wakeup_.notify();
    }
  } catch (const zmq::error_t&) {
    wakeup_.notify();
  }
}

void ClientCore::drop_ref(FutureState& s) {
  {
    std::lock_guard lock(mutex_);
    if (s.refs == 0 || --s.refs > 0) return;
    const std::string& key = s.key;  // `s` lives on in the FutureRef being destroyed
    auto it = states_.find(key);
    if (it != states_.end() && it->second.get() == &s) states_.erase(it);
    if (stopped_ || closing_) return;
    // Releases of many futures dropped together travel as one message.
    if (!outgoing_.empty()) {
      if (auto* r = std::get_if<ReleaseKeys>(&outgoing_.back())) {
        r->keys.push_back(key);
        return;
      }
    }
    // Not urgent, so no wake-up: it rides with the next message or leaves with the held-back
    // ones (kEarlyHoldMs). Waking the I/O thread here cost every result() a second hand-off.
    if (held_since_ms_ == 0) held_since_ms_ = transport::now_ms();
    outgoing_.push_back(ReleaseKeys{{key}});
  }
}

bool ClientCore::settled(const FutureState& s) const { return s.status != FutureStatus::pending; }

void ClientCore::wake_waiters() {
  progress_.fetch_add(1, std::memory_order_release);
  cv_.notify_all();
}

FutureStatus ClientCore::status(const FutureState& s) {
  std::lock_guard lock(mutex_);
  return s.status;
}

std::string ClientCore::error(const FutureState& s) {
  std::lock_guard lock(mutex_);
  return s.error;
}

namespace {
[[noreturn]] void throw_for(const FutureState& s) {
  if (s.status == FutureStatus::cancelled) throw CancelledError(s.key);
  throw TaskError(s.key, s.error_func, s.error);
}
}  // namespace

void ClientCore::request_fetch(FutureState& s) {
  if (s.fetching || s.data) return;
  auto it = states_.find(s.key);
  if (it == states_.end()) return;
  s.fetching = true;
  s.fetch_error.clear();
  fetch_queue_.push_back(it->second);
  wakeup_.notify();
}

const Payload& ClientCore::fetch(FutureState& s, std::optional<std::chrono::milliseconds> timeout) {
  const bool bounded = timeout.has_value();
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + timeout.value_or(std::chrono::milliseconds(0));
  // A short round trip is cheaper spun than slept (see SpinPolicy); never past the deadline.
  auto spin_until = start + result_spin_.budget();
  if (bounded) spin_until = std::min(spin_until, deadline);
  bool waited = false;
  std::unique_lock lock(mutex_);
  while (true) {
    if (s.data) {
      if (waited) result_spin_.record(std::chrono::steady_clock::now() - start);
      return *s.data;
    }
    if (s.status == FutureStatus::error || s.status == FutureStatus::cancelled) throw_for(s);
    if (!s.fetch_error.empty()) throw ConnectionError(s.fetch_error);
    if (s.status == FutureStatus::finished) request_fetch(s);
    waited = true;
    auto now = std::chrono::steady_clock::now();
    if (now < spin_until) {
      auto seen = progress_.load(std::memory_order_acquire);
      lock.unlock();
      bool not_started = false;
      spinners_.fetch_add(1, std::memory_order_acq_rel);
      bool got = transport::spin_until(
          [&] {
            if (progress_.load(std::memory_order_acquire) != seen) return true;
            // The answer to a StartTask is taken here, not by the I/O thread: one hand-off less.
            // No rearm_io_poll: this touches only early_sock_ and drains it, so nothing is left
            // for the I/O thread to miss (each ZMQ_EVENTS look costs libzmq a poll syscall).
            std::unique_lock sock(sock_mutex_, std::try_to_lock);
            if (sock.owns_lock()) not_started = take_early_replies() || not_started;
            return progress_.load(std::memory_order_acquire) != seen || not_started;
          },
          spin_until - now);
      spinners_.fetch_sub(1, std::memory_order_acq_rel);
      // The I/O thread may be polling without that socket: it must look at it again.
      if (!got) wakeup_.notify();
      if (not_started) flush_outgoing(true);
      lock.lock();
      continue;
    }
    if (bounded) {
      if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && !s.data && s.status == FutureStatus::pending) {
        throw TimeoutError("future " + s.key + " did not finish within the timeout");
      }
    } else {
      cv_.wait(lock);
    }
  }
}

std::vector<const Payload*> ClientCore::fetch_all(const std::vector<FutureState*>& states) {
  std::unique_lock lock(mutex_);
  // From here on the I/O thread fetches each result as soon as it is done, so this thread only
  // walks the list once (a rescan per wake-up would be quadratic in the number of futures).
  for (FutureState* s : states) {
    s->auto_fetch = true;
    if (s->status == FutureStatus::finished && !s->data) request_fetch(*s);
  }
  std::size_t i = 0;
  while (i < states.size()) {
    FutureState* s = states[i];
    if (s->status == FutureStatus::error || s->status == FutureStatus::cancelled) throw_for(*s);
    if (!s->fetch_error.empty()) throw ConnectionError(s->fetch_error);
    if (s->data) {
      ++i;
      continue;
    }
    if (s->status == FutureStatus::finished && !s->fetching) request_fetch(*s);
    cv_.wait(lock);
  }
  std::vector<const Payload*> out;
  out.reserve(states.size());
  for (FutureState* s : states) out.push_back(&*s->data);
  return out;
}

bool ClientCore::wait_all(const std::vector<FutureState*>& states, std::optional<std::chrono::milliseconds> timeout) {
  std::unique_lock lock(mutex_);
  auto pred = [&] {
    for (FutureState* s : states) {
      if (!settled(*s)) return false;
    }
    return true;
  };
  if (timeout) return cv_.wait_for(lock, *timeout, pred);
  cv_.wait(lock, pred);
  return true;
}

std::optional<std::size_t> ClientCore::wait_any(const std::vector<FutureState*>& states,
                                                std::optional<std::chrono::milliseconds> timeout) {
  std::unique_lock lock(mutex_);
  std::optional<std::size_t> found;
  auto pred = [&] {
    for (std::size_t i = 0; i < states.size(); ++i) {
      if (settled(*states[i])) {
        found = i;
        return true;
      }
    }
    return false;
  };
  if (timeout) {
    cv_.wait_for(lock, *timeout, pred);
  } else {
    cv_.wait(lock, pred);
  }
  return found;
}

void ClientCore::cancel(const std::vector<FutureState*>& states) {
  CancelKeys m;
  {
    std::lock_guard lock(mutex_);
    for (FutureState* s : states) {
      if (s->status == FutureStatus::pending) {
        s->status = FutureStatus::cancelled;
        s->error = "cancelled by the client";
      }
      m.keys.push_back(s->key);
    }
  }
  wake_waiters();
  post(std::move(m));
}

nlohmann::json ClientCore::info(std::chrono::milliseconds timeout) {
  std::uint64_t rid;
  {
    std::lock_guard lock(mutex_);
    if (!connection_error_.empty()) throw ConnectionError(connection_error_);
    rid = next_request_++;
    outgoing_.push_back(InfoRequest{rid});
  }
  wakeup_.notify();
  std::unique_lock lock(mutex_);
  bool ok = cv_.wait_for(lock, timeout, [&] { return infos_.count(rid) > 0 || !connection_error_.empty() || stopped_; });
  if (!connection_error_.empty()) throw ConnectionError(connection_error_);
  if (!ok || !infos_.count(rid)) throw TimeoutError("the scheduler did not answer an info request in time");
  auto j = std::move(infos_[rid]);
  infos_.erase(rid);
  return j;
}

void ClientCore::shutdown_cluster(int code) {
  post(ShutdownCluster{code});
  std::unique_lock lock(mutex_);
  cv_.wait_for(lock, std::chrono::seconds(10), [&] { return cluster_closing_ || stopped_ || !connection_error_.empty(); });
}

void ClientCore::fail_all_pending(const std::string& why) {
  {
    std::lock_guard lock(mutex_);
    for (auto& [k, s] : states_) {
      if (s->status == FutureStatus::pending) {
        s->status = FutureStatus::error;
        s->error = why;
        s->error_func = "(none)";
      } else if (s->status == FutureStatus::finished && !s->data && s->fetch_error.empty()) {
        s->fetch_error = why;
      }
    }
  }
  wake_waiters();
}

// ---------------------------------------------------------------------------------------------
// ClientCore: I/O thread side

void ClientCore::on(ClientWelcome&) {
  std::lock_guard lock(mutex_);
  welcomed_ = true;
}
void ClientCore::on(Rejected& m) {
  std::lock_guard lock(mutex_);
  connection_error_ = "the scheduler refused this client: " + m.reason;
}
void ClientCore::on(KeyDone& m) {
  std::lock_guard lock(mutex_);
  auto it = states_.find(m.key);
  if (it == states_.end()) return;
  auto& s = *it->second;
  if (s.status == FutureStatus::cancelled) return;
  s.status = FutureStatus::finished;
  s.task = m.task;
  s.holders = std::move(m.holders);
  s.fetch_attempt = 0;
  if (m.has_data && !s.data) s.data = std::move(m.data);
  if (s.auto_fetch && !s.data) request_fetch(s);
  // Be connected to where it ran, so the next results pushed from there reach us.
  if (s.push && !s.holders.empty()) data_conn(s.holders.front());
}
void ClientCore::on_pushed(ResultPushed& m, const std::string& from) {
  std::lock_guard lock(mutex_);
  // The next small task may start there at once (StartTask).
  early_worker_ = m.worker;
  early_address_ = from;
  auto it = states_.find(m.key);
  if (it == states_.end()) return;  // released meanwhile
  auto& s = *it->second;
  if (s.status != FutureStatus::pending || s.data) return;  // KeyDone was first, or cancelled
  s.status = FutureStatus::finished;
  if (m.early) {
    // An early start's: no task id yet (KeyDone tells it), so its key names it in the receipt,
    // which goes right after the held SubmitTasks (or on its own, soon, if that went already).
    if (held_.empty()) held_since_ms_ = transport::now_ms();
    held_.push_back(ResultsReceived{{PushReceipt{m.task, m.worker, m.data.nbytes(), m.key}}});
  } else {
    s.task = m.task;
    receipts_.push_back(PushReceipt{m.task, m.worker, m.data.nbytes(), {}});
  }
  s.data = std::move(m.data);
  ++results_pushed_;
}

std::uint64_t ClientCore::results_pushed() {
  std::lock_guard lock(mutex_);
  return results_pushed_;
}

zmq::socket_t& ClientCore::data_conn(const std::string& address) {
  auto& conn = data_conns_[address];
  if (!conn.socket) {
    conn.socket = std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::dealer);
    transport::configure_socket(*conn.socket);
    conn.socket->set(zmq::sockopt::routing_id, data_identity_);
    transport::make_curve_client(*conn.socket, opt_.security);
    conn.socket->connect(address);
  }
  return *conn.socket;
}
void ClientCore::on(KeyErred& m) {
  std::lock_guard lock(mutex_);
  auto it = states_.find(m.key);
  if (it == states_.end()) return;
  auto& s = *it->second;
  s.status = FutureStatus::error;
  s.error = std::move(m.message);
  s.error_func = std::move(m.func);
}
void ClientCore::on(KeyCancelled& m) {
  std::lock_guard lock(mutex_);
  auto it = states_.find(m.key);
  if (it == states_.end()) return;
  it->second->status = FutureStatus::cancelled;
  it->second->error = m.reason;
}
void ClientCore::on(KeyLost& m) {
  std::lock_guard lock(mutex_);
  auto it = states_.find(m.key);
  if (it == states_.end()) return;
  auto& s = *it->second;
  if (s.data) return;  // we already have it
  s.status = FutureStatus::pending;
  s.holders.clear();
}
void ClientCore::on(InfoReply& m) {
  std::lock_guard lock(mutex_);
  infos_[m.request_id] = std::move(m.info);
}
void ClientCore::on(Heartbeat&) {}
void ClientCore::on(ClusterClosing& m) {
  std::function<void(int, const std::string&)> handler;
  {
    std::lock_guard lock(mutex_);
    cluster_closing_ = true;
    handler = end_handler_;
  }
  if (handler) handler(m.code, m.reason);
}

void ClientCore::set_end_handler(std::function<void(int, const std::string&)> handler) {
  std::lock_guard lock(mutex_);
  end_handler_ = std::move(handler);
}

void ClientCore::send_fetches(std::uint64_t now) {
  std::vector<std::shared_ptr<FutureState>> queue;
  {
    std::lock_guard lock(mutex_);
    queue.swap(fetch_queue_);
  }
  std::unordered_map<std::string, std::vector<std::shared_ptr<FutureState>>> by_address;
  {
    std::lock_guard lock(mutex_);
    for (auto& s : queue) {
      if (s->holders.empty()) {
        s->fetching = false;  // lost meanwhile; fetched again once recomputed
        continue;
      }
      by_address[s->holders[s->fetch_attempt % s->holders.size()]].push_back(s);
    }
  }
  for (auto& [address, states] : by_address) {
    auto& socket = data_conn(address);
    GetData req;
    req.request_id = next_data_request_++;
    for (auto& s : states) req.tasks.push_back(s->task);
    transport::send_batch(socket, nullptr, std::vector<PeerRequest>{req});
    data_requests_[req.request_id] = DataRequest{address, std::move(states), now};
  }
}

void ClientCore::on_data(DataReply& reply) {
  auto it = data_requests_.find(reply.request_id);
  if (it == data_requests_.end()) return;
  auto states = std::move(it->second.states);
  data_requests_.erase(it);
  std::lock_guard lock(mutex_);
  for (std::size_t i = 0; i < states.size() && i < reply.items.size(); ++i) {
    auto& s = *states[i];
    auto& item = reply.items[i];
    s.fetching = false;
    if (item.found) {
      s.data = std::move(item.data);
    } else {
      ++s.fetch_attempt;
      if (s.fetch_attempt >= s.holders.size() + 3) {
        s.fetch_error = "result of " + s.key + " is not on any worker that should hold it";
      }
    }
  }
}

void ClientCore::io_loop() {
  std::uint64_t last_heard = transport::now_ms(), last_beat = 0;
  const int sched_fd = [&] {
    std::lock_guard sock(sock_mutex_);
    return static_cast<int>(sched_.get(zmq::sockopt::fd));
  }();
  while (true) {
    bool closing;
    {
      std::lock_guard lock(mutex_);
      closing = closing_;
    }
    flush_outgoing();
    if (closing) break;
    std::uint64_t now = transport::now_ms();
    send_fetches(now);

    // sched_ is polled through its bare ZMQ_FD (see sock_mutex_), which only signals changes:
    // when a message is already waiting, the poll must not block.
    bool readable;
    int early_fd = -1;
    {
      std::lock_guard sock(sock_mutex_);
      readable = (sched_.get(zmq::sockopt::events) & ZMQ_POLLIN) != 0;
      if (early_sock_ && spinners_.load(std::memory_order_acquire) == 0) {
        early_fd = static_cast<int>(early_sock_->get(zmq::sockopt::fd));
        readable = readable || (early_sock_->get(zmq::sockopt::events) & ZMQ_POLLIN) != 0;
      }
    }
    std::vector<zmq::pollitem_t> items = {{nullptr, sched_fd, ZMQ_POLLIN, 0}, {nullptr, wakeup_.fd(), ZMQ_POLLIN, 0},
                                          {nullptr, early_fd, static_cast<short>(early_fd >= 0 ? ZMQ_POLLIN : 0), 0}};
    std::vector<std::pair<zmq::socket_t*, const std::string*>> data_socks;
    for (auto& [address, c] : data_conns_) {
      items.push_back({c.socket->handle(), 0, ZMQ_POLLIN, 0});
      data_socks.emplace_back(c.socket.get(), &address);
    }
    std::uint64_t wait_ms = readable ? 0 : 250;
    {
      std::lock_guard lock(mutex_);
      if (held_since_ms_ != 0) {
        const std::uint64_t due = held_since_ms_ + kEarlyHoldMs;
        wait_ms = std::min(wait_ms, due > now ? due - now : 0);
      }
    }
    transport::poll(items.data(), items.size(), std::chrono::milliseconds(wait_ms));
    now = transport::now_ms();
    if (items[1].revents & ZMQ_POLLIN) wakeup_.drain();
    bool changed = false, not_started = false;
    std::vector<transport::Received> received;
    {
      std::lock_guard sock(sock_mutex_);
      while (auto r = transport::try_recv(sched_, false)) received.push_back(std::move(*r));
      if (early_fd >= 0) not_started = take_early_replies();
    }
    if (!received.empty()) last_heard = now;
    for (auto& r : received) {
      auto d = transport::decode<SchedulerToClient>(r);
      if (!d.ok()) {
        if (d.peer_version != 0 && d.peer_version != kProtocolVersion) {
          std::lock_guard lock(mutex_);
          connection_error_ = d.error;
        } else {
          log_->warn("dropping a bad message from the scheduler: {}", d.error);
        }
        changed = true;
        continue;
      }
      for (auto& m : d.messages) std::visit([&](auto& x) { on(x); }, m);
      changed = true;
    }
    for (std::size_t i = 0; i < data_socks.size(); ++i) {
      if (!(items[3 + i].revents & ZMQ_POLLIN)) continue;
      while (auto r = transport::try_recv(*data_socks[i].first, false)) {
        auto d = transport::decode<PeerReply>(*r);
        if (!d.ok()) continue;
        for (auto& m : d.messages) {
          if (auto* reply = std::get_if<DataReply>(&m)) on_data(*reply);
          else if (auto* pushed = std::get_if<ResultPushed>(&m)) on_pushed(*pushed, *data_socks[i].second);
        }
        changed = true;
      }
    }
    // A StartTask the worker did not take: the scheduler must hear of that task now.
    if (not_started) flush_outgoing(true);
    // A worker that does not answer: ask the next holder.
    std::vector<std::uint64_t> expired;
    for (auto& [rid, r] : data_requests_) {
      if (now > r.sent_ms + kFetchTimeoutMs) expired.push_back(rid);
    }
    for (auto rid : expired) {
      auto states = std::move(data_requests_[rid].states);
      data_requests_.erase(rid);
      std::lock_guard lock(mutex_);
      for (auto& s : states) {
        s->fetching = false;
        if (++s->fetch_attempt >= s->holders.size() + 3) s->fetch_error = "no worker answered a request for " + s->key;
      }
      changed = true;
    }
    if (now >= last_beat + 500) {
      std::lock_guard sock(sock_mutex_);
      transport::send_batch(sched_, nullptr, std::vector<ClientToScheduler>{Heartbeat{now}});
      last_beat = now;
    }
    bool lost = false;
    {
      std::lock_guard lock(mutex_);
      if (welcomed_ && now > last_heard + static_cast<std::uint64_t>(opt_.scheduler_timeout.count()) &&
          connection_error_.empty()) {
        connection_error_ = "lost the scheduler at " + opt_.address + " (silent for " +
                            std::to_string(opt_.scheduler_timeout.count() / 1000) + " s)";
        lost = true;
      }
    }
    if (lost) {
      fail_all_pending(connection_error_);
      changed = true;
      std::function<void(int, const std::string&)> handler;
      {
        std::lock_guard lock(mutex_);
        handler = end_handler_;
      }
      if (handler) handler(1, connection_error_);
    }
    if (changed) wake_waiters();
  }
  {
    std::lock_guard lock(mutex_);
    stopped_ = true;
  }
  wake_waiters();
}

}  // namespace dtask::detail

namespace dtask {

Client::Client(const LocalCluster& cluster) : Client(cluster.connect_options()) {}

Client::Client(const ConnectOptions& options) : core_(std::make_shared<detail::ClientCore>(options)) {
  core_->start();
}

Client Client::from_scheduler_file(const std::string& path) {
  auto f = read_scheduler_file(path);
  if (!f.ok()) throw ConnectionError(f.error);
  return Client(f.connect);
}

Client::~Client() { close(); }
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;

bool Client::wait_for_workers(std::size_t n, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (remaining.count() <= 0) return false;
    auto info = core_->info(std::max(remaining, std::chrono::milliseconds(1000)));
    if (info.at("workers").size() >= n) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

SchedulerInfo Client::scheduler_info() {
  auto j = core_->info(std::chrono::seconds(30));
  SchedulerInfo out;
  out.address = j.value("address", "");
  for (const auto& w : j.at("workers")) {
    WorkerInfo wi;
    wi.id = w.at("id").get<std::uint32_t>();
    wi.name = w.at("name").get<std::string>();
    wi.host = w.at("host").get<std::string>();
    wi.address = w.at("address").get<std::string>();
    wi.nthreads = w.at("nthreads").get<int>();
    wi.rank = w.at("rank").get<int>();
    wi.pid = w.value("pid", 0L);
    wi.memory_limit = w.at("memory_limit").get<std::uint64_t>();
    wi.resources = w.at("resources").get<std::map<std::string, double>>();
    wi.processing = w.at("processing").get<std::size_t>();
    wi.in_memory = w.at("in_memory").get<std::size_t>();
    out.workers.push_back(std::move(wi));
  }
  out.tasks_by_state = j.at("tasks_by_state").get<std::map<std::string, std::size_t>>();
  return out;
}

void Client::shutdown_cluster(int code) { core_->shutdown_cluster(code); }

void Client::close() {
  if (core_) core_->close();
}

const std::string& Client::scheduler_address() const { return core_->address(); }

detail::ClientCore& Client::core() { return *core_; }

}  // namespace dtask

// A worker: registers with the scheduler, runs tasks on its executor, serves and fetches data.
#include "worker/worker.hpp"

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <filesystem>
#include <unordered_map>
#include <unordered_set>

#include <zmq.hpp>

#include "common/log.hpp"
#include "transport/transport.hpp"
#include "worker/executor.hpp"

namespace dtask::worker {

using namespace protocol;

namespace {
constexpr int kMaxDrain = 20000;
// Freed results above this size are handed back to the OS at once (no nanny, no env vars).
constexpr std::uint64_t kTrimThreshold = 1 << 20;
// Results up to this size are copied into TaskDone (see protocol::TaskDone).
constexpr std::uint64_t kInlineResultBytes = 1024;
// A task function that has finished this quickly this many times in a row may run on the loop
// thread when it is the only work here (see start_ready). A run there that overruns (a function
// turned slow, or a quick one whose thread was preempted: both look alike) is a strike, and the
// function must be quick kRunHereAfterQuickRuns times again; with kRunHereMaxStrikes it runs
// there no more. A strike is forgiven after kQuickRunsPerPardon quick runs anywhere, so rare
// preemptions on a busy node do not cost a long job its short path for good, while a function
// that is often slow stays off the loop thread.
constexpr std::uint64_t kRunHereMaxNs = 50'000;
constexpr std::uint32_t kRunHereAfterQuickRuns = 8;
constexpr std::uint32_t kRunHereMaxStrikes = 3;
constexpr std::uint32_t kQuickRunsPerPardon = 1024;
// ...and if it runs there for longer than about this (one to two periods), the loop moves to a
// standby thread so heartbeats and data requests keep being answered.
constexpr std::chrono::milliseconds kTakeoverPeriod{50};
// Value of Impl::here once the loop was taken over: no task runs on the loop thread any more.
constexpr std::uint64_t kHereTaken = ~std::uint64_t{0} - 1;
// Early starts remembered at once (see Impl::early), results of at most 1 KiB each: a client
// starts about one per round trip and the scheduler adopts them within kEarlyHoldMs, so this
// covers 200,000 round trips a second; the oldest is forgotten first (and then run again).
constexpr std::size_t kEarlyRemembered = 1024;
}  // namespace

struct Worker::Impl {
  // A task the scheduler gave us, until it finishes here.
  struct Pending {
    ComputeTask msg;
    std::size_t missing = 0;   // inputs still being fetched
    bool submitted = false;    // handed to the executor (or run on the loop), see start_ready
  };
  struct Fetch {
    std::vector<WorkerId> holders;   // still to try
    std::vector<TaskId> waiting;     // tasks that need it
    bool in_flight = false;          // a request for it is out
  };
  struct PeerConn {
    std::string address;
    std::unique_ptr<zmq::socket_t> socket;
  };
  struct Request {
    WorkerId peer;
    std::vector<TaskId> deps;
    std::uint64_t sent_ms;
  };

  WorkerOptions opt;
  std::shared_ptr<spdlog::logger> log;
  zmq::context_t ctx{1};
  std::unique_ptr<transport::ZapAuthenticator> zap;
  zmq::socket_t sched{ctx, zmq::socket_type::dealer};
  zmq::socket_t data{ctx, zmq::socket_type::router};
  std::string address;
  transport::Wakeup wakeup;
  std::unique_ptr<Executor> exec;
  std::atomic<bool> stop_requested{false};
  std::atomic<int> stop_code{0};

  WorkerId me{};
  bool welcomed = false;
  std::uint32_t heartbeat_ms = 500;
  std::unordered_map<std::uint64_t, std::shared_ptr<const Payload>> store;
  std::unordered_map<std::uint64_t, Pending> pending;
  std::unordered_map<std::uint64_t, Fetch> fetches;  // dep -> who waits for it
  std::unordered_map<std::uint32_t, PeerConn> peers;
  std::unordered_map<std::uint64_t, Request> requests;
  std::uint64_t next_request = 1;
  std::vector<WorkerToScheduler> outgoing;
  // TaskDones of pushed results, held back up to kPushedDoneDelayMs from the first of them
  // (see ComputeTask::push_to): the waiting client's receipt usually reaches the scheduler first.
  std::vector<TaskDone> held_done;
  std::uint64_t held_done_since = 0;
  // Jobs made ready while handling this pass's messages; start_ready() hands them over.
  std::vector<Job> ready_jobs;
  struct FnRuns {
    std::uint32_t quick_in_a_row = 0;
    std::uint32_t strikes = 0;  // overruns on the loop thread not yet forgiven
    std::uint32_t quick_since_strike = 0;
    bool may_run_here() const { return strikes < kRunHereMaxStrikes && quick_in_a_row >= kRunHereAfterQuickRuns; }
  };
  std::unordered_map<const dtask_task_v1*, FnRuns> fn_runs;
  // Running a task on the loop thread, safely (see start_ready, standby_main): odd = that run is
  // going on, even = none is, kHereTaken = the standby thread took the loop over. Whoever wins
  // the compare-exchange on a run's number owns the loop afterwards.
  std::atomic<std::uint64_t> here{0};
  std::thread standby;
  std::mutex standby_mutex;
  std::condition_variable standby_cv;
  bool standby_stop = false;           // guarded by standby_mutex
  std::optional<int> standby_result;   // guarded by standby_mutex: the loop's end, if it moved
  std::uint64_t started_ms = 0, last_heard = 0, last_beat = 0;  // the loop's clocks
  std::vector<TaskId> replicas;
  std::uint64_t freed_since_trim = 0;
  // Early starts by nonce (protocol::StartTask): a result computed before the scheduler's
  // ComputeTask came, or (no result) a ComputeTask that came first, so a late StartTask is ignored.
  struct Early {
    std::string key;
    std::shared_ptr<const Payload> result;
    std::string pushed_to;  // the client identity it was pushed to, if the push went out
  };
  std::unordered_map<std::uint64_t, Early> early;
  std::deque<std::uint64_t> early_order;  // insertion order, for forgetting the oldest
  // This pass's StartTasks and who sent them; start_ready() looks at them.
  std::vector<std::pair<StartTask, std::string>> early_starts;

  explicit Impl(WorkerOptions o) : opt(std::move(o)) {
    log = log::make("worker", opt.where.empty() ? opt.name : opt.where);
    if (!opt.plugin) throw std::runtime_error("worker started without a task plugin");
    auto host = transport::resolve_bind_host(opt.interface, opt.host);
    if (!host.ok()) throw std::runtime_error(host.error);
    if (opt.security.enabled) zap = std::make_unique<transport::ZapAuthenticator>(ctx, opt.security.client_public);
    transport::configure_socket(data);
    // Clients reuse one routing id at every worker (results are pushed to it): a client that
    // reconnects takes its id over instead of being refused while the old pipe lingers.
    data.set(zmq::sockopt::router_handover, 1);
    // A send to a peer that is not connected fails instead of vanishing: a pushed result that
    // could not be handed over must not let the scheduler think the client has it.
    data.set(zmq::sockopt::router_mandatory, 1);
    transport::make_curve_server(data, opt.security);
    try {
      address = transport::bind_tcp(data, host.address, 0);
    } catch (const zmq::error_t& e) {
      throw std::runtime_error("worker cannot bind its data server on " + host.address + ": " + e.what());
    }
    if (!opt.local_directory.empty()) {
      std::error_code ec;
      std::filesystem::create_directories(opt.local_directory, ec);
      if (ec) throw std::runtime_error("cannot create local directory " + opt.local_directory + ": " + ec.message());
    }
    transport::configure_socket(sched);
    transport::make_curve_client(sched, opt.security);
    sched.connect(opt.scheduler_address);
  }

  ~Impl() {
    // run() joins the standby thread; this covers a run() that ended by an exception.
    {
      std::lock_guard lock(standby_mutex);
      standby_stop = true;
    }
    standby_cv.notify_all();
    if (standby.joinable() && standby.get_id() != std::this_thread::get_id()) standby.join();
  }

  void send_to_scheduler() {
    if (!held_done.empty() &&
        (!outgoing.empty() || !replicas.empty() || transport::now_ms() >= held_done_since + kPushedDoneDelayMs)) {
      outgoing.insert(outgoing.begin(), std::make_move_iterator(held_done.begin()), std::make_move_iterator(held_done.end()));
      held_done.clear();
      held_done_since = 0;
    }
    if (outgoing.empty() && replicas.empty()) return;
    if (!replicas.empty()) {
      outgoing.push_back(ReplicasAdded{std::move(replicas)});
      replicas.clear();
    }
    transport::send_batch(sched, nullptr, outgoing);
    outgoing.clear();
  }

  zmq::socket_t& peer_socket(WorkerId id) {
    auto& p = peers[id.value];
    if (!p.socket) {
      p.socket = std::make_unique<zmq::socket_t>(ctx, zmq::socket_type::dealer);
      transport::configure_socket(*p.socket);
      transport::make_curve_client(*p.socket, opt.security);
      p.socket->connect(p.address);
    }
    return *p.socket;
  }

  // ---- scheduler messages: one handler each ----
  void on(WorkerWelcome& m) {
    welcomed = true;
    me = m.worker;
    heartbeat_ms = m.heartbeat_ms;
    for (auto& p : m.peers) peers[p.id.value].address = p.address;
  }
  void on(Rejected& m) {
    log->error("the scheduler refused this worker: {}", m.reason);
    stop_code = 1;
    stop_requested = true;
  }
  void on(PeersChanged& m) {
    for (auto& p : m.joined) peers[p.id.value].address = p.address;
    for (auto id : m.left) peers.erase(id.value);
  }
  void on(ComputeTask& m) {
    std::uint64_t id = m.task.value;
    if (pending.count(id)) return;
    if (m.early_nonce != 0 && adopt_early(m)) return;
    Pending p;
    p.msg = std::move(m);
    for (const auto& dep : p.msg.deps) {
      for (std::size_t i = 0; i < dep.holders.size() && i < dep.addresses.size(); ++i) {
        auto& peer = peers[dep.holders[i].value];
        if (peer.address.empty()) peer.address = dep.addresses[i];
      }
      if (store.count(dep.task.value)) continue;
      ++p.missing;
      auto& f = fetches[dep.task.value];
      bool in_flight = !f.waiting.empty();
      f.waiting.push_back(p.msg.task);
      if (!in_flight) {
        f.holders.clear();
        for (auto h : dep.holders) {
          if (h != me) f.holders.push_back(h);
        }
      }
    }
    auto& slot = pending[id] = std::move(p);
    if (slot.missing == 0) submit(slot);
  }
  Early& remember_early(std::uint64_t nonce) {
    auto [it, fresh] = early.try_emplace(nonce);
    if (fresh) {
      early_order.push_back(nonce);
      if (early_order.size() > kEarlyRemembered) {
        early.erase(early_order.front());
        early_order.pop_front();
      }
    }
    return early.at(nonce);
  }

  // The scheduler placed here a task its client asked us to start early: done if that run
  // happened (its result is used, not computed again); otherwise it runs now as usual.
  bool adopt_early(ComputeTask& m) {
    auto it = early.find(m.early_nonce);
    if (it == early.end() || !it->second.result || it->second.key != m.key) {
      remember_early(m.early_nonce);  // a StartTask arriving later is ignored
      return false;
    }
    Early e = std::move(it->second);
    early.erase(it);  // its early_order entry is skipped when it comes up
    // Early results are small (start_early keeps no other), so the data rides along.
    TaskDone done{m.task, e.result->nbytes(), true, *e.result};
    // The client that started it has the result; its receipt usually reaches the scheduler
    // first, as for any pushed result.
    bool pushed = !e.pushed_to.empty() &&
                  std::find(m.push_to.begin(), m.push_to.end(), e.pushed_to) != m.push_to.end();
    store_result(std::move(done), std::move(e.result), pushed, m.dependents_waiting);
    return true;
  }

  // Runs a StartTask now if this worker has nothing else to do and the function has always
  // been quick; anything else is left to the scheduler's ComputeTask. False if this thread no
  // longer runs the loop.
  bool start_early(StartTask& m, const std::string& from) {
    if (early.count(m.nonce)) return true;  // the ComputeTask was first, or a repeat
    const dtask_task_v1* entry = opt.plugin->find(m.func);
    const bool quick = entry && fn_runs[entry].may_run_here();
    if (!quick || !welcomed || !pending.empty() || !ready_jobs.empty() || !exec->idle() || here.load() == kHereTaken) {
      // The client then tells the scheduler at once; its ComputeTask reports an unknown name.
      transport::send_batch(data, &from, std::vector<PeerReply>{NotStarted{m.key}});
      return true;
    }
    Job job;
    // No task's id (slot kNoSlot does not exist): should the run outlast the loop's takeover,
    // its completion finds no pending task to land on.
    job.id = TaskId{~std::uint64_t{0}};
    job.entry = entry;
    job.args.resize(m.args.size());
    for (std::size_t i = 0; i < m.args.size(); ++i) hold_value(job, i, std::move(m.args[i]));
    auto c = run_on_loop(std::move(job));
    if (!c) return false;
    note_run(*c);
    // A failure is left to the ComputeTask, which runs it again and reports it; a big result
    // is not kept (it would not be pushed, and unused ones would pile up here until forgotten).
    if (!c->ok || c->result.nbytes() > kInlineResultBytes) {
      transport::send_batch(data, &from, std::vector<PeerReply>{NotStarted{m.key}});
      return true;
    }
    Early& e = remember_early(m.nonce);
    e.key = std::move(m.key);
    if (transport::send_batch(data, &from, std::vector<PeerReply>{ResultPushed{TaskId{}, e.key, c->result, me, true}})) {
      e.pushed_to = std::move(m.reply_to);
    }
    e.result = std::make_shared<const Payload>(std::move(c->result));
    return true;
  }

  void on(ReleaseTasks& m) {
    if (!held_done.empty()) {
      // Released after the client's receipt: the scheduler needs no TaskDone for these any more.
      std::erase_if(held_done, [&](const TaskDone& d) {
        return std::find(m.tasks.begin(), m.tasks.end(), d.task) != m.tasks.end();
      });
      if (held_done.empty()) held_done_since = 0;
    }
    for (TaskId id : m.tasks) {
      if (auto it = store.find(id.value); it != store.end()) {
        freed_since_trim += it->second->nbytes();
        store.erase(it);
      }
      if (auto it = pending.find(id.value); it != pending.end()) {
        // Not started: gone. Running: its result is dropped when it completes.
        if (!it->second.submitted || exec->withdraw(id)) pending.erase(it);
      }
    }
    if (freed_since_trim >= kTrimThreshold) {
      ::malloc_trim(0);
      freed_since_trim = 0;
    }
  }
  void on(StealRequest& m) {
    auto it = pending.find(m.task.value);
    bool stolen = false;
    if (it != pending.end() && (!it->second.submitted || exec->withdraw(m.task))) {
      pending.erase(it);
      stolen = true;
    }
    outgoing.push_back(StealReply{m.task, stolen});
  }
  void on(Heartbeat&) {}
  void on(WorkerShutdown& m) {
    stop_code = m.code;
    stop_requested = true;
  }

  // Argument `i` of `job` is this value, kept alive by the job for its run.
  static void hold_value(Job& job, std::size_t i, Payload&& value) {
    auto held = std::make_shared<const Payload>(std::move(value));
    job.args[i].value = held.get();
    job.keep.push_back(std::move(held));
  }

  void submit(Pending& p) {
    const dtask_task_v1* entry = opt.plugin->find(p.msg.func);
    if (!entry) {
      std::string names;
      for (const auto& n : opt.plugin->task_names()) names += (names.empty() ? "" : ", ") + n;
      outgoing.push_back(TaskFailed{p.msg.task, "unknown task name '" + p.msg.func + "': plugin '" +
                                                    opt.plugin->name() + "' provides: " + names});
      pending.erase(p.msg.task.value);
      return;
    }
    Job job;
    job.id = p.msg.task;
    job.priority = p.msg.priority;
    job.entry = entry;
    job.resources = p.msg.resources;
    job.args.resize(p.msg.args.size());
    // Keep every input alive for the run: the store may drop its copy meanwhile.
    for (std::size_t i = 0; i < p.msg.args.size(); ++i) {
      auto& a = p.msg.args[i];
      auto& ca = job.args[i];
      if (a.kind == TaskArg::value) {
        hold_value(job, i, std::move(a.data));
      } else {
        ca.is_list = a.kind == TaskArg::dep_list;
        for (TaskId ref : a.refs) {
          auto it = store.find(ref.value);
          if (it == store.end()) {
            outgoing.push_back(FetchFailed{p.msg.task, ref});
            pending.erase(p.msg.task.value);
            return;
          }
          if (ca.is_list) ca.list.push_back(it->second.get());
          else ca.value = it->second.get();
          job.keep.push_back(it->second);
        }
      }
    }
    ready_jobs.push_back(std::move(job));
  }

  // Hands this pass's ready jobs to the executor -- or, when there is exactly one, nothing else
  // is here and its function has always been quick, runs it on this thread: the two thread
  // hand-offs (to an executor thread and back) would cost more than the task (issue 4, W3).
  // False if this thread no longer runs the loop (a task run here took it too long).
  bool start_ready() {
    for (auto& [m, from] : early_starts) {
      if (!start_early(m, from)) {
        early_starts.clear();
        return false;
      }
    }
    early_starts.clear();
    // A job whose task was released or stolen in this same pass (its Pending is gone, having not
    // been submitted yet) is dropped here; a Pending is submitted once.
    std::erase_if(ready_jobs, [&](const Job& job) {
      auto it = pending.find(job.id.value);
      if (it == pending.end() || it->second.submitted) return true;
      it->second.submitted = true;
      return false;
    });
    if (ready_jobs.empty()) return true;
    if (ready_jobs.size() == 1 && ready_jobs.front().resources.empty() && here.load() != kHereTaken) {
      if (fn_runs[ready_jobs.front().entry].may_run_here() && exec->idle()) {
        Job job = std::move(ready_jobs.front());
        ready_jobs.clear();
        auto c = run_on_loop(std::move(job));
        if (!c) return false;
        finish(*c);
        return true;
      }
    }
    for (auto& job : ready_jobs) exec->submit(std::move(job));
    ready_jobs.clear();
    return true;
  }

  // Runs a job on this thread, watched by the standby thread; nullopt if the standby thread
  // took the loop over meanwhile (it then picks the result up like any other).
  std::optional<Completion> run_on_loop(Job job) {
    if (!standby.joinable()) standby = std::thread([this] { standby_main(); });
    std::uint64_t run = here.load() + 1;  // odd: running
    here.store(run);
    Completion c = exec->run_here(std::move(job));
    if (!here.compare_exchange_strong(run, run + 1)) {
      exec->complete_elsewhere(std::move(c));
      return std::nullopt;
    }
    if (c.run_ns > kRunHereMaxNs) {
      auto& runs = fn_runs[c.entry];
      ++runs.strikes;
      runs.quick_since_strike = 0;
    }
    return c;
  }

  // Looks in every kTakeoverPeriod; a run seen going on twice in a row has had the loop for at
  // least that long, so this thread takes the loop over (once: after that nothing runs there).
  void standby_main() {
    std::unique_lock lock(standby_mutex);
    std::uint64_t seen = 0;
    while (!standby_cv.wait_for(lock, kTakeoverPeriod, [&] { return standby_stop; })) {
      std::uint64_t now_here = here.load();
      if (now_here % 2 == 1 && now_here == seen && here.compare_exchange_strong(now_here, kHereTaken)) {
        lock.unlock();
        log->warn("a task that is usually quick ran on the event loop for over {} ms; the loop goes on on another thread",
                  kTakeoverPeriod.count());
        int code = 1;
        try {
          code = run_loop().value_or(1);
        } catch (const std::exception& e) {  // as run() would have let it out: end the worker
          log->error("the worker's event loop failed: {}", e.what());
        }
        lock.lock();
        standby_result = code;
        standby_cv.notify_all();
        return;
      }
      seen = now_here;
    }
  }

  void on_completions() {
    for (auto& c : exec->take_completions()) finish(c);
  }

  void note_run(const Completion& c) {
    auto& runs = fn_runs[c.entry];
    if (c.run_ns > kRunHereMaxNs) {
      runs.quick_in_a_row = 0;
      return;
    }
    runs.quick_in_a_row = std::min(runs.quick_in_a_row + 1, kRunHereAfterQuickRuns);
    if (runs.strikes > 0 && ++runs.quick_since_strike >= kQuickRunsPerPardon) {
      --runs.strikes;
      runs.quick_since_strike = 0;
    }
  }

  // Keeps a finished task's result and reports it: at once, or -- pushed to a waiting client
  // and needed by no other task yet -- held back for that client's receipt (see
  // ComputeTask::push_to).
  void store_result(TaskDone done, std::shared_ptr<const Payload> result, bool pushed, bool dependents_waiting) {
    store[done.task.value] = std::move(result);
    if (pushed && !dependents_waiting) {
      if (held_done.empty()) held_done_since = transport::now_ms();
      held_done.push_back(std::move(done));
    } else {
      outgoing.push_back(std::move(done));
    }
  }

  void finish(Completion& c) {
    note_run(c);
    auto it = pending.find(c.id.value);
    if (it == pending.end()) return;  // released while it ran
    const ComputeTask& msg = it->second.msg;
    if (c.ok) {
      auto nbytes = c.result.nbytes();
      TaskDone done{c.id, nbytes, false, {}};
      bool pushed = false;
      if (nbytes <= kInlineResultBytes) {
        done.has_data = true;
        done.data = c.result;
        // The waiting client hears one hop sooner. A client not connected here (yet) is
        // refused by ZeroMQ and hears from the scheduler as usual.
        for (const auto& client : msg.push_to) {
          if (transport::send_batch(data, &client, std::vector<PeerReply>{ResultPushed{c.id, msg.key, c.result, me, false}})) {
            pushed = true;
          }
        }
      }
      store_result(std::move(done), std::make_shared<const Payload>(std::move(c.result)), pushed, msg.dependents_waiting);
    } else {
      outgoing.push_back(TaskFailed{c.id, std::move(c.error)});
    }
    pending.erase(it);
  }

  // ---- fetching inputs from peers ----
  void start_fetches(std::uint64_t now) {
    std::unordered_map<std::uint32_t, std::vector<TaskId>> by_peer;
    std::vector<std::uint64_t> hopeless;
    for (auto& [dep, f] : fetches) {
      if (f.in_flight) continue;
      while (!f.holders.empty() && !peers.count(f.holders.front().value)) f.holders.erase(f.holders.begin());
      if (f.holders.empty()) {
        hopeless.push_back(dep);
        continue;
      }
      f.in_flight = true;
      by_peer[f.holders.front().value].push_back(TaskId{dep});
    }
    for (auto dep : hopeless) fetch_failed_everywhere(dep);
    for (auto& [peer, deps] : by_peer) {
      std::uint64_t rid = next_request++;
      transport::send_batch(peer_socket(WorkerId{peer}), nullptr, std::vector<PeerRequest>{GetData{rid, deps}});
      requests[rid] = Request{WorkerId{peer}, std::move(deps), now};
    }
  }

  void fetch_failed_everywhere(std::uint64_t dep) {
    auto it = fetches.find(dep);
    if (it == fetches.end()) return;
    for (TaskId t : it->second.waiting) {
      if (pending.erase(t.value)) outgoing.push_back(FetchFailed{t, TaskId{dep}});
    }
    fetches.erase(it);
  }

  void on_data(DataReply& reply) {
    auto rit = requests.find(reply.request_id);
    if (rit == requests.end()) return;
    WorkerId peer = rit->second.peer;
    requests.erase(rit);
    for (auto& item : reply.items) {
      auto fit = fetches.find(item.task.value);
      if (fit == fetches.end()) continue;
      if (!item.found) {
        fit->second.in_flight = false;
        auto& h = fit->second.holders;
        std::erase(h, peer);
        if (h.empty()) fetch_failed_everywhere(item.task.value);
        continue;
      }
      store[item.task.value] = std::make_shared<const Payload>(std::move(item.data));
      replicas.push_back(item.task);
      auto waiting = std::move(fit->second.waiting);
      fetches.erase(fit);
      for (TaskId t : waiting) {
        auto pit = pending.find(t.value);
        if (pit == pending.end()) continue;
        if (pit->second.missing > 0 && --pit->second.missing == 0) submit(pit->second);
      }
    }
  }

  void expire_requests(std::uint64_t now) {
    std::vector<std::uint64_t> expired;
    for (auto& [rid, r] : requests) {
      if (now > r.sent_ms + opt.fetch_timeout_ms) expired.push_back(rid);
    }
    for (auto rid : expired) {
      Request r = std::move(requests[rid]);
      requests.erase(rid);
      log->warn("peer {} did not answer a data request in {} ms", r.peer.value, opt.fetch_timeout_ms);
      for (TaskId d : r.deps) {
        auto fit = fetches.find(d.value);
        if (fit == fetches.end()) continue;
        fit->second.in_flight = false;
        std::erase(fit->second.holders, r.peer);
        if (fit->second.holders.empty()) fetch_failed_everywhere(d.value);
      }
    }
  }

  // ---- serving data to peers and clients ----
  void serve(transport::Received& r) {
    auto d = transport::decode<PeerRequest>(r);
    if (!d.ok()) {
      log->warn("dropping a bad data request: {}", d.error);
      return;
    }
    for (auto& m : d.messages) {
      if (auto* start = std::get_if<StartTask>(&m)) {
        early_starts.emplace_back(std::move(*start), r.identity);
        continue;
      }
      auto& get = std::get<GetData>(m);
      DataReply reply;
      reply.request_id = get.request_id;
      for (TaskId id : get.tasks) {
        DataItem item;
        item.task = id;
        if (auto it = store.find(id.value); it != store.end()) {
          item.found = true;
          item.data = *it->second;  // copies the small header; bulk frames are shared
        }
        reply.items.push_back(std::move(item));
      }
      transport::send_batch(data, &r.identity, std::vector<PeerReply>{std::move(reply)});
    }
  }

  int run() {
    exec = std::make_unique<Executor>(opt.nthreads, opt.resources, opt.name, [this] { wakeup.notify(); });
    RegisterWorker reg;
    reg.name = opt.name;
    reg.host = transport::hostname();
    reg.address = address;
    reg.nthreads = static_cast<std::uint32_t>(opt.nthreads);
    reg.rank = opt.rank;
    reg.memory_limit = opt.memory_limit;
    reg.resources = opt.resources;
    reg.pid = ::getpid();
    transport::send_batch(sched, nullptr, std::vector<WorkerToScheduler>{reg});
    started_ms = last_heard = last_beat = transport::now_ms();
    std::optional<int> code = run_loop();
    {
      std::unique_lock lock(standby_mutex);
      // The loop moved to the standby thread: it ends there.
      if (!code) standby_cv.wait(lock, [&] { return standby_result.has_value(); });
      if (!code) code = standby_result;
      standby_stop = true;
    }
    standby_cv.notify_all();
    if (standby.joinable()) standby.join();
    if (stop_requested) code = stop_code.load();
    exec->shutdown(std::chrono::milliseconds(2000));
    if (welcomed) {
      std::vector<WorkerToScheduler> last(std::make_move_iterator(held_done.begin()), std::make_move_iterator(held_done.end()));
      last.push_back(WorkerGoodbye{*code});
      transport::send_batch(sched, nullptr, last);
    }
    return *code;
  }

  // The event loop; nullopt when this thread handed it over (see start_ready).
  std::optional<int> run_loop() {
    int code = 0;
    while (!stop_requested) {
      std::vector<zmq::pollitem_t> items = {{sched.handle(), 0, ZMQ_POLLIN, 0},
                                            {data.handle(), 0, ZMQ_POLLIN, 0},
                                            {nullptr, wakeup.fd(), ZMQ_POLLIN, 0}};
      std::vector<std::uint32_t> peer_ids;
      for (auto& [id, p] : peers) {
        if (p.socket) {
          items.push_back({p.socket->handle(), 0, ZMQ_POLLIN, 0});
          peer_ids.push_back(id);
        }
      }
      // Held-back TaskDones must leave on time even when nothing else happens.
      const std::uint64_t wait_ms = held_done.empty() ? heartbeat_ms / 2 + 1 : kPushedDoneDelayMs;
      transport::poll(items.data(), items.size(), std::chrono::milliseconds(wait_ms));
      std::uint64_t now = transport::now_ms();
      if (items[2].revents & ZMQ_POLLIN) wakeup.drain();
      on_completions();
      if (items[0].revents & ZMQ_POLLIN) {
        for (int i = 0; i < kMaxDrain; ++i) {
          auto r = transport::try_recv(sched, false);
          if (!r) break;
          last_heard = now;
          auto d = transport::decode<SchedulerToWorker>(*r);
          if (!d.ok()) {
            log->error("cannot understand the scheduler: {}", d.error);
            if (d.peer_version != 0 && d.peer_version != kProtocolVersion) return 1;
            continue;
          }
          for (auto& m : d.messages) {
            try {
              std::visit([&](auto& x) { on(x); }, m);
            } catch (const std::exception& e) {
              log->error("dropped a scheduler message that could not be handled: {}", e.what());
            }
          }
        }
      }
      if (items[1].revents & ZMQ_POLLIN) {
        for (int i = 0; i < kMaxDrain; ++i) {
          auto r = transport::try_recv(data, true);
          if (!r) break;
          try {
            serve(*r);
          } catch (const std::exception& e) {
            log->error("dropped a data request that could not be served: {}", e.what());
          }
        }
      }
      for (std::size_t i = 0; i < peer_ids.size(); ++i) {
        if (!(items[3 + i].revents & ZMQ_POLLIN)) continue;
        auto pit = peers.find(peer_ids[i]);
        if (pit == peers.end() || !pit->second.socket) continue;
        while (auto r = transport::try_recv(*pit->second.socket, false)) {
          auto d = transport::decode<PeerReply>(*r);
          if (!d.ok()) {
            log->warn("dropping a bad data reply: {}", d.error);
            continue;
          }
          for (auto& m : d.messages) {
            if (auto* reply = std::get_if<DataReply>(&m)) on_data(*reply);
          }
        }
      }
      if (!start_ready()) return std::nullopt;
      on_completions();
      if (!fetches.empty()) start_fetches(now);
      if (!requests.empty()) expire_requests(now);
      if (now >= last_beat + heartbeat_ms) {
        outgoing.push_back(Heartbeat{now});
        last_beat = now;
      }
      send_to_scheduler();
      if (!welcomed && now > started_ms + opt.connect_timeout_ms) {
        log->error("no answer from the scheduler at {} within {} s", opt.scheduler_address,
                   opt.connect_timeout_ms / 1000);
        code = 1;
        break;
      }
      if (welcomed && now > last_heard + opt.scheduler_timeout_ms) {
        log->error("lost the scheduler at {} (silent for {} s)", opt.scheduler_address, opt.scheduler_timeout_ms / 1000);
        code = 1;
        break;
      }
    }
    return code;
  }
};

Worker::Worker(WorkerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Worker::~Worker() = default;
const std::string& Worker::address() const { return impl_->address; }
int Worker::run() { return impl_->run(); }
void Worker::stop(int code) {
  impl_->stop_code = code;
  impl_->stop_requested = true;
  impl_->wakeup.notify();
}

}  // namespace dtask::worker

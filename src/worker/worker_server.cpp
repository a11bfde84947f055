// The worker's event loop: owns its sockets, decodes, calls WorkerState, flushes its outbox.
//
// This is the only file in src/worker/ that touches ZeroMQ or transport/. Everything the worker
// decides is in WorkerState (worker_state.hpp) and its fast-path units.
//
// Concurrency:
// - The loop thread (the one that calls Worker::run()) owns every socket: the scheduler dealer
//   (`sched_`), the data router (`data_`, which clients and peers send GetData/StartTask to and
//   where pushes and replies leave), and the peer dealers (`peers_`, one per peer we fetch from).
//   It alone calls WorkerState and touches the outbox (`out_`).
// - Executor threads (executor.hpp) own no socket and never touch WorkerState: they run jobs,
//   queue Completions under the Executor's mutex and wake the loop through `wakeup_` (an eventfd).
// - The standby thread (loop_takeover.hpp) starts with the first task run on the loop thread. If
//   such a task holds the loop for one to two kTakeoverPeriods, the standby thread wins the
//   LoopOwner compare-exchange and from then on IS the loop thread: it owns all of the above
//   (the old thread, when its task ends, hands the completion to the executor and leaves without
//   touching anything). The atomic LoopTakeover::state_ decides who owns the loop; nothing else
//   is shared between the two.
// - Any thread or a signal handler may call Worker::stop() or Worker::retire(): `stop_requested_`,
//   `stop_code_` and `retire_at_` are atomics and `wakeup_` wakes the loop, which hands the retire
//   request to WorkerState at its next pass. The ZAP authenticator has its own thread and socket.
// - Memory (only with memory_limit > 0; docs/worker.md "Memory"): the spill files' I/O thread
//   (`spill_`, spill_files.hpp) alone touches the spill directory's files; the loop's owner hands
//   it requests from WorkerOutbox::spill and takes its completions (its queues have their own
//   mutex); it wakes the loop through `wakeup_`. The memory monitor thread (`memory_monitor_`,
//   only when measure_process_memory) reads resident_bytes() every kMemorySampleMs into the
//   atomic `process_memory_`, which the loop hands to WorkerState each pass; it wakes the loop
//   when the sample crosses the spill or pause threshold (either way), and above terminate it
//   logs one line, notes the kill on the RunningBoard and SIGKILLs the process itself (the loop
//   may be busy in a task on the loop thread). `monitor_stop_` (under `monitor_mutex_`) ends it.
// - `monitor_` (a PAIR socket) receives libzmq's events about `sched_`'s connection (closed, made
//   again); the loop's owner reads it like its other sockets: that is how a dead scheduler is
//   noticed within about a second (WorkerState::scheduler_link).
// - LoopTakeover::mutex_ guards only the standby thread's stop flag and the loop's end code when
//   the loop ended on the standby thread; the Executor's mutex guards its queues.
// - Telemetry (telemetry.hpp, docs/worker.md "Telemetry and logs"): the thread that ran a task
//   records it in `telemetry_` (its one mutex, once per task); the loop's owner records fetches and
//   drains it with each heartbeat (WorkerState::tick) and once before the goodbye. `tap_` (its own
//   mutex) keeps the info lines any thread logs on `log_`; the drain takes them.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <thread>
#include <unordered_map>

#include <zmq.hpp>

#include "common/drop_log.hpp"
#include "common/hugepages.hpp"
#include "common/log.hpp"
#include "common/memory_limit.hpp"
#include "transport/transport.hpp"
#include "worker/executor.hpp"
#include "worker/loop_takeover.hpp"
#include "worker/spill_directory.hpp"
#include "worker/spill_files.hpp"
#include "worker/worker.hpp"
#include "worker/worker_state.hpp"

namespace dtask::worker {

using namespace protocol;

namespace {
// Upper bound of messages read from one socket per pass: keeps latency bounded under load.
constexpr int kMaxDrain = 20000;
// The loop's poll items before the peers': scheduler, data server, wakeup, scheduler link monitor.
constexpr std::size_t kFixedItems = 4;
// How often the memory monitor samples the process's resident memory.
constexpr std::chrono::milliseconds kMemorySampleMs{50};
}  // namespace

struct Worker::Impl {
  struct PeerConn {
    std::string address;
    std::unique_ptr<zmq::socket_t> socket;
  };

  WorkerOptions opt_;
  std::shared_ptr<spdlog::logger> log_;
  // The lines at info and above for get_worker_logs, and what goes with the heartbeat (see the header).
  std::shared_ptr<log::LogTap> tap_ = log::LogTap::attach(log_);
  std::shared_ptr<TelemetryRecorder> telemetry_ = std::make_shared<TelemetryRecorder>(tap_);
  // Bad input is logged once per peer, then rate-limited (loop thread only).
  log::DropLimiter bad_input_;
  zmq::context_t ctx_{1};
  std::unique_ptr<transport::ZapAuthenticator> zap_;
  zmq::socket_t sched_{ctx_, zmq::socket_type::dealer};
  zmq::socket_t data_{ctx_, zmq::socket_type::router};
  std::unordered_map<std::uint32_t, PeerConn> peers_;
  std::string address_;
  transport::Wakeup wakeup_;
  std::atomic<bool> stop_requested_{false};
  std::atomic<int> stop_code_{0};
  std::atomic<std::uint64_t> retire_at_{0};  // when retire() was first called (now_ms), 0: never
  bool retire_passed_ = false;                // loop owner: WorkerState::retire was called
  zmq::socket_t monitor_;
  std::unique_ptr<Executor> exec_;
  LoopTakeover takeover_;
  std::unique_ptr<ExecutorOnLoop> port_;
  std::unique_ptr<WorkerState> state_;
  WorkerOutbox out_;  // filled and flushed by the loop's owner within a pass
  // Memory (memory_limit > 0). The directory outlives the I/O thread that writes in it.
  SpillDirectory spill_dir_;
  std::unique_ptr<SpillFiles> spill_;
  std::atomic<std::uint64_t> process_memory_{0};
  std::mutex monitor_mutex_;  // guards monitor_stop_
  std::condition_variable monitor_cv_;
  bool monitor_stop_ = false;
  std::thread memory_monitor_;

  explicit Impl(WorkerOptions o) : opt_(std::move(o)), log_(log::make("worker", opt_.where.empty() ? opt_.name : opt_.where)),
                                   takeover_(log_) {
    if (!opt_.plugin) throw std::runtime_error("worker started without a task plugin");
    auto host = transport::resolve_bind_host(opt_.interface, opt_.host);
    if (!host.ok()) throw std::runtime_error(host.error);
    if (opt_.security.enabled) zap_ = std::make_unique<transport::ZapAuthenticator>(ctx_, opt_.security.client_public);
    transport::configure_socket(data_);
    // Clients reuse one routing id at every worker (results are pushed to it): a client that
    // reconnects takes its id over instead of being refused while the old pipe lingers.
    data_.set(zmq::sockopt::router_handover, 1);
    // A send to a peer that is not connected fails instead of vanishing: a pushed result that
    // could not be handed over must not let the scheduler think the client has it.
    data_.set(zmq::sockopt::router_mandatory, 1);
    transport::make_curve_server(data_, opt_.security);
    try {
      address_ = transport::bind_tcp(data_, host.address, 0);
    } catch (const zmq::error_t& e) {
      throw std::runtime_error("worker cannot bind its data server on " + host.address + ": " + e.what());
    }
    if (!opt_.local_directory.empty()) {
      std::error_code ec;
      std::filesystem::create_directories(opt_.local_directory, ec);
      if (ec) throw std::runtime_error("cannot create local directory " + opt_.local_directory + ": " + ec.message());
    }
    if (opt_.memory_limit != 0) {
      validate(opt_.memory_thresholds);
      // Before registering: an unusable directory is the worker's start error (its message names it).
      spill_dir_ = SpillDirectory::create(opt_.local_directory, opt_.name);  // empty: $TMPDIR, else /tmp
      const char* c = std::getenv("DTASK_SPILL_COMPRESSION");
      const bool compress = opt_.spill_compression && !(c && std::string(c) == "0");
      spill_ = std::make_unique<SpillFiles>(spill_dir_.path(), compress, [this] { wakeup_.notify(); });
    }
    transport::configure_socket(sched_);
    transport::make_curve_client(sched_, opt_.security);
    // Events about the connection to the scheduler, before it is made (see the header).
    monitor_ = transport::monitor_links(ctx_, sched_, "inproc://dtask-worker-scheduler-link",
                                        ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
    sched_.connect(opt_.scheduler_address);
  }

  ~Impl() {
    {
      std::lock_guard lock(monitor_mutex_);
      monitor_stop_ = true;
    }
    monitor_cv_.notify_all();
    if (memory_monitor_.joinable()) memory_monitor_.join();
    spill_.reset();  // its thread first, then the directory (spill_dir_'s destructor removes it)
  }

  // The memory monitor thread (see the header): samples, wakes the loop on a crossing, terminates.
  void monitor_memory() {
    const auto& t = opt_.memory_thresholds;
    const std::uint64_t limit = opt_.memory_limit;
    ProcessCrossings seen;
    std::unique_lock lock(monitor_mutex_);
    while (!monitor_cv_.wait_for(lock, kMemorySampleMs, [&] { return monitor_stop_; })) {
      const std::uint64_t rss = resident_bytes();
      process_memory_.store(rss, std::memory_order_relaxed);
      const ProcessCrossings now = process_crossings(t, limit, rss);
      if (now.terminate) {
        log_->error("worker '{}': process memory {} MiB is above {}% of its memory_limit {} MiB: terminating; its "
                    "supervisor restarts it",
                    opt_.name, rss >> 20, static_cast<int>(t.terminate * 100 + 0.5), limit >> 20);
        log_->flush();
        if (opt_.board) opt_.board->note_memory_kill(rss >> 20, limit >> 20);
        ::kill(::getpid(), SIGKILL);
      }
      if (now != seen) {  // the loop's judge_memory acts on a crossing at once, either way
        seen = now;
        wakeup_.notify();
      }
    }
  }

  void read_monitor(std::uint64_t now) {
    while (auto e = transport::next_link_event(monitor_)) {
      if (e->event == ZMQ_EVENT_DISCONNECTED) state_->scheduler_link(false, now);
      else if (e->event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) state_->scheduler_link(true, now);
    }
  }

  WorkerConfig config() const {
    WorkerConfig c;
    c.fast_paths = opt_.fast_paths;
    c.fetch_timeout_ms = opt_.fetch_timeout_ms;
    c.connect_timeout_ms = opt_.connect_timeout_ms;
    c.scheduler_timeout_ms = opt_.scheduler_timeout_ms;
    c.drain_timeout_ms = opt_.drain_timeout_ms;
    c.reconnect_grace_ms = transport::kReconnectGraceMs;
    c.lifetime_ms = opt_.lifetime_ms;
    c.memory_limit = opt_.memory_limit;
    c.memory_thresholds = opt_.memory_thresholds;
    c.name = opt_.name;
    auto plugin = opt_.plugin;
    c.find_task = [plugin](const std::string& name) { return plugin->find(name); };
    std::string names;
    for (const auto& n : plugin->task_names()) names += (names.empty() ? "" : ", ") + n;
    c.tasks_provided = "plugin '" + plugin->name() + "' provides: " + names;
    c.log = log_;
    c.telemetry = telemetry_;
    return c;
  }

  zmq::socket_t& peer_socket(WorkerId id, const std::string& address) {
    auto& p = peers_[id.value];
    if (!p.socket) {
      p.address = address;
      p.socket = std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::dealer);
      transport::configure_socket(*p.socket);
      transport::make_curve_client(*p.socket, opt_.security);
      p.socket->connect(p.address);
    }
    return *p.socket;
  }

  // Sends what the pass decided: the data socket first (a refused push changes what the
  // scheduler must hear), then peers and the executor, the scheduler's batch last.
  void flush(std::uint64_t now) {
    if (!out_.replies.empty()) {
      auto replies = std::move(out_.replies);
      out_.replies.clear();
      for (auto& r : replies) {
        if (!transport::send_batch(data_, &r.to, std::vector<PeerReply>{std::move(r.msg)}) &&
            r.push.kind != PushRef::Kind::none) {
          state_->push_refused(r.push, out_);
        }
      }
    }
    for (auto& p : out_.to_peers) {
      transport::send_batch(peer_socket(p.peer, p.address), nullptr, std::vector<PeerRequest>{std::move(p.msg)});
    }
    out_.to_peers.clear();
    for (auto id : out_.peers_left) peers_.erase(id.value);
    out_.peers_left.clear();
    for (auto& job : out_.to_executor) exec_->submit(std::move(job));
    out_.to_executor.clear();
    if (!out_.spill.empty()) {
      for (auto& s : out_.spill) {
        switch (s.kind) {
          case WorkerOutbox::Spill::Kind::write: spill_->write(s.id, s.tag, std::move(s.payload)); break;
          case WorkerOutbox::Spill::Kind::read: spill_->read(s.id, s.tag); break;
          case WorkerOutbox::Spill::Kind::remove: spill_->remove(s.id); break;
        }
      }
      out_.spill.clear();
    }
    if (out_.trim_memory) {
      trim_malloc();
      out_.trim_memory = false;
    }
    state_->settle(now, out_);
    if (!out_.to_scheduler.empty()) {
      transport::send_batch(sched_, nullptr, out_.to_scheduler);
      out_.to_scheduler.clear();
    }
  }

  void take_completions() {
    for (auto& c : exec_->take_completions()) state_->on_completion(std::move(c), out_);
    if (spill_) {
      for (auto& d : spill_->take_completions()) state_->on_spill(std::move(d), out_);
    }
  }

  int run() {
    exec_ = std::make_unique<Executor>(opt_.nthreads, opt_.resources, opt_.name, [this] { wakeup_.notify(); },
                                       opt_.board, telemetry_);
    port_ = std::make_unique<ExecutorOnLoop>(*exec_, takeover_, [this] { return run_loop().value_or(1); });
    state_ = std::make_unique<WorkerState>(config(), *port_);
    if (opt_.memory_limit != 0 && opt_.measure_process_memory) {
      process_memory_ = resident_bytes();
      memory_monitor_ = std::thread([this] { monitor_memory(); });
    }
    RegisterWorker reg;
    reg.name = opt_.name;
    reg.host = transport::hostname();
    reg.address = address_;
    reg.nthreads = static_cast<std::uint32_t>(opt_.nthreads);
    reg.rank = opt_.rank;
    reg.memory_limit = opt_.memory_limit;
    reg.resources = opt_.resources;
    reg.pid = ::getpid();
    reg.previous = opt_.previous;  // from the supervisor: this name's previous incarnation died
    transport::send_batch(sched_, nullptr, std::vector<WorkerToScheduler>{reg});
    log_->info("worker '{}' started on {}: {} thread{}, memory limit {}, data at {}, scheduler at {}", opt_.name,
               reg.host, opt_.nthreads, opt_.nthreads == 1 ? "" : "s",
               opt_.memory_limit ? std::to_string(opt_.memory_limit >> 20) + " MiB" : std::string("none"), address_,
               opt_.scheduler_address);
    state_->started(transport::now_ms());
    std::optional<int> code = run_loop();
    // The loop moved to the standby thread: it ends there.
    if (auto moved = takeover_.finish(!code.has_value())) code = moved;
    if (stop_requested_) code = stop_code_.load();
    // A lost scheduler: leave at once (the tasks' results could go nowhere, a goodbye neither).
    const bool gone = state_->stop() && state_->stop()->scheduler_gone;
    if (!exec_->shutdown(std::chrono::milliseconds(gone ? 0 : 2000))) {
      // Tasks still run on detached threads that use the executor: it must outlive them, so it
      // is leaked on purpose (the process ends next; an embedding program loses one executor).
      (void)exec_.release();
    }
    if (gone) sched_.set(zmq::sockopt::linger, 0);
    if (state_->welcomed() && !gone) {
      log_->info("worker '{}' leaving (exit code {})", opt_.name, code.value_or(1));
      auto held = state_->take_held();
      std::vector<WorkerToScheduler> last(std::make_move_iterator(held.begin()), std::make_move_iterator(held.end()));
      // The runs and lines since the last heartbeat (the executor has stopped: nothing comes after).
      if (auto t = telemetry_->drain()) last.push_back(std::move(*t));
      last.push_back(WorkerGoodbye{code.value_or(1)});
      transport::send_batch(sched_, nullptr, last);
    }
    return code.value_or(1);
  }

  // The event loop; nullopt when this thread lost it to the standby thread (see loop_takeover.hpp).
  std::optional<int> run_loop() {
    while (!stop_requested_) {
      std::vector<zmq::pollitem_t> items = {{sched_.handle(), 0, ZMQ_POLLIN, 0},
                                            {data_.handle(), 0, ZMQ_POLLIN, 0},
                                            {nullptr, wakeup_.fd(), ZMQ_POLLIN, 0},
                                            {monitor_.handle(), 0, ZMQ_POLLIN, 0}};
      std::vector<std::uint32_t> peer_ids;
      for (auto& [id, p] : peers_) {
        if (p.socket) {
          items.push_back({p.socket->handle(), 0, ZMQ_POLLIN, 0});
          peer_ids.push_back(id);
        }
      }
      transport::poll(items.data(), items.size(), std::chrono::milliseconds(state_->poll_timeout_ms()));
      const std::uint64_t now = transport::now_ms();
      if (items[2].revents & ZMQ_POLLIN) wakeup_.drain();
      if (items[3].revents & ZMQ_POLLIN) read_monitor(now);
      if (!retire_passed_ && retire_at_.load() != 0) {
        retire_passed_ = true;
        state_->retire(now, out_);
      }
      take_completions();
      if (items[0].revents & ZMQ_POLLIN) {
        for (int i = 0; i < kMaxDrain; ++i) {
          auto r = transport::try_recv(sched_, false);
          if (!r) break;
          auto d = transport::decode<SchedulerToWorker>(*r);
          if (!d.ok()) {
            if (d.peer_version != 0 && d.peer_version != kProtocolVersion) {
              log_->error("cannot understand the scheduler: {}", d.error);
              return 1;
            }
            log::warn_limited(*log_, bad_input_, "scheduler", now, "dropping a bad message from the scheduler: " + d.error);
            continue;
          }
          for (auto& m : d.messages) {
            try {
              state_->handle(std::move(m), now, out_);
            } catch (const std::exception& e) {
              log::warn_limited(*log_, bad_input_, "scheduler", now,
                                std::string("dropped a scheduler message that could not be handled: ") + e.what());
            }
          }
        }
      }
      if (items[1].revents & ZMQ_POLLIN) {
        for (int i = 0; i < kMaxDrain; ++i) {
          auto r = transport::try_recv(data_, true);
          if (!r) break;
          auto d = transport::decode<PeerRequest>(*r);
          if (!d.ok()) {
            log::warn_limited(*log_, bad_input_, r->identity, now, "dropping a bad data request: " + d.error);
            continue;
          }
          for (auto& m : d.messages) {
            try {
              state_->handle_request(std::move(m), r->identity, out_);
            } catch (const std::exception& e) {
              log::warn_limited(*log_, bad_input_, r->identity, now,
                                std::string("dropped a data request that could not be served: ") + e.what());
            }
          }
        }
      }
      for (std::size_t i = 0; i < peer_ids.size(); ++i) {
        if (!(items[kFixedItems + i].revents & ZMQ_POLLIN)) continue;
        auto pit = peers_.find(peer_ids[i]);
        if (pit == peers_.end() || !pit->second.socket) continue;
        while (auto r = transport::try_recv(*pit->second.socket, false)) {
          auto d = transport::decode<PeerReply>(*r);
          if (!d.ok()) {
            log::warn_limited(*log_, bad_input_, "peer " + std::to_string(peer_ids[i]), now,
                              "dropping a bad data reply from peer " + std::to_string(peer_ids[i]) + ": " + d.error);
            continue;
          }
          for (auto& m : d.messages) state_->handle_reply(std::move(m), now, out_);
        }
      }
      if (!state_->start_ready(out_)) return std::nullopt;  // the standby thread owns the loop now
      take_completions();
      if (memory_monitor_.joinable()) state_->memory_sample(process_memory_.load(std::memory_order_relaxed));
      state_->tick(now, out_);
      flush(now);
      if (const auto& stop = state_->stop()) {
        if (!stop->reason.empty()) log_->error("{} (scheduler {})", stop->reason, opt_.scheduler_address);
        return stop->code;
      }
    }
    return stop_code_.load();
  }
};

Worker::Worker(WorkerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Worker::~Worker() = default;
const std::string& Worker::address() const { return impl_->address_; }
int Worker::run() { return impl_->run(); }
void Worker::stop(int code) {
  impl_->stop_code_ = code;
  impl_->stop_requested_ = true;
  impl_->wakeup_.notify();
}
void Worker::retire(int code) {
  // Signal-safe: a clock read (clock_gettime), atomics and an eventfd write.
  const std::uint64_t now = std::max<std::uint64_t>(transport::now_ms(), 1);
  std::uint64_t first = 0;
  if (impl_->retire_at_.compare_exchange_strong(first, now)) {
    impl_->wakeup_.notify();
  } else if (now > first + kRetireRepeatMs) {
    stop(code);
  }
}

}  // namespace dtask::worker

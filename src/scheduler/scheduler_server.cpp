// The scheduler's event loop: one ROUTER socket, SchedulerState decisions, batched replies.
#include "scheduler/scheduler_server.hpp"

#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <unordered_map>

#include <zmq.hpp>

#include "common/drop_log.hpp"
#include "common/host.hpp"
#include "common/log.hpp"
#include "common/memory_limit.hpp"
#include "common/scheduler_file.hpp"
#include "dashboard/http_server.hpp"
#include "dashboard/report_html.hpp"
#include "transport/transport.hpp"

namespace dtask::scheduler {

using namespace protocol;

namespace {
// Upper bound of messages handled before replies are flushed: keeps latency bounded under load.
constexpr int kMaxDrain = 20000;
// Upper bound of messages per outgoing batch, so one giant graph does not become one giant frame.
constexpr std::size_t kMaxBatch = 20000;
// How often the loop renders a dashboard snapshot (and samples throughput for the report): the
// page polls faster than twice a second, and this is the only work a browser costs the loop.
constexpr std::uint64_t kPublishMs = 250;
// ...but only while someone reads them (a page polls, a scraper scrapes). The first read after a
// quiet spell asks for one (dashboard::Server's want_fresh wakes the loop) and waits for it.
constexpr std::uint64_t kWatchedMs = 3000;

double cpu_seconds_of_process() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

std::uint64_t wall_ms() {
  using namespace std::chrono;
  return static_cast<std::uint64_t>(duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}
}  // namespace

struct SchedulerServer::Impl {
  SchedulerOptions opt;
  zmq::context_t ctx{1};
  std::unique_ptr<transport::ZapAuthenticator> zap;
  zmq::socket_t router{ctx, zmq::socket_type::router};
  std::string address;
  SchedulerState state;
  std::shared_ptr<spdlog::logger> log;
  // Bad messages are logged once per peer, then rate-limited (loop thread only).
  log::DropLimiter bad_input;
  transport::Wakeup wakeup;
  std::atomic<int> stop_code{0};
  std::atomic<bool> stop_requested{false};
  // Connection loss (loop thread only). `links` (PAIR) receives libzmq's DISCONNECTED events for
  // `router`'s connections, naming the connection's fd; `worker_fd` is the fd each worker last
  // spoke on (by WorkerId), so an event names a worker. Events are applied only once the router
  // is drained: what a dying worker sent before its connection closed is read first.
  zmq::socket_t links;
  std::vector<int> worker_fd;
  std::vector<int> closed_fds;
  std::uint64_t link_deadline = 0;  // when the first closed link's grace ends (0: none pending)
  // The dashboard's HTTP server runs its own threads and reads only what publish() hands it;
  // the loop alone renders snapshots (docs/dashboard.md).
  std::unique_ptr<dashboard::Server> dash;
  std::string dashboard_link;
  std::uint64_t last_publish = 0;
  std::uint64_t last_snapshot = 0;
  double last_cpu_s = 0;
  std::uint64_t last_cpu_at = 0;
  double cpu_percent = 0;

  void log_closed(const std::vector<WorkerId>& ws) {
    for (auto w : ws) {
      const auto* rec = state.worker(w);
      log->warn("worker '{}' ({}) closed its connection and did not come back; its tasks are rescheduled",
                rec->info.name, rec->info.host);
    }
  }

  explicit Impl(SchedulerOptions o)
      : opt(std::move(o)), state(opt.config, log::make("scheduler", opt.where)), log(state.logger()) {
    auto host = transport::resolve_bind_host(opt.interface, opt.host);
    if (!host.ok()) throw std::runtime_error(host.error);
    if (opt.security.enabled) zap = std::make_unique<transport::ZapAuthenticator>(ctx, opt.security.client_public);
    transport::configure_socket(router);
    transport::make_curve_server(router, opt.security);
    links = transport::monitor_links(ctx, router, "inproc://dtask-scheduler-links", ZMQ_EVENT_DISCONNECTED);
    try {
      address = transport::bind_tcp(router, host.address, opt.port);
    } catch (const zmq::error_t& e) {
      throw std::runtime_error("scheduler cannot bind to " + host.address + ":" + std::to_string(opt.port) + ": " +
                               e.what());
    }
    const std::uint64_t now = transport::now_ms();
    state.observatory().set_wall_offset(static_cast<std::int64_t>(wall_ms()) - static_cast<std::int64_t>(now));
    state.observatory().set_started(now);
    // A dashboard that cannot start is an error now (a bad address), like a port the scheduler
    // cannot bind: the user asked for it.
    // A read that finds the last snapshot stale wakes the loop, which renders one at once (publish()).
    dash = dashboard::Server::start(
        {opt.dashboard_address, host.address, dashboard::make_token(), log, [this] { wakeup.notify(); }});
    if (dash) {
      dashboard_link = dash->link();
      state.set_dashboard_link(dashboard_link);
      log->info("dashboard at {}", dashboard_link);
    }
    if (!opt.scheduler_file.empty()) {
      dtask::write_scheduler_file(opt.scheduler_file, address, opt.security, opt.job_id, dashboard_link);
    }
  }

  // The scheduler object of snapshots and reports: where it is and what its process costs.
  nlohmann::json process_info(std::uint64_t now) {
    double cpu = cpu_seconds_of_process();
    if (last_cpu_at != 0 && now > last_cpu_at) {
      cpu_percent = 100.0 * (cpu - last_cpu_s) * 1000.0 / static_cast<double>(now - last_cpu_at);
    }
    last_cpu_s = cpu;
    last_cpu_at = now;
    return {{"address", address}, {"host", hostname()}, {"job_id", opt.job_id}, {"cpu_seconds", cpu},
            {"cpu_percent", cpu_percent}, {"rss_bytes", resident_bytes()}, {"dashboard", dash != nullptr}};
  }

  // Every kPublishMs (or when a reader asks): a throughput sample for the report and, while the
  // dashboard is read, a snapshot.
  void publish(std::uint64_t now) {
    last_publish = now;
    state.observatory().sample_throughput(now, state.finished_total());
    auto info = process_info(now);
    if (dash && now < dash->last_read_ms() + kWatchedMs) {
      last_snapshot = now;
      auto p = std::make_shared<dashboard::Publication>();
      p->snapshot = state.snapshot(now, info);
      p->snapshot_text = p->snapshot.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      dash->publish(std::move(p));
    }
    state.set_process_info(std::move(info));
  }

  // --report: the whole job as one page, written once the loop ended (a failure is one line).
  void write_report() {
    if (opt.report_path.empty()) return;
    const std::uint64_t now = transport::now_ms();
    try {
      state.observatory().sample_throughput(now, state.finished_total());
      dashboard::write_report_html(opt.report_path, state.report(now, 0, process_info(now)));
    } catch (const std::exception& e) {
      log->error("cannot write the report: {}", e.what());
    }
  }

  ~Impl() {
    if (!opt.scheduler_file.empty()) ::unlink(opt.scheduler_file.c_str());
  }

  void send_rejection(const std::string& identity, const std::string& reason, bool to_worker) {
    if (to_worker) {
      transport::send_batch(router, &identity, std::vector<SchedulerToWorker>{Rejected{reason}});
    } else {
      transport::send_batch(router, &identity, std::vector<SchedulerToClient>{Rejected{reason}});
    }
  }

  void on_message(transport::Received& r, std::uint64_t now, Outbox& out) {
    if (const auto* w = state.worker_by_identity(r.identity)) {
      auto d = transport::decode<WorkerToScheduler>(r);
      if (!d.ok()) {
        log::warn_limited(*log, bad_input, r.identity, now, "dropping a bad message from worker " + w->info.name + ": " + d.error);
        return;
      }
      WorkerId id = w->id;
      note_fd(id, r.source_fd);
      for (auto& m : d.messages) state.handle(id, std::move(m), now, out);
      return;
    }
    if (const auto* c = state.client_by_identity(r.identity)) {
      auto d = transport::decode<ClientToScheduler>(r);
      if (!d.ok()) {
        log::warn_limited(*log, bad_input, r.identity, now, "dropping a bad message from client " + c->name + ": " + d.error);
        return;
      }
      ClientId id = c->id;
      for (auto& m : d.messages) state.handle(id, std::move(m), now, out);
      return;
    }
    // A newcomer: its first message must register it as a worker or a client.
    auto as_worker = transport::decode<WorkerToScheduler>(r);
    if (as_worker.ok() && !as_worker.messages.empty()) {
      auto* reg = std::get_if<RegisterWorker>(&as_worker.messages.front());
      if (!reg) return;  // a late message from a worker already removed: nothing to do
      std::string why;
      auto id = state.add_worker(*reg, r.identity, now, out, &why);
      if (!id) {
        log->warn("refused worker '{}' from {}: {}", reg->name, reg->host, why);
        send_rejection(r.identity, why, true);
        return;
      }
      note_fd(*id, r.source_fd);
      log->info("worker '{}' registered from {} ({} threads)", reg->name, reg->address, reg->nthreads);
      for (std::size_t i = 1; i < as_worker.messages.size(); ++i) state.handle(*id, std::move(as_worker.messages[i]), now, out);
      return;
    }
    auto as_client = transport::decode<ClientToScheduler>(r);
    if (as_client.ok() && !as_client.messages.empty()) {
      auto* reg = std::get_if<RegisterClient>(&as_client.messages.front());
      if (!reg) return;
      auto id = state.add_client(*reg, r.identity, now, out);
      log->info("client '{}' connected", reg->name);
      for (std::size_t i = 1; i < as_client.messages.size(); ++i) state.handle(*id, std::move(as_client.messages[i]), now, out);
      return;
    }
    // Say why to a peer of another protocol version; anything else is dropped quietly.
    if (as_worker.peer_version != 0 && as_worker.peer_version != kProtocolVersion) {
      log::warn_limited(*log, bad_input, r.identity, now, "refused a peer: " + as_worker.error);
      send_rejection(r.identity, as_worker.error, true);
    } else {
      log->debug("dropping an unrecognised message: {}", as_worker.error);
    }
  }

  // Sends `entries` grouped by peer, in the order they were made: one batch per peer (a few for
  // a huge one), to the identity `identity_of(id)` returns (nullptr: the peer is gone).
  template <class Id, class Msg, class IdentityOf>
  void send_grouped(std::vector<std::pair<Id, Msg>>& entries, IdentityOf identity_of) {
    if (entries.empty()) return;
    std::unordered_map<std::uint32_t, std::vector<Msg>> by;
    std::vector<std::uint32_t> order;
    for (auto& [id, m] : entries) {
      auto& v = by[id.value];
      if (v.empty()) order.push_back(id.value);
      v.push_back(std::move(m));
    }
    entries.clear();
    for (auto id : order) {
      const std::string* identity = identity_of(Id{id});
      if (!identity) continue;
      auto& msgs = by[id];
      for (std::size_t i = 0; i < msgs.size(); i += kMaxBatch) {
        std::vector<Msg> chunk(std::make_move_iterator(msgs.begin() + static_cast<std::ptrdiff_t>(i)),
                               std::make_move_iterator(msgs.begin() + static_cast<std::ptrdiff_t>(std::min(msgs.size(), i + kMaxBatch))));
        transport::send_batch(router, identity, chunk);
      }
    }
  }

  void flush(Outbox& out) {
    send_grouped(out.to_workers, [&](WorkerId w) {
      const auto* rec = state.worker(w);
      return rec ? &rec->identity : nullptr;
    });
    for (auto& [c, m] : out.to_clients) {
      if (auto* info = std::get_if<InfoReply>(&m)) info->info["address"] = address;
    }
    send_grouped(out.to_clients, [&](ClientId c) {
      const auto* rec = state.client(c);
      return rec ? &rec->identity : nullptr;
    });
  }

  void note_fd(WorkerId id, int fd) {
    if (id.value >= worker_fd.size()) worker_fd.resize(id.value + 1, -1);
    worker_fd[id.value] = fd;
  }

  void read_links() {
    while (auto e = transport::next_link_event(links)) {
      if (e->event == ZMQ_EVENT_DISCONNECTED && e->value >= 0) closed_fds.push_back(e->value);
    }
  }

  // Called with the router drained: the workers that last spoke on a closed connection.
  void apply_closed_links(std::uint64_t now) {
    for (int fd : closed_fds) {
      for (auto w : state.alive_workers()) {
        if (w.value < worker_fd.size() && worker_fd[w.value] == fd) {
          worker_fd[w.value] = -1;
          state.connection_closed(w, now);
          if (link_deadline == 0) link_deadline = now + opt.config.heartbeat_ms;
        }
      }
    }
    closed_fds.clear();
  }

  int run() {
    Outbox out;
    const std::uint64_t hb = opt.config.heartbeat_ms;
    std::uint64_t last_tick = transport::now_ms();
    std::uint64_t shutdown_deadline = 0;
    bool had_client = false;
    while (true) {
      if (stop_requested.exchange(false)) {
        state.request_shutdown(stop_code.load(), "stopped by a signal", out);
      }
      std::uint64_t now = transport::now_ms();
      if (state.shutdown_requested()) {
        if (shutdown_deadline == 0) shutdown_deadline = now + opt.shutdown_grace_ms;
        flush(out);
        // Live workers answer within a heartbeat; one silent for three is dead and not waited for.
        bool anyone_talking = false;
        for (auto w : state.alive_workers()) {
          if (now < state.worker(w)->last_seen_ms + 3 * hb) anyone_talking = true;
        }
        if (!anyone_talking || now >= shutdown_deadline) break;
      }
      // A reader asking for a fresh snapshot (want_fresh) woke us: one read since the last
      // snapshot, which is older than a reader accepts.
      const bool reader_waits = dash && dash->last_read_ms() > last_snapshot && last_snapshot + dashboard::kFreshMs <= now;
      if (now >= last_publish + kPublishMs || reader_waits) publish(now);
      std::uint64_t wait = now >= last_tick + hb ? 0 : last_tick + hb - now;
      wait = std::min(wait, last_publish + kPublishMs > now ? last_publish + kPublishMs - now : 0);
      if (link_deadline != 0) wait = std::min(wait, link_deadline > now ? link_deadline - now : 0);
      zmq::pollitem_t items[] = {{router.handle(), 0, ZMQ_POLLIN, 0},
                                 {nullptr, wakeup.fd(), ZMQ_POLLIN, 0},
                                 {links.handle(), 0, ZMQ_POLLIN, 0}};
      transport::poll(items, 3, std::chrono::milliseconds(std::max<std::uint64_t>(wait, 1)));
      if (items[1].revents & ZMQ_POLLIN) wakeup.drain();
      // Events first, messages after: an event read now is applied only after what its
      // connection delivered before closing has been read (below).
      if (items[2].revents & ZMQ_POLLIN) read_links();
      now = transport::now_ms();
      if (items[0].revents & ZMQ_POLLIN) {
        // Bounded by count and by time: a huge graph arriving must not starve heartbeats and
        // replies (peers would think this scheduler dead).
        const std::uint64_t drain_start = transport::now_ms();
        for (int i = 0; i < kMaxDrain && transport::now_ms() < drain_start + 100; ++i) {
          auto r = transport::try_recv(router, true);
          if (!r) break;
          // Nothing escapes the loop: a message that makes a handler throw is logged and dropped.
          try {
            on_message(*r, now, out);
          } catch (const std::exception& e) {
            log->error("dropped a message that could not be handled: {}", e.what());
          }
        }
      }
      if (!closed_fds.empty() && !(router.get(zmq::sockopt::events) & ZMQ_POLLIN)) {
        apply_closed_links(transport::now_ms());
      }
      now = transport::now_ms();
      if (link_deadline != 0 && now >= link_deadline) {
        link_deadline = 0;
        log_closed(state.expire_closed_links(now, out));
      }
      if (now >= last_tick + hb) {
        // A loop that was stalled (a huge graph arriving) must not declare its peers dead.
        if (now > last_tick + 4 * hb) state.forgive_silence(now);
        last_tick = now;
        auto dead = state.tick(now, out);
        for (auto w : dead.dead_workers) {
          const auto* rec = state.worker(w);
          log->warn("worker '{}' ({}) stopped responding; its tasks are rescheduled", rec->info.name, rec->info.host);
        }
        log_closed(dead.closed_workers);
        if (!dead.dead_clients.empty() && opt.exit_when_client_lost && !state.shutdown_requested()) {
          log->error("the client stopped responding; shutting the job down");
          state.request_shutdown(1, "the client was lost", out);
        }
      }
      if (!state.alive_clients().empty()) had_client = true;
      if (opt.exit_when_client_lost && had_client && state.alive_clients().empty() && !state.shutdown_requested()) {
        // Goodbye without asking for shutdown: the job is over all the same.
        state.request_shutdown(0, "the client left", out);
      }
      flush(out);
    }
    flush(out);
    write_report();
    return state.shutdown_code();
  }
};

SchedulerServer::SchedulerServer(SchedulerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
SchedulerServer::~SchedulerServer() = default;
const std::string& SchedulerServer::address() const { return impl_->address; }
const std::string& SchedulerServer::dashboard_link() const { return impl_->dashboard_link; }
int SchedulerServer::run() { return impl_->run(); }
void SchedulerServer::stop(int code) {
  impl_->stop_code = code;
  impl_->stop_requested = true;
  impl_->wakeup.notify();
}

}  // namespace dtask::scheduler

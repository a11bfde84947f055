// A rank's role process (forked before MPI_Init): scheduler, client or worker. Never touches MPI.
#include "bootstrap/roles.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <thread>

#include "bootstrap/business_card.hpp"
#include "client/internal.hpp"
#include "common/log.hpp"
#include "common/memory_limit.hpp"
#include "common/node_ranks.hpp"
#include "plugin/plugin.hpp"
#include "scheduler/scheduler_server.hpp"
#include "transport/transport.hpp"
#include "worker/spill_directory.hpp"
#include "worker/supervisor.hpp"
#include "worker/worker.hpp"

namespace dtask::bootstrap {

namespace {

std::atomic<scheduler::SchedulerServer*> g_scheduler{nullptr};
std::atomic<worker::Worker*> g_worker{nullptr};
int g_client_signal_pipe[2] = {-1, -1};
// Set once this client itself ends the job, so the cluster's closing notice is not a surprise.
std::atomic<bool> g_ending_by_us{false};

extern "C" void on_role_signal(int sig) {
  if (auto* s = g_scheduler.load()) s->stop(128 + sig);
  if (auto* w = g_worker.load()) w->retire(128 + sig);  // drains; a second signal stops it
  if (g_client_signal_pipe[1] >= 0) {
    unsigned char b = static_cast<unsigned char>(sig);
    [[maybe_unused]] auto n = ::write(g_client_signal_pipe[1], &b, 1);
  }
}

void install_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_role_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
}

enum class Role { scheduler, client, worker };

std::string job_id() {
  for (const char* v : {"SLURM_JOB_ID", "PBS_JOBID", "LSB_JOBID"}) {
    if (const char* id = std::getenv(v); id && *id) return id;
  }
  return "local-" + std::to_string(::getppid());
}

}  // namespace

int role_main(int from_parent, int to_parent, const mpi::RunOptions& opt,
              const std::function<int(Client&)>& client_main) {
  // If the MPI rank above us dies, we are told to stop rather than left running.
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  install_signals();
  StartInfo si{};
  if (!read_all(from_parent, &si, sizeof si)) return 1;
  const int rank = si.rank, size = si.size;
  const std::string where = "rank" + std::to_string(rank) + "@" + transport::hostname();
  if (!opt.log_level.empty()) log::set_level(opt.log_level);
  auto log = log::make("runner", where);

  Role role = rank == 0 ? Role::scheduler : (rank == 1 && !opt.no_client ? Role::client : Role::worker);
  ChildReport report{};
  report.ok = 1;
  auto refuse = [&](const std::string& why) {
    report.ok = 0;
    copy_field(report.message, sizeof report.message, why);
  };

  // ---- check everything this rank needs before anyone starts: errors show on every rank at once
  // A worker's memory limit, resolved here on its node: "auto" divides this node's memory (the
  // Slurm job's --mem on it, else the machine's) among the worker ranks on this node, which the
  // launcher's local rank and size tell (common/node_ranks.hpp; without them every worker rank
  // counts, the smallest share). The thresholds and the spill directory are checked here too.
  std::uint64_t memory_limit = opt.memory_limit;
  const worker::MemoryThresholds& thresholds = opt.memory_thresholds;
  const std::string local_directory =
      opt.local_directory.empty() ? std::string() : opt.local_directory + "/worker-" + std::to_string(rank);
  auto check_worker_memory = [&] {
    if (!opt.memory_limit_spec.empty()) {
      const int on_node = worker_ranks_on_node(node_ranks(rank, [](const char* v) { return std::getenv(v); }), size,
                                               opt.no_client ? 1 : 2);
      std::string error;
      auto m = resolve_memory_limit(opt.memory_limit_spec, on_node, MemoryEnvironment::read_environment(), &error);
      if (!m) return refuse(error);
      memory_limit = *m;
      log->debug("memory limit {} bytes ({} with {} worker ranks on this node)", memory_limit, opt.memory_limit_spec,
                 on_node);
    }
    try {
      worker::validate(thresholds);
      // Made and removed at once: an unusable local directory is an error now, on every rank.
      worker::SpillDirectory::create(local_directory, std::to_string(rank));
    } catch (const std::exception& e) {
      refuse(e.what());
    }
  };
  std::unique_ptr<scheduler::SchedulerServer> server;
  std::shared_ptr<const plugin::Plugin> plug;
  if (role == Role::scheduler) {
    scheduler::SchedulerOptions so;
    so.interface = opt.scheduler_interface.empty() ? opt.interface : opt.scheduler_interface;
    so.host = transport::default_host();
    so.security = Security::generate();
    so.scheduler_file = opt.scheduler_file;
    so.job_id = job_id();
    so.dashboard_address = opt.dashboard_address;
    so.report_path = opt.report;
    so.where = where;
    so.exit_when_client_lost = !opt.no_client;
    so.config.stop_job_when_worker_signalled = true;
    so.config.worker_timeout_ms = static_cast<std::uint64_t>(opt.heartbeat_timeout.count());
    so.config.client_timeout_ms = static_cast<std::uint64_t>(opt.heartbeat_timeout.count());
    so.config.fast_paths = opt.fast_paths;
    so.config.allowed_failures = opt.allowed_failures;
    try {
      server = std::make_unique<scheduler::SchedulerServer>(so);
      auto& c = report.card;
      copy_field(c.magic, sizeof c.magic, "dtask1");
      copy_field(c.endpoint, sizeof c.endpoint, server->address());
      copy_field(c.server_public, sizeof c.server_public, so.security.server_public);
      copy_field(c.server_secret, sizeof c.server_secret, so.security.server_secret);
      copy_field(c.client_public, sizeof c.client_public, so.security.client_public);
      copy_field(c.client_secret, sizeof c.client_secret, so.security.client_secret);
      copy_field(c.job_id, sizeof c.job_id, so.job_id);
    } catch (const std::exception& e) {
      refuse(e.what());
    }
  } else {
    std::string iface = role == Role::worker && !opt.worker_interface.empty() ? opt.worker_interface : opt.interface;
    if (!iface.empty()) {
      auto a = transport::interface_address(iface);
      if (!a.ok()) refuse(a.error);
    }
    if (report.ok) {
      if (opt.plugin.empty()) {
        plug = plugin::Plugin::from_process();
      } else {
        auto r = plugin::Plugin::load(opt.plugin);
        if (r.ok()) plug = r.plugin;
        else refuse(r.error);
      }
    }
    if (report.ok && role == Role::worker) check_worker_memory();
  }
  if (!write_all(to_parent, &report, sizeof report)) return 1;
  GoInfo go{};
  if (!read_all(from_parent, &go, sizeof go) || !go.go) return 1;

  Security sec;
  sec.enabled = true;
  sec.server_public = go.card.server_public;
  sec.server_secret = go.card.server_secret;
  sec.client_public = go.card.client_public;
  sec.client_secret = go.card.client_secret;
  const std::string endpoint = go.card.endpoint;

  if (role == Role::scheduler) {
    g_scheduler = server.get();
    int code = server->run();
    g_scheduler = nullptr;
    return code;
  }

  if (role == Role::worker) {
    worker::WorkerOptions wo;
    wo.scheduler_address = endpoint;
    wo.security = sec;
    wo.name = std::to_string(rank);
    wo.rank = rank;
    wo.host = transport::default_host();
    wo.interface = !opt.worker_interface.empty() ? opt.worker_interface : opt.interface;
    wo.nthreads = opt.nthreads;
    wo.memory_limit = memory_limit;
    wo.memory_thresholds = thresholds;
    wo.plugin = plug;
    wo.where = where;
    wo.fast_paths = opt.fast_paths;
    wo.scheduler_timeout_ms = static_cast<std::uint64_t>(opt.heartbeat_timeout.count()) * 2;
    wo.connect_timeout_ms = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(opt.wait_timeout).count());
    wo.local_directory = local_directory;
    // This role process supervises the worker (supervisor.hpp): a task that kills its process
    // (a signal, abort, the OOM killer) costs one incarnation, and the next one registers again
    // under the same name. The rank's MPI process above us is untouched either way.
    worker::SuperviseOptions sup;
    sup.name = wo.name;
    sup.where = where;
    sup.board_slots = static_cast<std::size_t>(wo.nthreads) + 1;
    return worker::supervise(sup, [&](const protocol::PreviousExit& previous,
                                      std::shared_ptr<worker::RunningBoard> board) {
      install_signals();  // this incarnation's own: SIGTERM/SIGINT (forwarded by the supervisor) reach its Worker
      worker::WorkerOptions mine = wo;
      mine.previous = previous;
      mine.board = std::move(board);
      try {
        worker::Worker w(mine);
        g_worker = &w;
        int code = w.run();
        g_worker = nullptr;
        return code;
      } catch (const std::exception& e) {
        g_worker = nullptr;
        log->error("{}", e.what());
        return 1;
      }
    });
  }

  // ---- the client: runs the user's code, then shuts the whole job down with its return code
  ConnectOptions co;
  co.address = endpoint;
  co.security = sec;
  co.name = "client@" + where;
  co.scheduler_timeout = opt.heartbeat_timeout * 2;
  co.fast_paths = opt.fast_paths;
  try {
    Client client(co);
    if (::pipe(g_client_signal_pipe) == 0) {
      std::thread([&client] {
        unsigned char sig = 0;
        if (::read(g_client_signal_pipe[0], &sig, 1) == 1) {
          // Ctrl-C / scancel: end the job in order, then leave (user code cannot be interrupted).
          g_ending_by_us = true;
          try {
            client.shutdown_cluster(128 + sig);
          } catch (...) {
          }
          std::fflush(nullptr);
          ::_exit(128 + sig);
        }
      }).detach();
    }
    // The job may end under the user's code (a signalled rank, a lost scheduler): then this
    // process leaves with the job's code instead of running on alone.
    dtask::detail::ClientInternals::set_end_handler(client, [log](int code, const std::string& reason) {
      if (g_ending_by_us) return;
      log->error("the job is ending ({}); stopping the client code", reason);
      std::fflush(nullptr);
      ::_exit(code == 0 ? 1 : code);
    });
    std::size_t want = opt.wait_for_workers >= 0 ? static_cast<std::size_t>(opt.wait_for_workers)
                                                 : static_cast<std::size_t>(std::max(0, size - 2));
    if (!client.wait_for_workers(want, opt.wait_timeout)) {
      auto have = client.scheduler_info().workers.size();
      std::fprintf(stderr,
                   "dtask: only %zu of %zu workers joined within %lld s (the scheduler listens on %s; "
                   "every worker host must reach that address: pick --interface/--scheduler-interface)\n",
                   have, want, static_cast<long long>(opt.wait_timeout.count()), endpoint.c_str());
      g_ending_by_us = true;
      client.shutdown_cluster(1);
      return 1;
    }
    int code = 0;
    try {
      code = client_main(client);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "dtask: the client code failed: %s\n", e.what());
      code = 1;
    } catch (...) {
      std::fprintf(stderr, "dtask: the client code failed with a non-standard exception\n");
      code = 1;
    }
    std::fflush(stdout);
    g_ending_by_us = true;
    client.shutdown_cluster(code);
    client.close();
    return code;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dtask: %s\n", e.what());
    return 1;
  }
}

namespace {
std::atomic<pid_t> g_role_child{0};
std::atomic<int> g_last_signal{0};
extern "C" void forward_to_role(int sig) {
  g_last_signal = sig;
  if (pid_t c = g_role_child.load(); c > 0) ::kill(c, sig);
}
}  // namespace

RoleProcess start_role(const mpi::RunOptions& options, const std::function<int(Client&)>& client_main) {
  int to_child[2], from_child[2];
  if (::pipe(to_child) != 0 || ::pipe(from_child) != 0) {
    std::perror("dtask: pipe");
    return {};
  }
  std::fflush(nullptr);
  pid_t child = ::fork();
  if (child < 0) {
    std::perror("dtask: fork");
    return {};
  }
  if (child == 0) {
    ::close(to_child[1]);
    ::close(from_child[0]);
    int code = role_main(to_child[0], from_child[1], options, client_main);
    std::fflush(nullptr);
    ::_exit(code);
  }
  ::close(to_child[0]);
  ::close(from_child[1]);
  g_role_child = child;
  ::signal(SIGPIPE, SIG_IGN);
  struct sigaction sa {};
  sa.sa_handler = forward_to_role;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  return {child, to_child[1], from_child[0]};
}

int wait_role(pid_t pid) {
  int status = 0;
  int code = 1;
  while (true) {
    if (::waitpid(pid, &status, 0) >= 0) {
      if (WIFEXITED(status)) code = WEXITSTATUS(status);
      else if (WIFSIGNALED(status)) code = 128 + WTERMSIG(status);
      break;
    }
    if (errno != EINTR) break;
  }
  role_reaped();
  return code;
}

void role_reaped() { g_role_child = 0; }
int last_signal() { return g_last_signal.load(); }

}  // namespace dtask::bootstrap

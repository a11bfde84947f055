// LocalCluster: the scheduler and N workers on this machine, as threads or as child processes.
#include <dtask/local_cluster.hpp>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "cluster/install_dirs.hpp"  // generated: DTASK_BINDIR
#include "common/log.hpp"
#include "common/scheduler_file.hpp"
#include "plugin/plugin.hpp"
#include "scheduler/scheduler_server.hpp"
#include "worker/memory_policy.hpp"
#include "worker/worker.hpp"

extern char** environ;

namespace dtask {

namespace {
std::string worker_executable() {
  if (const char* env = std::getenv("DTASK_WORKER_EXE"); env && *env) return env;
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    auto beside = self.parent_path() / "dtask-worker";
    if (std::filesystem::exists(beside)) return beside;
  }
  return std::string(DTASK_BINDIR) + "/dtask-worker";
}
}  // namespace

struct LocalCluster::Impl {
  LocalClusterOptions opt;
  Security security;
  std::unique_ptr<scheduler::SchedulerServer> server;
  std::thread server_thread;
  std::vector<std::unique_ptr<worker::Worker>> workers;
  std::vector<std::thread> worker_threads;
  std::vector<pid_t> children;
  std::string private_dir;
  bool closed = false;

  explicit Impl(LocalClusterOptions o) : opt(std::move(o)) {
    if (opt.n_workers < 0) throw std::invalid_argument("LocalCluster: n_workers must be >= 0");
    if (opt.threads_per_worker < 1) throw std::invalid_argument("LocalCluster: threads_per_worker must be >= 1");
    if (!opt.log_level.empty()) {
      if (!log::valid_level(opt.log_level)) throw std::invalid_argument("LocalCluster: unknown log level " + opt.log_level);
      log::set_level(opt.log_level);
    }
    try {
      worker::validate(opt.memory_thresholds);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(std::string("LocalCluster: ") + e.what());
    }
    security = opt.secure ? Security::generate() : Security::none();
    std::shared_ptr<const plugin::Plugin> plug;
    if (!opt.processes) {
      if (opt.plugin.empty()) {
        plug = plugin::Plugin::from_process();
      } else {
        auto r = plugin::Plugin::load(opt.plugin);
        if (!r.ok()) throw std::runtime_error(r.error);
        plug = r.plugin;
      }
    } else if (opt.plugin.empty()) {
      throw std::invalid_argument("LocalCluster: worker processes need a plugin path");
    }
    scheduler::SchedulerOptions so;
    so.host = opt.host;
    so.interface = opt.interface;
    so.security = security;
    so.where = "local";
    so.dashboard_address = opt.dashboard_address;
    so.report_path = opt.report;
    so.config.fast_paths = opt.fast_paths;
    so.config.allowed_failures = opt.allowed_failures;
    server = std::make_unique<scheduler::SchedulerServer>(so);
    server_thread = std::thread([this] { server->run(); });
    try {
      if (opt.processes) {
        start_processes();
      } else {
        for (int i = 0; i < opt.n_workers; ++i) {
          worker::WorkerOptions wo;
          wo.scheduler_address = server->address();
          wo.security = security;
          wo.name = std::to_string(i);
          wo.host = opt.host;
          wo.interface = opt.interface;
          wo.nthreads = opt.threads_per_worker;
          wo.memory_limit = opt.memory_limit;
          wo.measure_process_memory = false;  // several workers in this process: held bytes only, never terminate
          wo.memory_thresholds = opt.memory_thresholds;
          if (static_cast<std::size_t>(i) < opt.worker_resources.size()) {
            for (const auto& [k, v] : opt.worker_resources[i]) wo.resources.emplace_back(k, v);
          }
          wo.plugin = plug;
          wo.fast_paths = opt.fast_paths;
          if (!opt.local_directory.empty()) wo.local_directory = opt.local_directory + "/worker-" + wo.name;
          workers.push_back(std::make_unique<worker::Worker>(wo));
        }
        for (auto& w : workers) worker_threads.emplace_back([wp = w.get()] { wp->run(); });
      }
    } catch (...) {
      close();
      throw;
    }
  }

  void start_processes() {
    char tmpl[] = "/tmp/dtask-local-XXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error("LocalCluster: cannot create a private directory");
    private_dir = tmpl;
    std::string sched_file = private_dir + "/scheduler.json";
    write_scheduler_file(sched_file, server->address(), security, "local", server->dashboard_link());
    std::string exe = worker_executable();
    for (int i = 0; i < opt.n_workers; ++i) {
      std::vector<std::string> args = {exe, "--scheduler-file", sched_file, "--name", std::to_string(i),
                                       "--nthreads", std::to_string(opt.threads_per_worker), "--plugin", opt.plugin,
                                       "--host", opt.host};
      if (!opt.interface.empty()) args.insert(args.end(), {"--interface", opt.interface});
      if (!opt.log_level.empty()) args.insert(args.end(), {"--log-level", opt.log_level});
      // One argument with '=': a list that starts with '-' would read as an option of its own.
      args.push_back("--fast-paths=" + opt.fast_paths.to_string());
      // Always said, 0 too: dtask-worker's own default is "auto".
      args.insert(args.end(), {"--memory-limit", std::to_string(opt.memory_limit)});
      for (auto& a : worker::threshold_arguments(opt.memory_thresholds, false)) args.push_back(std::move(a));
      // The same place as a thread worker's (it was dropped here before).
      if (!opt.local_directory.empty()) {
        args.insert(args.end(), {"--local-directory", opt.local_directory + "/worker-" + std::to_string(i)});
      }
      if (static_cast<std::size_t>(i) < opt.worker_resources.size()) {
        std::string res;
        for (const auto& [k, v] : opt.worker_resources[i]) res += (res.empty() ? "" : ",") + k + "=" + std::to_string(v);
        if (!res.empty()) args.insert(args.end(), {"--resources", res});
      }
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      pid_t pid = 0;
      int rc = ::posix_spawn(&pid, exe.c_str(), nullptr, nullptr, argv.data(), environ);
      if (rc != 0) throw std::runtime_error("LocalCluster: cannot start worker process " + exe + ": " + std::strerror(rc));
      children.push_back(pid);
    }
  }

  void close() {
    if (closed) return;
    closed = true;
    if (server) server->stop(0);
    if (server_thread.joinable()) server_thread.join();
    // The scheduler told every worker to stop; these return within their grace period.
    for (auto& w : workers) w->stop(0);
    for (auto& t : worker_threads) t.join();
    // Each child is a dtask-worker supervisor (worker/supervisor.hpp) with its worker beneath it.
    // One the scheduler could not reach (an incarnation between a crash and its registration)
    // is asked with SIGTERM, which the supervisor forwards and which stops it restarting; a
    // supervisor killed outright takes its worker along (PR_SET_PDEATHSIG).
    auto reaped = [](pid_t pid, int polls) {
      int status = 0;
      for (int i = 0; i < polls; ++i) {
        if (::waitpid(pid, &status, WNOHANG) == pid) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      return false;
    };
    for (pid_t pid : children) {
      if (reaped(pid, 100)) continue;
      ::kill(pid, SIGTERM);
      if (reaped(pid, 60)) continue;
      ::kill(pid, SIGKILL);
      int status = 0;
      ::waitpid(pid, &status, 0);
    }
    if (!private_dir.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(private_dir, ec);
    }
    workers.clear();
    server.reset();
  }
};

LocalCluster::LocalCluster(LocalClusterOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
LocalCluster::~LocalCluster() { close(); }
const std::string& LocalCluster::scheduler_address() const { return impl_->server->address(); }
const std::string& LocalCluster::dashboard_link() const {
  if (!impl_->server) throw std::logic_error("LocalCluster: closed");
  return impl_->server->dashboard_link();
}
ConnectOptions LocalCluster::connect_options() const {
  ConnectOptions c;
  c.address = impl_->server->address();
  c.security = impl_->security;
  c.fast_paths = impl_->opt.fast_paths;
  return c;
}
const LocalClusterOptions& LocalCluster::options() const { return impl_->opt; }
void LocalCluster::close() { impl_->close(); }

}  // namespace dtask

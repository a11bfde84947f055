// `dtask-scheduler`: a standalone scheduler (dask-scheduler), for jobqueue-style clusters.
#include <cstdio>
#include <memory>

#include <CLI/CLI.hpp>

#include "cli/parse.hpp"
#include "cli/signals.hpp"
#include "common/log.hpp"
#include "scheduler/scheduler_server.hpp"

namespace {
std::atomic<dtask::scheduler::SchedulerServer*> g_server{nullptr};
void stop(int code) {
  if (auto* s = g_server.load()) s->stop(code);
}
}  // namespace

int main(int argc, char** argv) {
  if (auto env_error = dtask::cli::fast_paths_environment_error(); !env_error.empty()) {
    std::fprintf(stderr, "dtask-scheduler: %s\n", env_error.c_str());
    return 2;
  }
  CLI::App app{"dtask scheduler: serves workers and clients over ZeroMQ"};
  dtask::scheduler::SchedulerOptions opt;
  std::string log_level = "warn", fast_paths;
  bool insecure = false;
  app.add_option("--host", opt.host, "address to bind")->capture_default_str();
  app.add_option("--interface", opt.interface, "network interface to bind (e.g. hsn0); wins over --host");
  app.add_option("--port", opt.port, "port (0: any free port)")->capture_default_str()->check(CLI::Range(0, 65535));
  app.add_option("--scheduler-file", opt.scheduler_file, "write address and keys here (mode 0600)");
  app.add_option("--job-id", opt.job_id, "recorded in the scheduler file");
  app.add_flag("--insecure", insecure, "no CURVE encryption/authentication (trusted networks only)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")->capture_default_str();
  app.add_option("--dashboard-address", opt.dashboard_address,
                 "the dashboard's address: :8787 (default; the next free port if taken), :0, HOST:PORT, or none");
  app.add_option("--report", opt.report_path, "write the job's report here (one HTML page) when the scheduler stops");
  app.add_option("--fast-paths", fast_paths, dtask::cli::kFastPathsHelp);
  app.add_option("--allowed-failures", opt.config.allowed_failures,
                 "a task that was running on this many workers that died fails (KilledWorker); 0: never")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (!dtask::log::valid_level(log_level)) {
    std::fprintf(stderr, "dtask-scheduler: unknown log level '%s'\n", log_level.c_str());
    return 2;
  }
  // Only when given: else DTASK_LOG_LEVEL / SPDLOG_LEVEL, else warn (common/log.hpp).
  if (app.get_option("--log-level")->count() > 0) dtask::log::set_level(log_level);
  auto fp = dtask::cli::parse_fast_paths(fast_paths);
  if (!fp.ok()) {
    std::fprintf(stderr, "dtask-scheduler: %s\n", fp.error.c_str());
    return 2;
  }
  opt.config.fast_paths = fp.value;
  if (!insecure && opt.scheduler_file.empty()) {
    std::fprintf(stderr, "dtask-scheduler: --scheduler-file is required to hand out the keys (or pass --insecure)\n");
    return 2;
  }
  opt.security = insecure ? dtask::Security::none() : dtask::Security::generate();
  std::unique_ptr<dtask::scheduler::SchedulerServer> server;
  try {
    server = std::make_unique<dtask::scheduler::SchedulerServer>(opt);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dtask-scheduler: %s\n", e.what());
    return 1;
  }
  g_server = server.get();
  dtask::cli::on_termination(&stop);
  std::printf("dtask scheduler at %s\n", server->address().c_str());
  if (!server->dashboard_link().empty()) std::printf("dtask dashboard at %s\n", server->dashboard_link().c_str());
  std::fflush(stdout);
  int code = server->run();
  g_server = nullptr;
  return code;
}

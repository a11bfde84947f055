// `dtask-worker`: a standalone worker (dask-worker) that joins a scheduler and runs plugin tasks.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>

#include <CLI/CLI.hpp>

#include "cli/memory_flags.hpp"
#include "cli/parse.hpp"
#include "cli/signals.hpp"
#include "common/hugepages.hpp"
#include "common/log.hpp"
#include "common/memory_limit.hpp"
#include "common/scheduler_file.hpp"
#include "plugin/plugin.hpp"
#include "transport/transport.hpp"
#include "worker/spill_directory.hpp"
#include "worker/supervisor.hpp"
#include "worker/worker.hpp"

namespace {
std::atomic<dtask::worker::Worker*> g_worker{nullptr};
void stop(int code) {
  if (auto* w = g_worker.load()) w->retire(code);  // drains (worker/retire.hpp); a second signal stops it
}
}  // namespace

int main(int argc, char** argv) {
  dtask::reexec_with_hugepage_malloc(argv);  // big transfers: see common/hugepages.hpp
  if (auto env_error = dtask::cli::fast_paths_environment_error(); !env_error.empty()) {
    std::fprintf(stderr, "dtask-worker: %s\n", env_error.c_str());
    return 2;
  }
  CLI::App app{"dtask worker: runs tasks from a plugin for a dtask scheduler"};
  dtask::worker::WorkerOptions opt;
  std::string scheduler_file, plugin_path, resources, log_level = "warn", fast_paths;
  app.add_option("--scheduler-file", scheduler_file, "scheduler file written by dtask-scheduler")->check(CLI::ExistingFile);
  app.add_option("--scheduler-address", opt.scheduler_address, "tcp://host:port (insecure schedulers only)");
  app.add_option("--plugin", plugin_path, "task plugin (.so)")->required();
  app.add_option("--name", opt.name, "worker name (default: host-pid)");
  app.add_option("--nthreads", opt.nthreads, "executor threads")->capture_default_str()->check(CLI::PositiveNumber);
  dtask::cli::MemoryFlags memory;
  dtask::cli::add_memory_flags(app, memory,
                               "per worker: 0 (none), auto (under Slurm with --mem the job's memory on this node, else "
                               "the machine's, divided by --nworkers), a size like 4GiB, or a fraction like 0.5 of it");
  app.add_option("--resources", resources, "abstract resources, e.g. GPU=2,MEM=1e9");
  app.add_option("--local-directory", opt.local_directory,
                 "where each worker makes its own spill directory, dtask-spill/<name>@<host>-<pid>-<random> "
                 "(default: $TMPDIR, else /tmp)");
  app.add_option("--host", opt.host, "address for the data server")->capture_default_str();
  app.add_option("--interface", opt.interface, "network interface for the data server (e.g. hsn0)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")->capture_default_str();
  app.add_option("--fast-paths", fast_paths, dtask::cli::kFastPathsHelp);
  bool no_restart = false;
  int max_restarts = dtask::worker::RestartPolicy{}.max_deaths;
  app.add_flag("--no-restart", no_restart, "run the worker in this process, unsupervised: a crash ends it");
  app.add_option("--max-restarts", max_restarts, "restarts within 60 s before the supervisor gives up")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  int nworkers = 1;
  std::string lifetime, lifetime_stagger = "0s", death_timeout = "30s";
  app.add_option("--nworkers", nworkers,
                 "workers started by this command, each supervised on its own, named NAME-0..NAME-(N-1)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  app.add_option("--lifetime", lifetime,
                 "retire gracefully after this long (e.g. 55m, 2s): results handed over, exit 0 (before walltime)");
  app.add_option("--lifetime-stagger", lifetime_stagger,
                 "each worker's lifetime moves by a random amount within +/- this, so workers do not leave together")
      ->capture_default_str();
  app.add_option("--death-timeout", death_timeout,
                 "give up (exit 1) if the scheduler has not answered within this long after start")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  auto fail = [](const std::string& msg) {
    std::fprintf(stderr, "dtask-worker: %s\n", msg.c_str());
    return 2;
  };
  if (!dtask::log::valid_level(log_level)) return fail("unknown log level '" + log_level + "'");
  // Only when given: else DTASK_LOG_LEVEL / SPDLOG_LEVEL, else warn (common/log.hpp).
  if (app.get_option("--log-level")->count() > 0) dtask::log::set_level(log_level);
  // "auto" divides among the workers this command starts: they are the ones sharing this node's
  // share (a job script that starts several dtask-worker commands on one node gives each an explicit size).
  std::string memory_error;
  auto mem = dtask::resolve_memory_limit(memory.limit, nworkers, dtask::MemoryEnvironment::read_environment(),
                                         &memory_error);
  if (!mem) return fail("--memory-limit: " + memory_error);
  opt.memory_limit = *mem;
  auto thresholds = dtask::cli::parse_memory_thresholds(memory);
  if (!thresholds.ok()) return fail(thresholds.error);
  opt.memory_thresholds = thresholds.value;
  auto res = dtask::cli::parse_resources(resources);
  if (!res) return fail("cannot read --resources '" + resources + "' (e.g. GPU=2,MEM=1e9)");
  opt.resources = *res;
  auto fp = dtask::cli::parse_fast_paths(fast_paths);
  if (!fp.ok()) return fail(fp.error);
  opt.fast_paths = fp.value;
  std::uint64_t lifetime_ms = 0, stagger_ms = 0;
  if (!lifetime.empty()) {
    auto l = dtask::cli::parse_duration_ms(lifetime);
    if (!l || *l == 0) return fail("cannot read --lifetime '" + lifetime + "' (e.g. 55m, 30s, 1.5h)");
    lifetime_ms = *l;
  }
  auto st = dtask::cli::parse_duration_ms(lifetime_stagger);
  if (!st) return fail("cannot read --lifetime-stagger '" + lifetime_stagger + "' (e.g. 5m, 10s)");
  stagger_ms = *st;
  auto dt = dtask::cli::parse_duration_ms(death_timeout);
  if (!dt || *dt == 0) return fail("cannot read --death-timeout '" + death_timeout + "' (e.g. 60s)");
  opt.connect_timeout_ms = *dt;
  if (!scheduler_file.empty()) {
    auto f = dtask::read_scheduler_file(scheduler_file);
    if (!f.ok()) return fail(f.error);
    opt.scheduler_address = f.connect.address;
    opt.security = f.connect.security;
  }
  if (opt.scheduler_address.empty()) return fail("give --scheduler-file or --scheduler-address");
  if (opt.name.empty()) opt.name = dtask::transport::hostname() + "-" + std::to_string(::getpid());
  auto loaded = dtask::plugin::Plugin::load(plugin_path);
  if (!loaded.ok()) return fail(loaded.error);
  opt.plugin = loaded.plugin;
  // An unusable --local-directory is an error now, with its reason, not a worker that dies and
  // is restarted: made and removed at once (each worker makes its own when it starts).
  try {
    dtask::worker::SpillDirectory::create(opt.local_directory, opt.name);
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  auto run_worker = [](const dtask::worker::WorkerOptions& o) {
    std::unique_ptr<dtask::worker::Worker> worker;
    try {
      worker = std::make_unique<dtask::worker::Worker>(o);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "dtask-worker: %s\n", e.what());
      return 1;
    }
    g_worker = worker.get();
    dtask::cli::on_termination(&stop);
    int code = worker->run();
    g_worker = nullptr;
    return code;
  };
  // --lifetime counts from now for this worker's whole life: an incarnation restarted after a
  // crash gets what is left of it, not a fresh lifetime.
  const auto started = std::chrono::steady_clock::now();
  auto with_lifetime = [&](dtask::worker::WorkerOptions o, std::uint64_t my_lifetime_ms) {
    if (my_lifetime_ms == 0) return o;
    const auto lived = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count());
    o.lifetime_ms = my_lifetime_ms > lived ? my_lifetime_ms - lived : 1;
    return o;
  };
  // One worker's lifetime, moved by a random amount within +/- the stagger (Dask's lifetime-stagger).
  auto staggered = [&]() -> std::uint64_t {
    std::mt19937_64 rng{std::random_device{}()};
    return dtask::worker::staggered_lifetime_ms(lifetime_ms, stagger_ms, std::uniform_real_distribution<double>(0, 1)(rng));
  };
  // One worker under its supervisor (worker/supervisor.hpp): it runs in a child, and a child
  // killed by a signal (a crashing task, kill -9, the OOM killer) is replaced by a new one with
  // the same name. SIGTERM/SIGINT go to the child; an exit with a code ends it with that code.
  auto one_worker = [&](dtask::worker::WorkerOptions base) {
    const std::uint64_t mine_ms = staggered();
    if (no_restart) return run_worker(with_lifetime(base, mine_ms));
    dtask::worker::SuperviseOptions sup;
    sup.name = base.name;
    sup.board_slots = static_cast<std::size_t>(base.nthreads) + 1;
    sup.policy.max_deaths = max_restarts;
    return dtask::worker::supervise(sup, [&](const dtask::protocol::PreviousExit& previous,
                                             std::shared_ptr<dtask::worker::RunningBoard> board) {
      dtask::worker::WorkerOptions mine = with_lifetime(base, mine_ms);
      mine.previous = previous;
      mine.board = std::move(board);
      return run_worker(mine);
    });
  };
  if (nworkers == 1) return one_worker(opt);
  // --nworkers N: N workers in one process tree, NAME-0..NAME-(N-1), each supervised on its own;
  // this process forwards SIGTERM/SIGINT to all and ends when all have ended (first non-zero
  // code, else 0). Each binds its own data server port (the default binds an ephemeral one).
  return dtask::worker::run_group(static_cast<std::size_t>(nworkers), [&](std::size_t i) {
    dtask::worker::WorkerOptions o = opt;
    o.name = opt.name + "-" + std::to_string(i);
    return one_worker(o);
  }, opt.name);
}

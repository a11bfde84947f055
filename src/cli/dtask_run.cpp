// `dtask-run [options] plugin.so [job args...]` under srun/mpirun: scheduler, client, workers by rank.
// (--bootstrap slurm: under `srun --mpi=none`, no MPI at all; src/bootstrap/slurm_bootstrap.cpp.)
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include <dtask/mpi.hpp>

#include "cli/memory_flags.hpp"
#include "cli/parse.hpp"
#include "common/hugepages.hpp"
#include "common/log.hpp"
#include "common/memory_limit.hpp"
#include "plugin/plugin.hpp"

namespace {
// Before MPI_Init the rank is only known from the launcher's environment (-1: not said).
int launcher_rank() {
  for (const char* v : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID", "PMI_RANK"}) {
    if (const char* r = std::getenv(v)) return std::atoi(r);
  }
  return -1;
}
// Used to print command-line errors once instead of once per rank.
bool probably_rank0() { return launcher_rank() <= 0; }
}  // namespace

int main(int argc, char** argv) {
  // Worker ranks receive the big results (see common/hugepages.hpp). The scheduler never holds
  // any, and the client rank runs user code like any program of the user's: left as it is.
  if (launcher_rank() >= 2) dtask::reexec_with_hugepage_malloc(argv);
  if (auto env_error = dtask::cli::fast_paths_environment_error(); !env_error.empty()) {
    if (probably_rank0()) std::fprintf(stderr, "dtask-run: %s\n", env_error.c_str());
    return 2;
  }
  CLI::App app{"dtask-run: run a dtask job under srun/mpirun. Rank 0 schedules, rank 1 runs the plugin's\n"
               "DTASK_MAIN client code, every other rank is a worker. All ranks exit with the client's code."};
  dtask::mpi::RunOptions opt;
  std::string fast_paths, bootstrap = "mpi";
  int wait_timeout = 120;
  double heartbeat_timeout = 5;
  app.add_option("--interface", opt.interface, "network interface for all traffic (e.g. hsn0)");
  app.add_option("--scheduler-interface", opt.scheduler_interface, "interface for rank 0 (overrides --interface)");
  app.add_option("--worker-interface", opt.worker_interface, "interface for workers (overrides --interface)");
  app.add_option("--nthreads", opt.nthreads, "threads per worker")->capture_default_str()->check(CLI::PositiveNumber);
  dtask::cli::MemoryFlags memory;
  dtask::cli::add_memory_flags(app, memory,
                               "per worker: 0 (none), auto (under Slurm with --mem the job's memory on the worker's "
                               "node, else the machine's, divided by the worker ranks on that node), a size like "
                               "4GiB, or a fraction like 0.5 of it");
  app.add_option("--local-directory", opt.local_directory,
                 "where each worker makes its own spill directory (default: $TMPDIR, else /tmp)");
  app.add_option("--scheduler-file", opt.scheduler_file, "write the scheduler's address and keys here (0600)");
  app.add_option("--dashboard-address", opt.dashboard_address,
                 "the dashboard's address on rank 0: :8787 (default; the next free port if taken), :0, HOST:PORT, or none");
  app.add_option("--report", opt.report, "rank 0 writes the job's report here (one HTML page) when the job ends");
  app.add_option("--log-level", opt.log_level, "trace, debug, info, warn, error")->capture_default_str();
  app.add_option("--wait-for-workers", opt.wait_for_workers, "workers the client waits for (default: all)");
  app.add_option("--wait-timeout", wait_timeout, "seconds to wait for them")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--heartbeat-timeout", heartbeat_timeout, "seconds of silence before a rank counts as dead")
      ->capture_default_str()
      ->check(CLI::Range(0.5, 3600.0));
  app.add_option("--fast-paths", fast_paths, std::string(dtask::cli::kFastPathsHelp) + "; for every rank");
  app.add_option("--allowed-failures", opt.allowed_failures,
                 "a task that was running on this many workers that died fails (KilledWorker); 0: never")
      ->capture_default_str();
  app.add_option("--bootstrap", bootstrap,
                 "how ranks meet: mpi (MPI_Init, the default) or slurm (no MPI: srun --mpi=none; roles from "
                 "SLURM_PROCID/SLURM_NTASKS, the scheduler's address and keys through a 0600 file)")
      ->capture_default_str();
  app.add_option("--shared-directory", opt.shared_directory,
                 "--bootstrap slurm: a directory every node sees, for that file (default: the submit directory, "
                 "else $HOME; --scheduler-file names the file itself)");
  app.add_flag("--no-client", opt.no_client,
               "scheduler and workers only; a client joins with --scheduler-file and ends the job");
  app.prefix_command();  // everything from the plugin path on belongs to the job
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (probably_rank0() || e.get_exit_code() == 0) return app.exit(e);
    return e.get_exit_code();
  }
  auto fail = [](const std::string& msg) {
    if (probably_rank0()) std::fprintf(stderr, "dtask-run: %s\n", msg.c_str());
    return 2;
  };
  std::vector<std::string> rest = app.remaining();
  if (rest.empty()) return fail("give the job's plugin: dtask-run [options] libmyjob.so [job args...]");
  opt.plugin = rest[0];
  // Not given: each rank's level comes from DTASK_LOG_LEVEL / SPDLOG_LEVEL, else warn (roles.cpp sets none).
  if (app.get_option("--log-level")->count() == 0) opt.log_level.clear();
  if (!opt.log_level.empty() && !dtask::log::valid_level(opt.log_level)) {
    return fail("unknown --log-level '" + opt.log_level + "'");
  }
  // Read here, so a malformed one is one message from rank 0; resolved on each worker's node
  // (bootstrap/roles.cpp), where "auto" knows that node's memory and worker ranks.
  std::string memory_error;
  if (!dtask::resolve_memory_limit(memory.limit, 1, dtask::MemoryEnvironment::read_environment(), &memory_error)) {
    return fail("--memory-limit: " + memory_error);
  }
  opt.memory_limit_spec = memory.limit;
  auto thresholds = dtask::cli::parse_memory_thresholds(memory);
  if (!thresholds.ok()) return fail(thresholds.error);
  opt.memory_thresholds = thresholds.value;
  auto fp = dtask::cli::parse_fast_paths(fast_paths);
  if (!fp.ok()) return fail(fp.error);
  opt.fast_paths = fp.value;
  opt.wait_timeout = std::chrono::seconds(wait_timeout);
  opt.heartbeat_timeout = std::chrono::milliseconds(static_cast<long long>(heartbeat_timeout * 1000));
  if (bootstrap == "slurm") {
    opt.bootstrap = dtask::mpi::Bootstrap::slurm;
  } else if (bootstrap != "mpi") {
    return fail("unknown --bootstrap '" + bootstrap + "' (mpi or slurm)");
  } else if (!opt.shared_directory.empty()) {
    return fail("--shared-directory is for --bootstrap slurm (MPI carries the scheduler's card itself)");
  }
  if (opt.no_client && opt.scheduler_file.empty()) return fail("--no-client needs --scheduler-file for the client to find the job");

  std::vector<std::string> job_args = rest;
  return dtask::mpi::run(argc, argv, opt, [&](dtask::Client& client) -> int {
    auto loaded = dtask::plugin::Plugin::load(opt.plugin);  // cached: already loaded for this rank
    if (!loaded.ok()) throw std::runtime_error(loaded.error);
    auto main_fn = loaded.plugin->main_fn();
    if (!main_fn) throw std::runtime_error("plugin '" + opt.plugin + "' has no client entry point (declare one with DTASK_MAIN)");
    std::vector<char*> jargv;
    for (auto& a : job_args) jargv.push_back(a.data());
    jargv.push_back(nullptr);
    return main_fn(&client, static_cast<int>(job_args.size()), jargv.data());
  });
}

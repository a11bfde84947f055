// The batch runner: under srun/mpirun rank 0 schedules, rank 1 runs the client, the rest work.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include <dtask/client.hpp>
#include <dtask/memory.hpp>

namespace dtask::mpi {

// How the ranks find each other. mpi (the default): MPI_Init, the business card by broadcast.
// slurm: no MPI at all (for `srun --mpi=none`): rank and size from SLURM_PROCID/SLURM_NTASKS,
// the card through a 0600 file in a directory every node sees (dask-jobqueue's SLURMRunner).
enum class Bootstrap { mpi, slurm };

// The same words as `dtask-run --help` (and dask-mpi / dask-jobqueue).
struct RunOptions {
  std::string interface;            // e.g. "hsn0": every rank binds there
  std::string scheduler_interface;  // overrides `interface` for rank 0
  std::string worker_interface;     // overrides `interface` for worker ranks
  int nthreads = 1;                 // executor threads per worker rank
  std::uint64_t memory_limit = 0;   // bytes per worker, 0 = unlimited; ignored when memory_limit_spec is set
  // dtask-run's --memory-limit as written: "0", "auto", "4GiB" or "0.5" (a fraction each worker
  // gets). Resolved on each worker's node: "auto" is the Slurm job's memory on that node (--mem),
  // else the machine's, divided by the worker ranks on that node (rank 0, the scheduler, and
  // rank 1, the client, are not workers). Empty: memory_limit in bytes.
  std::string memory_limit_spec;
  MemoryThresholds memory_thresholds;  // fractions of the limit: spill, pause, terminate (dtask/memory.hpp)
  std::string local_directory;      // each worker's spill directory is made under it (default: $TMPDIR, else /tmp)
  std::string scheduler_file;       // written atomically by rank 0, removed at shutdown
  std::string dashboard_address;    // rank 0's dashboard: "" / ":8787" (next free port if taken), ":0", "HOST:PORT", "none"
  std::string report;               // rank 0 writes the job's report (one HTML page) here at the end; empty: none
  std::string log_level = "warn";
  int wait_for_workers = -1;        // workers the client waits for; -1: all (N - 2)
  std::chrono::seconds wait_timeout{120};       // for those workers to join
  std::chrono::milliseconds heartbeat_timeout{5000};  // a silent worker or client is dead
  bool no_client = false;           // scheduler + workers only (the `dask-mpi` command)
  std::string plugin;               // task plugin .so; empty: tasks linked into this program
  FastPaths fast_paths = FastPaths::from_environment();  // --fast-paths, for every rank
  // A task that was running on this many workers that died fails with a KilledWorker error
  // (Dask's allowed-failures; 0: never). docs/architecture.md, "Worker loss".
  std::uint32_t allowed_failures = 3;
  Bootstrap bootstrap = Bootstrap::mpi;
  // slurm bootstrap: where the card file goes when scheduler_file is empty (then it is
  // <dir>/dtask-run-<SLURM_JOB_ID>.<SLURM_STEP_ID>.json); empty: $SLURM_SUBMIT_DIR, else $HOME.
  std::string shared_directory;
};

// Runs this rank's role and returns the job's exit code (the client's return value) on every
// rank. Scheduler and worker ranks return only at shutdown. With Bootstrap::mpi MPI_Init and
// MPI_Finalize happen inside; with Bootstrap::slurm MPI is never initialised.
int run(int argc, char** argv, const RunOptions& options, const std::function<int(Client&)>& client_main);

}  // namespace dtask::mpi

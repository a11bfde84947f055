// The runner without MPI (`srun --mpi=none -n N dtask-run --bootstrap slurm`): ranks from Slurm, card by file.
#pragma once

#include <functional>
#include <string>

#include <dtask/mpi.hpp>

namespace dtask::bootstrap {

// What this srun task is, read from its environment; `error` says what is missing instead.
struct SlurmTask {
  int rank = -1;          // SLURM_PROCID
  int size = -1;          // SLURM_NTASKS (SLURM_NPROCS on old Slurm)
  std::string card_path;  // the scheduler file every rank meets at
  std::string error;
  bool ok() const { return error.empty(); }
};

// Pure: `env` is getenv (or a table in tests). The card is `options.scheduler_file` when set,
// else <shared_directory>/dtask-run-<SLURM_JOB_ID>.<SLURM_STEP_ID>.json, unique per job step.
SlurmTask slurm_task(const std::function<const char*(const char*)>& env, const mpi::RunOptions& options);

// Runs this srun task's role without ever initialising MPI and returns its exit code: the
// client's return value on every rank of a job that ran (each role process ends with the code
// of the scheduler's shutdown, which carries the client's).
int run_slurm(const mpi::RunOptions& options, const std::function<int(Client&)>& client_main);

}  // namespace dtask::bootstrap

#!/bin/bash
# The seed's dask_slurm_runner_launcher.sh for dtask: scheduler on rank 0, client on rank 1.
#SBATCH --job-name=dtask-runner
#SBATCH --ntasks=4
#SBATCH --time=00:05:00
#SBATCH --output=dtask-runner-%j.out
# Usage: sbatch jobs/runner/runner_launcher.sh [BUILD_DIR] [INTERFACE]
# BUILD_DIR must be on a filesystem every node sees (not /tmp).
# DTASK_BOOTSTRAP=slurm (sbatch --export=ALL,DTASK_BOOTSTRAP=slurm ...): no MPI at all, for sites
# where srun has no working MPI plugin; the ranks meet through a 0600 file in the submit dir.
# The job's report (one HTML page: task stream, counts, errors, workers) is written beside the
# output as dtask-runner-JOBID.html; the dashboard link is printed while it runs.
set -euo pipefail
build="${1:-${DTASK_BUILD:-$PWD/build}}"
iface="${2:-${DTASK_INTERFACE:-}}"
args=(--report "dtask-runner-${SLURM_JOB_ID:-0}.html")
if [ -n "$iface" ]; then args+=(--interface "$iface"); fi
if [ "${DTASK_BOOTSTRAP:-mpi}" = slurm ]; then
  srun --mpi=none "$build/src/cli/dtask-run" --bootstrap slurm "${args[@]}" "$build/jobs/librunner_tasks.so"
else
  srun "$build/src/cli/dtask-run" "${args[@]}" "$build/jobs/librunner_tasks.so"
fi

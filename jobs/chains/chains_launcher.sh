#!/bin/bash
# The seed's first example as a batch job: 256 chains on the workers of a Slurm allocation.
#SBATCH --job-name=dtask-chains
#SBATCH --ntasks=4
#SBATCH --time=00:05:00
#SBATCH --output=dtask-chains-%j.out
set -euo pipefail
build="${1:-${DTASK_BUILD:-$PWD/build}}"
iface="${2:-${DTASK_INTERFACE:-}}"
args=()
if [ -n "$iface" ]; then args+=(--interface "$iface"); fi
srun "$build/src/cli/dtask-run" "${args[@]}" "$build/jobs/libchains_tasks.so"

#!/bin/bash
# The seed's dask_mpi launcher for dtask: 100 tasks report the hosts they ran on.
#SBATCH --job-name=dtask-hostnames
#SBATCH --nodes=2
#SBATCH --ntasks=6
#SBATCH --time=00:05:00
#SBATCH --output=dtask-hostnames-%j.out
# Usage: sbatch jobs/hostnames/hostname_launcher.sh [BUILD_DIR] [INTERFACE]
set -euo pipefail
build="${1:-${DTASK_BUILD:-$PWD/build}}"
iface="${2:-${DTASK_INTERFACE:-}}"
args=()
if [ -n "$iface" ]; then args+=(--interface "$iface"); fi
srun "$build/src/cli/dtask-run" "${args[@]}" "$build/jobs/libhostname_tasks.so" 100

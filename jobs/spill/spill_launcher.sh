#!/bin/bash
# Results that outgrow memory (issue 15): each worker's memory_limit is derived from --mem (the
# job's memory on a node divided by the workers there) and results spill to local_directory.
#SBATCH --job-name=dtask-spill
#SBATCH --ntasks=4
#SBATCH --mem=512M
#SBATCH --time=00:05:00
#SBATCH --output=dtask-spill-%j.out
# Usage: sbatch jobs/spill/spill_launcher.sh [BUILD_DIR] [INTERFACE] [LOCAL_DIRECTORY]
# BUILD_DIR must be on a filesystem every node sees (not /tmp); LOCAL_DIRECTORY defaults to the
# node's $TMPDIR (or /tmp): spill files are node-local scratch.
set -euo pipefail
build="${1:-${DTASK_BUILD:-$PWD/build}}"
iface="${2:-${DTASK_INTERFACE:-}}"
local_dir="${3:-${TMPDIR:-/tmp}}"
args=(--memory-limit auto --local-directory "$local_dir")
if [ -n "$iface" ]; then args+=(--interface "$iface"); fi
srun "$build/src/cli/dtask-run" "${args[@]}" "$build/jobs/libspill_tasks.so" 96 8

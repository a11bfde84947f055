#!/usr/bin/env bash
# The one test command (README, CI): installs what is missing, builds, runs every suite.
# Suites: unit + LocalCluster (meson test), the installed surface (a real prefix, user programs
# built with pkg-config), mpirun integration, real Slurm on two nodes, the fuzzers (tests/fuzz),
# chaos and clean runs under mpirun, the unit and LocalCluster suites under ASan+UBSan and TSan,
# and a short benchmark run;
# then unit, LocalCluster and mpirun once more with every fast path off (DTASK_FAST_PATHS=none),
# each its own step. Ends with "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
passed=0
failed=0
failures=()

step() {  # step NAME COMMAND... : runs one suite, counts it, never stops the run
  local name="$1"
  shift
  echo "=== $name"
  local t0=$SECONDS
  if "$@"; then
    passed=$((passed + 1))
    echo "--- $name: ok ($((SECONDS - t0)) s)"
  else
    failed=$((failed + 1))
    failures+=("$name")
    echo "--- $name: FAILED ($((SECONDS - t0)) s)"
  fi
}

# ccache (when meson finds it) also serves a fresh clone elsewhere: paths under the clone are
# hashed relative to it, and the working directory is not hashed (only debug info's paths differ).
export CCACHE_BASEDIR="$root" CCACHE_NOHASHDIR=true

# python3-distributed: the Dask peer the benchmarks compare against.
bash tests/deps.sh python3-distributed || { echo "cannot install the build dependencies"; echo "0 passed, 1 failed"; exit 1; }
if [ ! -f build/build.ninja ]; then
  meson setup build || { echo "0 passed, 1 failed"; exit 1; }
fi
ninja -C build || { echo "build failed"; echo "0 passed, 1 failed"; exit 1; }

step "unit tests" meson test -C build --print-errorlogs --suite unit
step "LocalCluster integration" meson test -C build --print-errorlogs --suite integration
step "install to a prefix + user programs with pkg-config" bash tests/install/check_out_of_tree.sh "$root/build"
if [ -x tests/mpi/run.sh ]; then step "mpirun integration" bash tests/mpi/run.sh "$root/build"; fi
if [ -x tests/runner/run.sh ]; then step "runner without MPI (--bootstrap slurm, no Slurm)" bash tests/runner/run.sh "$root/build"; fi
if [ -x tests/slurm/e2e.sh ]; then step "Slurm two-node end to end" bash tests/slurm/e2e.sh "$root/build"; fi
# slurm::Cluster (dask-jobqueue's SLURMCluster) on the same two-node cluster: scale, adapt,
# --lifetime, close on throw/SIGTERM, kill -9 + dtask-cluster cancel.
if [ -x tests/slurm/cluster_object.sh ]; then
  step "Slurm cluster object" bash tests/slurm/cluster_object.sh "$root/build"
fi
# The decoders under libFuzzer (clang, ASan+UBSan, its own build-fuzz/): the seed corpus replayed,
# then 60 s of fuzzing per target (about 3 min in all on 2 cores).
step "fuzzing: corpus replay + 60 s per target" bash tests/fuzz/run.sh --seconds 60
# Issue 13 under mpirun (tests/chaos/run.sh): a worker kill -9ed at a seeded random moment of a
# 20,201-task graph, 10 runs, every result exact; then 100 runs of the runner example, each exit 0
# with nothing on stderr.
if [ -x tests/chaos/run.sh ]; then
  step "chaos: 10 runs with a kill -9" bash tests/chaos/run.sh chaos "$root/build"
  step "100 clean runs" bash tests/chaos/run.sh clean "$root/build"
fi
# The unit and LocalCluster suites under the sanitizers (tests/sanitizers/run.sh), each in its own
# build dir (build-asan/, build-tsan/) with only the targets those suites need; a report from any
# process, a spawned worker included, fails the step.
step "ASan+UBSan: unit + LocalCluster" bash tests/sanitizers/run.sh asan
step "TSan: unit + LocalCluster" bash tests/sanitizers/run.sh tsan
if [ -x tests/bench/run.sh ]; then step "benchmarks (small)" bash tests/bench/run.sh --small; fi

# The fast paths are contained: every rule and outcome holds with all of them switched off.
off=(env DTASK_FAST_PATHS=none)
step "unit tests, fast paths off" "${off[@]}" meson test -C build --print-errorlogs --suite unit
step "LocalCluster integration, fast paths off" "${off[@]}" meson test -C build --print-errorlogs --suite integration
if [ -x tests/mpi/run.sh ]; then step "mpirun integration, fast paths off" "${off[@]}" bash tests/mpi/run.sh "$root/build"; fi
if [ -x tests/runner/run.sh ]; then step "runner without MPI, fast paths off" "${off[@]}" bash tests/runner/run.sh "$root/build"; fi
if [ -x tests/chaos/run.sh ]; then step "chaos: 3 runs with a kill -9, fast paths off" "${off[@]}" bash tests/chaos/run.sh chaos "$root/build" --runs 3; fi

if ((failed)); then printf 'failed suite: %s\n' "${failures[@]}"; fi
echo "$passed passed, $failed failed"
((failed == 0))

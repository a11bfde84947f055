#!/usr/bin/env bash
# End-to-end tests of dtask::slurm::Cluster (jobs/slurm_cluster) on the two-node Slurm test cluster
# (tests/slurm/cluster.sh): the seed's example, close() leaving no job, Slurm's message for a bad
# partition, a job whose workers cannot start, scale-down keeping results, adapt, --lifetime
# replacement, a program that throws, SIGTERM to the program, kill -9 + dtask-cluster cancel.
# Usage: tests/slurm/cluster_object.sh [BUILD_DIR]   (root; brings the cluster up, always tears it down).
# Prints "ok   ..." / "FAIL ..." per case and "N passed, N failed"; exits 0 only if every case passed.
# DTASK_E2E_KEEP=1 keeps the cluster up and the work dir afterwards.
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="$(cd "${1:-$root/build}" && pwd)" || { echo "no build dir ${1:-$root/build}" >&2; exit 2; }
cluster="$root/tests/slurm/cluster.sh"
IF=hsn0
staged=(src/cli/dtask-worker src/cli/dtask-cluster jobs/slurm_cluster jobs/libhostname_tasks.so
  tests/cluster_scenarios tests/libtest_tasks.so)
for f in "${staged[@]}"; do
  [ -e "$build/$f" ] || { echo "missing $build/$f: build first (ninja -C $build)" >&2; exit 2; }
done
# Both nodes see /var/tmp, not /tmp: the staged build, the shared directory and the logs live there.
work="$(mktemp -d /var/tmp/dtask-cluster-object-XXXXXX)"
chmod 0755 "$work"
stage="$work/build"
mkdir -p "$stage"
(cd "$build" && cp -a --parents "${staged[@]}" src/libdtask.so* "$stage/") || { rm -rf "$work"; exit 2; }
chmod -R a+rX "$work"
cd "$work" || exit 2
prog="$stage/jobs/slurm_cluster"
tool="$stage/src/cli/dtask-cluster"
shared="$work/shared"
common=(--plugin "$stage/jobs/libhostname_tasks.so" --worker-executable "$stage/src/cli/dtask-worker"
  --shared-directory "$shared" --interface "$IF" --scheduler-interface "$IF" --cores 2 --processes 2
  --memory 500MB --walltime 00:05:00)
passed=0
failed=0

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  # whatever a failed case left: the cleanup command is what a user would run
  "$tool" --directory "$shared" cancel --all --force --timeout 20 >/dev/null 2>&1 || true
  if [ "${DTASK_E2E_KEEP:-0}" = 1 ]; then
    echo "DTASK_E2E_KEEP=1: cluster left up, work dir $work" >&2
  else
    "$cluster" down >"$work/down.log" 2>&1 || { echo "cluster.sh down failed:" >&2; cat "$work/down.log" >&2; }
    rm -rf "$work"
  fi
  exit $rc
}
trap cleanup EXIT

ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() {
  failed=$((failed + 1))
  echo "FAIL $1"
  local f
  shift
  for f in "$@"; do [ -s "$f" ] && sed "s|^|  $(basename "$f"): |" "$f" | tail -15; done
  return 0
}
# our worker jobs still known to squeue (any state but gone)
our_jobs() { timeout 10 squeue -h -n dtask-worker -o '%i' 2>/dev/null | wc -l; }
# empty shared directory (no scheduler file, state file or keys)
no_files() { [ -z "$(find "$shared" -name '*.json' 2>/dev/null)" ]; }
host_counts() {
  awk '/^[^ ]+: [0-9]+ tasks$/ {h = $1; sub(":", "", h); n[h] += $2; s += $2}
       END {printf "node1=%d node2=%d sum=%d", n["node1"], n["node2"], s}' "$1"
}

if ! timeout 300 "$cluster" up >"$work/up.log" 2>&1; then
  echo "FAIL cluster.sh up"
  tail -30 "$work/up.log"
  exit 1
fi

# ------------------------------------------------------------------ 1. the seed's example
name="seed example: 2 jobs, 2,000 submits, exit 0, no job and no file left"
# --cores 4: a job fills a node (4 CPUs), so the two jobs run on node1 and node2, as on the seed's cluster.
timeout 600 "$prog" "${common[@]}" --cores 4 --jobs 2 --submits 2000 >"$work/seed.out" 2>"$work/seed.err"
rc=$?
counts=$(host_counts "$work/seed.out")
if [ $rc -eq 0 ] && [[ "$counts" =~ sum=2000$ ]] && grep -q '^#SBATCH --cpus-per-task=4' "$work/seed.out" &&
  [ "$(our_jobs)" -eq 0 ] && no_files; then ok "$name ($counts)"; else
  bad "$name (rc=$rc, $counts, jobs left $(our_jobs))" "$work/seed.out" "$work/seed.err"
fi
# Load spreading: sequential submits on an idle cluster visit the workers of both jobs.
name="seed example: the counter shows node1 and node2"
if [[ "$counts" =~ node1=[1-9][0-9]*\ node2=[1-9] ]]; then ok "$name ($counts)"; else bad "$name ($counts)"; fi

# ------------------------------------------------------------------ 2. invalid partition: Slurm's message at creation
name="invalid partition: Slurm's own message, at creation, no job"
timeout 120 "$prog" "${common[@]}" --queue no_such_partition >"$work/part.out" 2>"$work/part.err"
rc=$?
if [ $rc -ne 0 ] && grep -q 'sbatch --test-only refused' "$work/part.err" && grep -qi 'partition' "$work/part.err" &&
  [ "$(our_jobs)" -eq 0 ] && no_files; then ok "$name"; else bad "$name (rc=$rc)" "$work/part.err"; fi

# ------------------------------------------------------------------ 3. workers cannot start: an error naming job and log
name="bad plugin path: error names the job and its log within 120 s"
t0=$SECONDS
timeout 300 "$prog" "${common[@]/libhostname_tasks.so/no_such_plugin.so}" --jobs 1 >"$work/plug.out" 2>"$work/plug.err"
rc=$?
if [ $rc -ne 0 ] && [ $((SECONDS - t0)) -le 120 ] && grep -qE 'slurm job [0-9]+ ended \(FAILED\)' "$work/plug.err" &&
  grep -qE 'dtask-worker-[0-9]+\.out' "$work/plug.err" && [ "$(our_jobs)" -eq 0 ]; then ok "$name"; else
  bad "$name (rc=$rc, $((SECONDS - t0)) s)" "$work/plug.err"
fi

# ------------------------------------------------------------------ 4. scale-down, adapt, lifetime, throw
scenario_args=(--plugin "$stage/tests/libtest_tasks.so" "${common[@]:2}")  # common starts with --plugin P
scenario() {  # scenario MODE NAME: runs tests/slurm/cluster_scenarios.cpp's MODE
  local mode=$1 name=$2 rc
  timeout 600 "$stage/tests/cluster_scenarios" "$mode" "${scenario_args[@]}" >"$work/$mode.out" 2>"$work/$mode.err"
  rc=$?
  if [ $rc -eq 0 ] && [ "$(our_jobs)" -eq 0 ] && no_files; then ok "$name ($(head -1 "$work/$mode.out"))"; else
    bad "$name (rc=$rc, jobs left $(our_jobs))" "$work/$mode.out" "$work/$mode.err"
  fi
}
scenario scale-down "scale 2 -> 1 job with 200 results held: one job retired, every result unchanged"
scenario adapt "adapt(0, 4) with 200 tasks of 50 ms: at most 4 jobs, results right, back to 0 jobs when idle"
scenario lifetime "--lifetime 10s workers under a 35 s run: jobs replaced, held results unchanged"
name="a program that throws: the destructor cancels its jobs, no job and no file left"
timeout 600 "$stage/tests/cluster_scenarios" throw "${scenario_args[@]}" >"$work/throw.out" 2>"$work/throw.err"
rc=$?
if [ $rc -eq 1 ] && grep -q 'throwing' "$work/throw.out" && grep -q "the user's code threw" "$work/throw.err" &&
  [ "$(our_jobs)" -eq 0 ] && no_files; then ok "$name"; else
  bad "$name (rc=$rc, jobs left $(our_jobs))" "$work/throw.out" "$work/throw.err"
fi

# ------------------------------------------------------------------ 5. SIGTERM to the program
name="SIGTERM to the program: its jobs are cancelled and gone, files removed"
"$prog" "${common[@]}" --jobs 2 --submits 100000000 >"$work/term.out" 2>"$work/term.err" &
pid=$!
for _ in $(seq 1 600); do [ "$(timeout 10 squeue -h -n dtask-worker -t RUNNING -o '%i' | wc -l)" -ge 2 ] && break; sleep 0.2; done
sleep 2
kill -TERM $pid
wait $pid
rc=$?
if [ $rc -ne 0 ] && [ "$(our_jobs)" -eq 0 ] && no_files; then ok "$name"; else
  bad "$name (rc=$rc, jobs left $(our_jobs))" "$work/term.err"
fi

# ------------------------------------------------------------------ 6. kill -9, then dtask-cluster cancel
name="kill -9 of the program: dtask-cluster list shows it, its workers leave, cancel --all removes its files"
"$prog" "${common[@]}" --jobs 2 --submits 100000000 >"$work/k9.out" 2>"$work/k9.err" &
pid=$!
for _ in $(seq 1 600); do [ "$(timeout 10 squeue -h -n dtask-worker -t RUNNING -o '%i' | wc -l)" -ge 2 ] && break; sleep 0.2; done
sleep 2
kill -KILL $pid
wait $pid 2>/dev/null
"$tool" --directory "$shared" list >"$work/list.out" 2>&1
# Nothing cancels them, yet the workers notice their scheduler is gone and leave: the jobs end.
t0=$SECONDS
for _ in $(seq 1 120); do [ "$(our_jobs)" -eq 0 ] && break; sleep 0.5; done
left_on_their_own=$(( $(our_jobs) == 0 ? SECONDS - t0 : -1 ))
"$tool" --directory "$shared" cancel --all >"$work/cancel.out" 2>&1
rc=$?
if grep -q 'program gone' "$work/list.out" && [ "$left_on_their_own" -ge 0 ] && [ $rc -eq 0 ] &&
  [ "$(our_jobs)" -eq 0 ] && no_files; then ok "$name (jobs ended on their own after ${left_on_their_own} s)"; else
  bad "$name (rc=$rc, jobs left $(our_jobs))" "$work/list.out" "$work/cancel.out"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

#!/usr/bin/env bash
# dtask-run --bootstrap slurm without Slurm: N local processes with srun's task variables set.
# Results, exit codes on every task, a dead scheduler task, a missing card, failed ranks, bad input.
# Usage: tests/runner/run.sh [BUILD_DIR]. Prints one line per case and "N passed, N failed".
# Every task runs with OMPI_MCA_pml=nosuch, which makes any MPI_Init fail loudly: this bootstrap
# must never call it (srun --mpi=none).
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="$(cd "${1:-$root/build}" && pwd)" || { echo "no build dir ${1:-$root/build}" >&2; exit 2; }
run="$build/src/cli/dtask-run"
job="$build/tests/libmpi_job.so"
for f in "$run" "$job"; do [ -e "$f" ] || { echo "missing $f: build first" >&2; exit 2; }; done
work="$(mktemp -d /var/tmp/dtask-runner-XXXXXX)"
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
export OMPI_MCA_pml=nosuch
passed=0
failed=0
jobid=$((RANDOM * 100))  # every case its own job id, as Slurm would give

ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() {
  failed=$((failed + 1))
  echo "FAIL $1"
  echo "  rcs=${rcs[*]} time=${secs}s"
  local f
  for f in "$work"/out.* "$work"/err.*; do [ -s "$f" ] && sed "s|^|  $(basename "$f"): |" "$f" | tail -6; done
  return 0
}

# start N RANKS ARGS...: task r of N for each r in RANKS (e.g. "0 1 2 3"), in the background;
# with late=R, task R starts only once the others' job has ended (task 0's end notice is there).
# With per_node=K, tasks come in blocks of K per pretend node (SLURM_LOCALID, SLURM_NODEID and
# SLURM_STEP_TASKS_PER_NODE as srun sets them), all on this machine.
late=""
per_node=""
start() {
  local n="$1" ranks="$2" r
  local extra=()
  shift 2
  jobid=$((jobid + 1))
  rm -f "$work"/out.* "$work"/err.* "$work"/dtask-run-*
  pids=()
  t0=$(date +%s.%N)
  for r in $ranks; do
    if [ "$r" = "$late" ]; then continue; fi
    extra=()
    if [ -n "$per_node" ]; then
      extra=(SLURM_LOCALID=$((r % per_node)) SLURM_NODEID=$((r / per_node)) SLURM_STEP_TASKS_PER_NODE="$per_node(x$((n / per_node)))")
    fi
    env "${extra[@]}" SLURM_PROCID="$r" SLURM_NTASKS="$n" SLURM_JOB_ID="$jobid" SLURM_STEP_ID=0 SLURM_SUBMIT_DIR="$work" \
      timeout -k 5 90 "$run" --bootstrap slurm "$@" >"$work/out.$r" 2>"$work/err.$r" &
    pids+=($!)
  done
  if [ -n "$late" ]; then
    local i
    for i in $(seq 300); do [ -e "$work/dtask-run-$jobid.0.json.ended" ] && break; sleep 0.1; done
    env SLURM_PROCID="$late" SLURM_NTASKS="$n" SLURM_JOB_ID="$jobid" SLURM_STEP_ID=0 SLURM_SUBMIT_DIR="$work" \
      timeout -k 5 90 "$run" --bootstrap slurm "$@" >"$work/out.$late" 2>"$work/err.$late" &
    pids+=($!)
  fi
}
# finish: waits for every task; sets rcs (one per started task, in order) and secs.
finish() {
  local p
  rcs=()
  for p in "${pids[@]}"; do
    wait "$p" 2>/dev/null  # (not bash's "Killed" line for the task a case kills)
    rcs+=($?)
  done
  pids=()
  secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
}
all_are() { local c; for c in "${rcs[@]}"; do [ "$c" -eq "$1" ] || return 1; done; }
none_zero() { local c; for c in "${rcs[@]}"; do [ "$c" -ne 0 ] && [ "$c" -ne 124 ] && [ "$c" -ne 137 ] || return 1; done; }
quiet() { ! cat "$work"/err.* | grep -q .; }
no_card() { ! ls "$work"/dtask-run-"$jobid".* >/dev/null 2>&1; }
# wait_for TEXT FILE: until FILE says TEXT (30 s at most)
wait_for() { local i; for i in $(seq 300); do grep -q "$1" "$2" 2>/dev/null && return 0; sleep 0.1; done; return 1; }

# ---- results, with the caller's fast paths (tests/run.sh runs this file with and without) and with none
for fp in "${DTASK_FAST_PATHS:-default}" none; do
  start 4 "0 1 2 3" --fast-paths "${fp/default/}" "$job" chains
  finish
  name="4 tasks (fast paths: $fp): 256 chains correct on 2 workers, every task exits 0, nothing on stderr, card removed"
  if all_are 0 && grep -q "chains ok on 2 workers" "$work/out.1" && quiet && no_card; then ok "$name (${secs}s)"; else bad "$name"; fi
done

start 6 "0 1 2 3 4 5" "$job" hostnames 100
finish
name="6 tasks: 100 tasks spread, exit 0 everywhere"
if all_are 0 && grep -qE ": 100 tasks$" "$work/out.1" && quiet; then ok "$name (${secs}s)"; else bad "$name"; fi

# ---- the client's code on every task
start 4 "0 1 2 3" "$job" exit 3
finish
name="client returns 3: every task exits 3, nothing on stderr"
if all_are 3 && quiet && no_card; then ok "$name (${secs}s)"; else bad "$name"; fi

start 4 "0 1 2 3" "$job" throw
finish
name="client throws: the error once, every task exits 1"
if all_are 1 && [ "$(cat "$work"/err.* | grep -c 'deliberate failure in the client code')" -eq 1 ]; then ok "$name (${secs}s)"; else bad "$name"; fi

# ---- the card: in the shared directory, 0600, while the job runs; gone after
start 4 "0 1 2 3" "$job" sleep 2
card="$work/dtask-run-$jobid.0.json"
wait_for sleeping "$work/out.1"
mode=$(stat -c %a "$card" 2>/dev/null)
addr=$(grep -o '"address": *"tcp://[^"]*"' "$card" 2>/dev/null)
finish
name="card at SLURM_SUBMIT_DIR/dtask-run-JOB.STEP.json, mode 0600, an address; removed at the end"
if [ "$mode" = 600 ] && [ -n "$addr" ] && all_are 0 && no_card; then ok "$name"; else bad "$name (mode=$mode addr=$addr)"; fi

start 4 "0 1 2 3" --shared-directory "$work/cards" "$job" exit 0
finish
name="--shared-directory that does not exist: made by task 0, the job runs, nothing left in it"
if all_are 0 && [ -d "$work/cards" ] && [ -z "$(ls -A "$work/cards")" ]; then ok "$name"; else bad "$name"; fi

# ---- --no-client: the card is the --scheduler-file an outside client joins with, and ends the job with
if [ -x "$build/tests/external_client" ]; then
  start 3 "0 1 2" --no-client --scheduler-file "$work/sched.json" "$job"
  for i in $(seq 100); do [ -s "$work/sched.json" ] && break; sleep 0.1; done
  "$build/tests/external_client" "$work/sched.json" 0 >"$work/client.out" 2>&1
  crc=$?
  finish
  name="--no-client --scheduler-file: an outside client runs on both workers and ends the job, every task exits 0"
  if [ $crc -eq 0 ] && grep -q "sum=2450 workers=2" "$work/client.out" && all_are 0 && [ ! -e "$work/sched.json" ]; then
    ok "$name"
  else
    bad "$name (client rc=$crc: $(tail -2 "$work/client.out"))"
  fi
fi

# ---- dead or failing ranks
start 4 "0 1 2 3" --heartbeat-timeout 1 "$job" sleep 60
wait_for sleeping "$work/out.1"
# the scheduler task (the dtask-run under `timeout`) and its role process, both at once
task0=$(pgrep -P "${pids[0]}")
pkill -KILL -P "$task0"
kill -KILL "$task0"
finish
name="kill -9 of the scheduler task mid-job: every other task says it lost the scheduler and exits non-zero"
rcs=("${rcs[@]:1}")  # task 0's own is the kill's 137
if none_zero && grep -q "the job is ending (lost the scheduler" "$work/err.1" && grep -q "lost the scheduler" "$work/err.2"; then ok "$name (rcs ${rcs[*]}, ${secs}s)"; else bad "$name"; fi

start 4 "0 1 2 3" "$job" sleep 60
wait_for sleeping "$work/out.1"
kill -TERM "${pids[@]}"  # `timeout` passes it on to its dtask-run, as srun does to its tasks
finish
name="SIGTERM to every task (scancel): every task exits non-zero, card removed"
if none_zero && no_card; then ok "$name (rcs ${rcs[*]}, ${secs}s)"; else bad "$name"; fi

start 4 "1 2 3" --wait-timeout 2 "$job" chains
finish
name="no scheduler task: every other task exits 1 with 'no business card at ...' after --wait-timeout"
n=$(cat "$work"/err.* | grep -c "no business card at $work/dtask-run-$jobid.0.json after 2 s")
if all_are 1 && [ "$n" -eq 3 ]; then ok "$name (${secs}s)"; else bad "$name ($n said so)"; fi

start 4 "0 1 2 3" --scheduler-interface nosuch0 "$job" chains
finish
name="scheduler task cannot bind (--scheduler-interface nosuch0): its reason, every task exits 1 at once"
if all_are 1 && grep -q "network interface 'nosuch0' does not exist" "$work/err.0" &&
  [ "$(cat "$work"/err.[123] | grep -c "stops: task 0 (the scheduler)")" -eq 3 ] && no_card; then ok "$name (${secs}s)"; else bad "$name"; fi

start 4 "0 1 2 3" --worker-interface nosuch0 --wait-timeout 60 "$job" chains
finish
name="worker tasks cannot start (--worker-interface nosuch0): their reason, the job ends 1 without waiting out --wait-timeout"
n=$(cat "$work"/err.[23] | grep -c "network interface 'nosuch0' does not exist")
if all_are 1 && [ "$n" -eq 2 ] && no_card && ! grep -q "workers joined within" "$work/err.1"; then ok "$name (${secs}s)"; else bad "$name"; fi

# The job is over before the client task even looks for the card: it learns the code from task 0's end notice.
late=1 start 4 "0 1 2 3" --worker-interface nosuch0 --wait-timeout 60 "$job" chains
finish
name="the same with the client task starting after the job ended: it learns code 1, every task exits 1, nothing left"
if all_are 1 && grep -q "the job ended (code 1) before this task found it" "$work/err.1" && no_card; then
  ok "$name (${secs}s)"
else bad "$name"; fi

# ---- memory limits: auto divides the job's --mem on a node among the worker tasks on that node
per_node=3 SLURM_MEM_PER_NODE=1200 start 6 "0 1 2 3 4 5" "$job" memory-limits
finish
name="--memory-limit auto (default) under --mem=1200M, 3 tasks a node: the worker beside the scheduler and client gets 1200 MiB, the three on the next node 400 MiB each"
if all_are 0 && grep -qx "worker 2: memory_limit 1258291200" "$work/out.1" &&
  [ "$(grep -cx "worker [345]: memory_limit 419430400" "$work/out.1")" -eq 3 ]; then ok "$name"; else bad "$name"; fi

SLURM_MEM_PER_NODE=1200 start 4 "0 1 2 3" --memory-limit 256MiB "$job" memory-limits
finish
name="--memory-limit 256MiB: every worker has 268435456"
if all_are 0 && [ "$(grep -cx "worker [23]: memory_limit 268435456" "$work/out.1")" -eq 2 ]; then ok "$name"; else bad "$name"; fi

start 4 "0 1 2 3" --memory-limit bogus "$job" chains
finish
name="--memory-limit bogus: every task exits 2, the reason once"
if all_are 2 && [ "$(cat "$work"/err.* | grep -c "cannot read memory limit 'bogus': expected 0, auto, a size like 4GiB or a fraction like 0.5")" -eq 1 ]; then
  ok "$name"
else bad "$name"; fi

start 4 "0 1 2 3" --memory-pause 0.5 --memory-target 0.9 --memory-spill 0 "$job" chains
finish
name="--memory-pause 0.5 below --memory-target 0.9: every task exits 2, the reason once"
if all_are 2 && [ "$(cat "$work"/err.* | grep -c "pause (0.5) is below target (0.9)")" -eq 1 ]; then ok "$name"; else bad "$name"; fi

: >"$work/plain-file"
start 4 "0 1 2 3" --local-directory "$work/plain-file/x" --wait-timeout 60 "$job" chains
finish
name="--local-directory under a regular file: the worker tasks name it, every task exits 1"
n=$(cat "$work"/err.[23] | grep -c "cannot use local directory $work/plain-file/x/worker-[23] for spilling: Not a directory")
if all_are 1 && [ "$n" -eq 2 ] && no_card; then ok "$name (${secs}s)"; else bad "$name ($n said so)"; fi

# ---- bad input
rcs=()
secs=0
env -u SLURM_PROCID "$run" --bootstrap slurm "$job" chains >"$work/out.0" 2>"$work/err.0"
rcs=($?)
name="--bootstrap slurm without SLURM_PROCID: exit 2, says to start it with srun"
if all_are 2 && grep -q "needs SLURM_PROCID: start dtask-run with srun" "$work/err.0"; then ok "$name"; else bad "$name"; fi

SLURM_PROCID=0 SLURM_NTASKS=4 "$run" --bootstrap pmix "$job" chains >"$work/out.0" 2>"$work/err.0"
rcs=($?)
name="--bootstrap pmix: exit 2, names mpi and slurm"
if all_are 2 && grep -q "unknown --bootstrap 'pmix' (mpi or slurm)" "$work/err.0"; then ok "$name"; else bad "$name"; fi

SLURM_PROCID=0 SLURM_NTASKS=4 "$run" --shared-directory "$work" "$job" chains >"$work/out.0" 2>"$work/err.0"
rcs=($?)
name="--shared-directory without --bootstrap slurm: exit 2, says what it is for"
if all_are 2 && grep -q "shared-directory is for --bootstrap slurm" "$work/err.0"; then ok "$name"; else bad "$name"; fi

start 2 "0 1" "$job" chains
finish
name="2 tasks: exit 2, one error asking for -n 3"
if all_are 2 && [ "$(cat "$work"/err.* | grep -c 'needs at least 3 Slurm tasks')" -eq 1 ]; then ok "$name"; else bad "$name"; fi

echo "$passed passed, $failed failed"
((failed == 0))

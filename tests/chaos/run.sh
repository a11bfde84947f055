#!/usr/bin/env bash
# Chaos and clean runs under mpirun (issue 13): the proof that a killed worker loses nothing and that a healthy job is quiet.
# Usage: tests/chaos/run.sh chaos|clean [BUILD_DIR] [--runs N] [--seed S]
#   chaos: N runs (default 10) of tests/chaos/chaos_job.cpp under `mpirun -n 6` (scheduler, client,
#          4 workers): a 20,201-task graph, one worker kill -9ed at a seeded random moment. Each run
#          must exit 0 with every result exact, no crash report on stderr, and leave no process
#          behind. Run i uses seed S+i-1 (S defaults to the clock, printed); a failed run prints the
#          command that replays it.
#   clean: N runs (default 100) of the runner example (jobs/runner) under `mpirun -n 4`: every run
#          exits 0, prints its results, writes nothing at all on stderr, leaves no process behind.
# Prints one line per run (time, the chaos job's figures), a summary, and "N passed, N failed".
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
mode="${1:-}"
shift || true
build="$root/build"
runs=""
seed=""
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) build="$1"; shift ;;
  esac
done
case "$mode" in
  chaos) runs="${runs:-10}"; seed="${seed:-$(date +%s)}" ;;
  clean) runs="${runs:-100}" ;;
  *) echo "usage: $0 chaos|clean [BUILD_DIR] [--runs N] [--seed S]" >&2; exit 2 ;;
esac
run="$build/src/cli/dtask-run"
work="$(mktemp -d /var/tmp/dtask-chaos-XXXXXX)"
# Only processes started from this directory (every rank's command line names its scheduler file).
trap 'pkill -KILL -f "$work" 2>/dev/null; rm -rf "$work"' EXIT
MPIRUN=(mpirun --allow-run-as-root --oversubscribe)
passed=0
failed=0
times=()

# Waits up to 5 s for every process of the run to be gone; prints how many are left.
leftovers() {
  local sched="$1"
  for _ in $(seq 50); do pgrep -f "$sched" >/dev/null || break; sleep 0.1; done
  pgrep -fc "$sched"
}

for i in $(seq "$runs"); do
  sched="$work/sched-$i.json"
  out="$work/out-$i"
  err="$work/err-$i"
  t0=$(date +%s.%N)
  if [ "$mode" = chaos ]; then
    s=$((seed + i - 1))
    # --heartbeat-timeout 2: the loss is noticed in ~2 s even where nothing faster notices it.
    cmd=("${MPIRUN[@]}" -n 6 "$run" --heartbeat-timeout 2 --scheduler-file "$sched" "$build/tests/chaos/libchaos_job.so" "$s")
    timeout -k 5 180 "${cmd[@]}" >"$out" 2>"$err"
  else
    cmd=("${MPIRUN[@]}" -n 4 "$run" --scheduler-file "$sched" "$build/jobs/librunner_tasks.so")
    timeout -k 5 60 "${cmd[@]}" >"$out" 2>"$err"
  fi
  rc=$?
  secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
  left=$(leftovers "$sched")
  why=""
  [ "$rc" -eq 0 ] || why="$why exit=$rc"
  [ "$left" -eq 0 ] || why="$why processes-left=$left"
  [ ! -e "$sched" ] || why="$why scheduler-file-left"
  if [ "$mode" = chaos ]; then
    grep -q "^chaos ok: 101 results exact" "$out" || why="$why results-not-exact"
    # The killed worker may be reported (warnings); a crash, an abort or a sanitizer report may not.
    ! grep -qE "Segmentation fault|core dumped|terminate called|Sanitizer:|double free|stack smashing" "$err" || why="$why crash-on-stderr"
    figures=$(grep "^chaos seed=" "$out" | sed 's/^chaos //')
  else
    grep -q "dtask runner is working!" "$out" || why="$why no-result"
    [ ! -s "$err" ] || why="$why stderr-lines=$(wc -l <"$err")"
    figures=""
  fi
  if [ -z "$why" ]; then
    passed=$((passed + 1))
    times+=("$secs")
    if [ "$mode" = chaos ] || [ $((i % 10)) -eq 0 ]; then echo "ok   run $i (${secs}s) $figures"; fi
  else
    failed=$((failed + 1))
    echo "FAIL run $i (${secs}s):$why $figures"
    echo "  replay: ${cmd[*]}" | sed "s|$work/sched-$i.json|/var/tmp/sched.json|"
    sed 's/^/  stdout: /' "$out" | tail -5
    sed 's/^/  stderr: /' "$err" | tail -15
  fi
  if [ "$left" -ne 0 ]; then pkill -KILL -f "$sched" 2>/dev/null; fi
done

if [ ${#times[@]} -gt 0 ]; then
  printf '%s\n' "${times[@]}" | sort -n | awk -v m="$mode" '{t[NR]=$1; s+=$1} END {
    printf "%s: %d good runs, time per run min %.1f s, median %.1f s, max %.1f s, total %.0f s\n", m, NR, t[1], t[int((NR+1)/2)], t[NR], s}'
fi
[ "$mode" = chaos ] && echo "chaos seeds: $seed..$((seed + runs - 1))"
echo "$passed passed, $failed failed"
((failed == 0))

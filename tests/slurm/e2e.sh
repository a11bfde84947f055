#!/usr/bin/env bash
# End-to-end tests of dtask-run on the two-node Slurm test cluster (tests/slurm/cluster.sh):
# the jobs/ launchers under sbatch, placement on both nodes, traffic over hsn0, wrong or missing
# interfaces, exit codes under srun, a killed worker, scancel.
# Usage: tests/slurm/e2e.sh [BUILD_DIR]   (root; brings the cluster up, always tears it down).
# BUILD_DIR may be anywhere, /tmp included: what the jobs run is copied into the work dir under
# /var/tmp, which both nodes see (each node has a private /tmp).
# Prints one line per case ("ok   ..." / "FAIL ..." with the captured output) and
# "N passed, N failed"; exits 0 only if every case passed.
# DTASK_E2E_KEEP=1 keeps the cluster up and the work dir afterwards (for debugging).
# DTASK_E2E_ONLY=nompi runs only the cases of the runner without MPI (section 8).
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="$(cd "${1:-$root/build}" && pwd)" || { echo "no build dir ${1:-$root/build}" >&2; exit 2; }
cluster="$root/tests/slurm/cluster.sh"
IF=hsn0
# What the jobs run, relative to the build dir; the libraries they link come along (with their
# soname links), so that the $ORIGIN-relative RUNPATHs meson gives build-tree binaries still
# find them in the copy.
staged=(src/cli/dtask-run tests/libmpi_job.so jobs/librunner_tasks.so jobs/libhostname_tasks.so
  jobs/libchains_tasks.so jobs/libspill_tasks.so)
for f in "${staged[@]}"; do
  [ -e "$build/$f" ] || { echo "missing $build/$f: build first (ninja -C $build)" >&2; exit 2; }
done

# Job files and the staged build live where both nodes see them (not /tmp).
work="$(mktemp -d /var/tmp/dtask-e2e-XXXXXX)"
chmod 0755 "$work"
stage="$work/build"
mkdir -p "$stage"
(cd "$build" && cp -a --parents "${staged[@]}" src/libdtask.so* src/bootstrap/libdtask_mpi.so* "$stage/") || {
  echo "cannot copy the build into $stage" >&2
  rm -rf "$work"
  exit 2
}
chmod -R a+rX "$work"
# Steps start in the submitting directory, which the nodes may not see (a clone under /tmp).
cd "$work" || exit 2
run="$stage/src/cli/dtask-run"
job="$stage/tests/libmpi_job.so"
# The copy must be self-contained: every dtask library it loads comes from the copy.
for f in "$run" "$job" "$stage"/jobs/*.so; do
  if ldd "$f" | grep -E 'libdtask' | grep -vq " => $stage/"; then
    echo "$f loads a dtask library from outside $stage:" >&2
    ldd "$f" | grep libdtask >&2
    rm -rf "$work"
    exit 2
  fi
done
passed=0
failed=0
t_start=$SECONDS

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  # jobs of ours still queued/running (a case that timed out): cancel them before teardown
  local j
  cat "$work"/*.jid 2>/dev/null | while read -r j; do timeout 5 scancel "$j" >/dev/null 2>&1 || true; done
  if [ "${DTASK_E2E_KEEP:-0}" = 1 ]; then
    echo "DTASK_E2E_KEEP=1: cluster left up, work dir $work" >&2
  else
    "$cluster" down >"$work/down.log" 2>&1 || { echo "cluster.sh down failed:" >&2; cat "$work/down.log" >&2; }
    rm -rf "$work"
  fi
  exit $rc
}
trap cleanup EXIT
step=""  # the running srun step's `timeout` pid, if any
trap 'echo "interrupted" >&2; [ -n "$step" ] && kill -TERM "$step" 2>/dev/null; exit 130' INT TERM

ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { # bad NAME [FILES...]: a failure, with the captured output
  failed=$((failed + 1))
  echo "FAIL $1"
  local f
  shift
  for f in "$@"; do
    [ -s "$f" ] && sed "s|^|  $(basename "$f"): |" "$f" | tail -15
  done
  return 0
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN{exit !(a <= b)}'; }

# srun_job NAME LIMIT SRUN-ARGS... -- DTASK-RUN-ARGS...: one srun step; sets rc, secs; output in $work/NAME.{out,err}
srun_job() {
  local name="$1" limit="$2"
  shift 2
  local sargs=()
  while [ "$1" != "--" ]; do sargs+=("$1"); shift; done
  shift
  local t0
  t0=$(now)
  # in the background + wait, so that an interrupt does not wait for the step to end
  timeout -k 5 "$limit" srun --job-name="e2e-$name" "${sargs[@]}" "$run" "$@" >"$work/$name.out" 2>"$work/$name.err" &
  step=$!
  wait $step
  rc=$?
  step=""
  secs=$(since "$t0")
}

# job_field JOBID FIELD: one field of `scontrol show job` (e.g. JobState, ExitCode)
job_field() { timeout 10 scontrol -o show job "$1" 2>/dev/null | grep -o " $2=[^ ]*" | head -1 | cut -d= -f2; }

# wait_job JOBID LIMIT [STATE]: polls until the job reaches a final state (or STATE); sets state, exitcode, secs
# (sbatch --wait polls slowly: 2 s, then 8 s, then 32 s)
wait_job() {
  local jid="$1" limit="$2" want="${3:-}" t0
  t0=$(now)
  while :; do
    state=$(job_field "$jid" JobState)
    case "$state" in
      COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE | PREEMPTED) break ;;
    esac
    [ -n "$want" ] && [ "$state" = "$want" ] && break
    le "$limit" "$(since "$t0")" && { state="$state(still, after ${limit}s)"; break; }
    sleep 0.2
  done
  exitcode=$(job_field "$jid" ExitCode)
  secs=$(since "$t0")
}

# submit NAME SBATCH-ARGS... SCRIPT [ARGS...]: sbatch with NAME.out / NAME.err in $work; sets jid
submit() {
  local name="$1"
  shift
  jid=$(timeout 30 sbatch --parsable --job-name="e2e-$name" --output="$work/$name.out" --error="$work/$name.err" \
    --chdir="$work" "$@" 2>"$work/$name.sbatch")
  jid=${jid%%;*}
  [ -n "$jid" ] && echo "$jid" >"$work/$name.jid"
}

# stderr of a successful run: nothing dtask calls an error or a warning
clean_stderr() { ! grep -qiE 'error|warn' "$1"; }

# per-host counts "HOST: N tasks" in FILE: "node1=K node2=M sum=S"
host_counts() {
  awk '/^[^ ]+: [0-9]+ tasks$/ {h = $1; sub(":", "", h); n[h] += $2; s += $2}
       END {printf "node1=%d node2=%d sum=%d", n["node1"], n["node2"], s}' "$1"
}

# ------------------------------------------------------------------ cluster
t0=$(now)
if ! timeout 300 "$cluster" up >"$work/up.log" 2>&1; then
  echo "FAIL cluster.sh up"
  sed 's/^/  /' "$work/up.log" | tail -40
  echo "0 passed, 1 failed"
  exit 1
fi
echo "cluster up in $(since "$t0")s"

only="${DTASK_E2E_ONLY:-}"
if [ "$only" != nompi ]; then
# ------------------------------------------------------------------ 1+2. the jobs/ launchers under sbatch
declare -A launcher=(
  [runner]="$root/jobs/runner/runner_launcher.sh"
  [hostnames]="$root/jobs/hostnames/hostname_launcher.sh"
  [chains]="$root/jobs/chains/chains_launcher.sh"
)
declare -A expect=(
  [runner]="dtask runner is working!"
  [hostnames]=": [0-9]+ tasks$"
  [chains]="all 256 results are 2i\+1"
)
for l in runner hostnames chains; do
  name="sbatch ${launcher[$l]#"$root/"} BUILD $IF: exit 0, expected output, clean stderr"
  submit "$l" "${launcher[$l]}" "$stage" "$IF"
  if [ -z "$jid" ]; then bad "$name (sbatch refused)" "$work/$l.sbatch"; continue; fi
  wait_job "$jid" 60
  extra=""
  [ "$l" = hostnames ] && extra=" ($(host_counts "$work/$l.out"))"
  if [ "$state" = COMPLETED ] && [ "$exitcode" = 0:0 ] && grep -qE "${expect[$l]}" "$work/$l.out" &&
    clean_stderr "$work/$l.err" &&
    { [ "$l" != hostnames ] || host_counts "$work/$l.out" | grep -qE 'node1=[1-9].* node2=[1-9]'; } &&
    # The runner prints its dashboard link (on the scheduler's interface, with the token) and
    # leaves its report beside the output (issue 16).
    { [ "$l" != runner ] || { grep -qE "^dashboard: http://10\.77\.0\.[12]:[0-9]+/status\?token=[0-9a-f]{32}$" "$work/$l.out" &&
      grep -q '"inc"' "$work/dtask-runner-$jid.html"; }; }; then
    ok "$name [job $jid, ${secs}s]$extra"
  else
    bad "$name [job $jid: state=$state ExitCode=$exitcode, ${secs}s]" "$work/$l.out" "$work/$l.err"
  fi
done

name="hostname example: tasks on node1 and node2, 100 in all"
counts=$(host_counts "$work/hostnames.out")
if [[ "$counts" =~ ^node1=[1-9][0-9]*\ node2=[1-9][0-9]*\ sum=100$ ]]; then ok "$name ($counts)"; else
  bad "$name ($counts)" "$work/hostnames.out"
fi

# ------------------------------------------------------------------ 2b. memory_limit from --mem, spilling (issue 15)
# jobs/spill under sbatch -N2 --ntasks-per-node=2 (its --mem=512M): the scheduler and client on
# node1, two workers on node2, each with memory_limit auto = 512 MiB / 2; 96 x 8 MiB results kept.
name="sbatch jobs/spill/spill_launcher.sh -N2 --mem=512M: limit 256 MiB per worker from --mem, results spill, sums exact"
submit spill -N2 --ntasks-per-node=2 "$root/jobs/spill/spill_launcher.sh" "$stage" "$IF"
if [ -z "$jid" ]; then bad "$name (sbatch refused)" "$work/spill.sbatch"; else
  wait_job "$jid" 180
  limits=$(grep -c "memory_limit 256 MiB" "$work/spill.out")
  if [ "$state" = COMPLETED ] && [ "$exitcode" = 0:0 ] && grep -q "^spill ok" "$work/spill.out" && [ "$limits" -eq 2 ] &&
    grep -qE "^spill: [1-9][0-9]* results on disk" "$work/spill.out" &&
    # A worker whose process passes the pause threshold (0.8) says so once: this job keeps 3x its
    # memory on purpose, so that warning is the mechanism working, not a fault (0.86x was seen).
    clean_stderr <(grep -v "warning: worker '[0-9]*': paused: process memory" "$work/spill.err"); then
    ok "$name [job $jid, ${secs}s, $(grep -oE '[0-9]+ results on disk' "$work/spill.out")]"
  else
    bad "$name [job $jid: state=$state ExitCode=$exitcode, ${secs}s, $limits workers at 256 MiB]" "$work/spill.out" "$work/spill.err"
  fi
fi

# ------------------------------------------------------------------ 3. workers on node2 reach the scheduler over hsn0
srun_job reach 60 -N2 -n6 --ntasks-per-node=3 -- --interface "$IF" --log-level info "$job" hostnames 100
name="--interface $IF: node2 workers register from 10.77.0.2, tasks on both nodes"
counts=$(host_counts "$work/reach.out")
from2=$(grep -cE "worker '[0-9]+' registered from tcp://10\.77\.0\.2:" "$work/reach.err")
if [ $rc -eq 0 ] && [ "$from2" -eq 3 ] && [[ "$counts" =~ node1=[1-9].*node2=[1-9].*sum=100 ]] &&
  ! grep -qE "registered from tcp://(127\.|10\.77\.0\.[^12])" "$work/reach.err"; then
  ok "$name ($from2 from 10.77.0.2, $counts, ${secs}s)"
else
  bad "$name (rc=$rc, $from2 from 10.77.0.2, $counts)" "$work/reach.out" "$work/reach.err"
fi

# ------------------------------------------------------------------ 4. an interface that does not connect the nodes
srun_job lo 60 -N2 -n6 --ntasks-per-node=3 -- --interface lo --wait-timeout 15 "$job" chains
name="--interface lo across 2 nodes: non-zero, 'only K of 4 workers joined within 15 s', bounded"
if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ $rc -ne 137 ] &&
  grep -qE "only [0-9]+ of 4 workers joined within 15 s" "$work/lo.err" && le "$secs" 45; then
  ok "$name (rc=$rc, ${secs}s)"
else
  bad "$name (rc=$rc, ${secs}s)" "$work/lo.out" "$work/lo.err"
fi

srun_job nosuch 30 -N2 -n6 --ntasks-per-node=3 -- --interface nosuch0 "$job" chains
name="--interface nosuch0: clear error on all 6 ranks at once, non-zero"
n=$(grep -c "network interface 'nosuch0' does not exist" "$work/nosuch.err")
if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ "$n" -eq 6 ] && le "$secs" 10 &&
  grep -q "on host node1" "$work/nosuch.err" && grep -q "on host node2" "$work/nosuch.err"; then
  ok "$name (rc=$rc, ${secs}s)"
else
  bad "$name (rc=$rc, $n ranks said so, ${secs}s)" "$work/nosuch.out" "$work/nosuch.err"
fi

# ------------------------------------------------------------------ 5. exit code propagation under srun
srun_job exit3 60 -N2 -n4 -- --interface "$IF" "$job" exit 3
# srun reports each node's tasks: "srun: error: node1: tasks 0-2: Exited with exit code 3"
ntasks3=$(grep -oE "node[12]: tasks? [0-9,-]+: Exited with exit code 3$" "$work/exit3.err" |
  awk '{ split($3, parts, ","); for (i in parts) { sub(":", "", parts[i]); n = split(parts[i], r, "-");
         c += (n == 2 ? r[2] - r[1] + 1 : 1) } } END { print c + 0 }')
name="srun -N2 -n4 ... exit 3: srun exits 3, all 4 tasks exited 3"
# Nothing else on stderr but srun's own word that the job waited for the previous one's nodes.
if [ $rc -eq 3 ] && [ "$ntasks3" -eq 4 ] && ! grep -v "Exited with exit code 3" "$work/exit3.err" |
  grep -vE "^srun: job [0-9]+ (queued and waiting for resources|has been allocated resources)$" | grep -q .; then
  ok "$name (${secs}s)"
else
  bad "$name (rc=$rc, $ntasks3 tasks reported exit 3)" "$work/exit3.out" "$work/exit3.err"
fi

# ------------------------------------------------------------------ 6. a worker killed mid-graph
# cyclic: scheduler node1, client node2, worker 2 (the victim) node1, workers 3,5 node2, 4 node1
srun_job killw 90 -N2 -n6 --ntasks-per-node=3 -m cyclic -- --interface "$IF" --heartbeat-timeout 2 "$job" kill-worker
name="kill -9 of a worker across 2 nodes (--heartbeat-timeout 2): all 120 results correct, exit 0"
if [ $rc -eq 0 ] && grep -q "all 120 results correct" "$work/killw.out"; then ok "$name (${secs}s)"; else
  bad "$name (rc=$rc, ${secs}s)" "$work/killw.out" "$work/killw.err"
fi

# ------------------------------------------------------------------ 7. scancel of a running job (+ scheduler file)
sched="$work/sched.json"
cat >"$work/sleep.sh" <<EOF
#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks=6
#SBATCH --ntasks-per-node=3
#SBATCH --time=00:05:00
srun "$run" --interface $IF --scheduler-file "$sched" "$job" sleep 60
EOF
submit sleep "$work/sleep.sh"
name="scancel of a running 'sleep 60' job: CANCELLED within 15 s, no dtask-run left on either node"
if [ -z "$jid" ]; then
  bad "$name (sbatch refused)" "$work/sleep.sbatch"
else
  t0=$(now)
  while ! grep -q sleeping "$work/sleep.out" 2>/dev/null && le "$(since "$t0")" 30; do sleep 0.2; done
  # the scheduler file, in a dir both nodes share, names node1's hsn0 address
  addr=$(grep -o '"address": *"[^"]*"' "$sched" 2>/dev/null | sed 's/.*"\(tcp[^"]*\)"/\1/')
  mode=$(stat -c %a "$sched" 2>/dev/null)
  name3="--scheduler-file in a shared dir: address on hsn0 (tcp://10.77.0.1:PORT), mode 0600"
  if [[ "$addr" =~ ^tcp://10\.77\.0\.1:[0-9]+$ ]] && [ "$mode" = 600 ]; then ok "$name3 ($addr)"; else
    bad "$name3 (address='$addr' mode=$mode)" "$sched" "$work/sleep.out" "$work/sleep.err"
  fi
  mine() { # dtask-run processes (MPI ranks and role processes) of job $jid, on any node
    local p
    for p in $(pgrep -f dtask-run); do
      tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "SLURM_JOB_ID=$jid" && echo "$p"
    done
    return 0
  }
  before=$(mine | wc -l)
  running=$(job_field "$jid" JobState)
  timeout 10 scancel "$jid"
  wait_job "$jid" 15 CANCELLED
  left=$(mine)
  t1=$(now)
  while [ -n "$left" ] && le "$(since "$t1")" 5; do sleep 0.2; left=$(mine); done  # stragglers: 5 s grace
  if [ "$running" = RUNNING ] && [ "$before" -ge 6 ] && [ "$state" = CANCELLED ] && le "$secs" 15 && [ -z "$left" ]; then
    ok "$name (${secs}s; $before dtask-run processes before, none after)"
  else
    echo "  left: $(for p in $left; do ps -o pid=,args= -p "$p"; done)" >"$work/left.txt"
    bad "$name (was $running with $before dtask-run processes; now $state after ${secs}s; left: ${left//$'\n'/ })" \
      "$work/sleep.out" "$work/sleep.err" "$work/left.txt"
  fi
fi
fi  # DTASK_E2E_ONLY

# ------------------------------------------------------------------ 8. the runner without MPI (--bootstrap slurm)
# srun --mpi=none: no PMI at all. OMPI_MCA_pml=nosuch makes any MPI_Init fail loudly, so a pass
# also says this bootstrap never calls it. The card goes to the submit dir ($work, both nodes see it).
nompi=(--mpi=none --export=ALL,OMPI_MCA_pml=nosuch)
srun_job nompi 60 "${nompi[@]}" -N2 -n4 --ntasks-per-node=2 -- --bootstrap slurm --interface "$IF" \
  "$stage/jobs/librunner_tasks.so"
name="srun --mpi=none -N2 -n4 dtask-run --bootstrap slurm (runner example): exit 0, right results, clean stderr"
if [ $rc -eq 0 ] && grep -q "inc(10) = 11, inc(20) on worker 2 = 21" "$work/nompi.out" &&
  grep -q "dtask runner is working!" "$work/nompi.out" && grep -q "workers: 2" "$work/nompi.out" &&
  clean_stderr "$work/nompi.err" && ! ls "$work"/dtask-run-* >/dev/null 2>&1; then
  ok "$name (${secs}s)"
else
  bad "$name (rc=$rc)" "$work/nompi.out" "$work/nompi.err"
fi

srun_job nompi_hosts 60 "${nompi[@]}" -N2 -n6 --ntasks-per-node=3 -- --bootstrap slurm --interface "$IF" "$job" hostnames 100
name="--bootstrap slurm -N2 -n6: tasks on node1 and node2, 100 in all, exit 0"
counts=$(host_counts "$work/nompi_hosts.out")
if [ $rc -eq 0 ] && [[ "$counts" =~ ^node1=[1-9][0-9]*\ node2=[1-9][0-9]*\ sum=100$ ]] && clean_stderr "$work/nompi_hosts.err"; then
  ok "$name ($counts, ${secs}s)"
else
  bad "$name (rc=$rc, $counts)" "$work/nompi_hosts.out" "$work/nompi_hosts.err"
fi

srun_job nompi3 60 "${nompi[@]}" -N2 -n4 --ntasks-per-node=2 -- --bootstrap slurm --interface "$IF" "$job" exit 3
ntasks3=$(grep -oE "node[12]: tasks? [0-9,-]+: Exited with exit code 3$" "$work/nompi3.err" |
  awk '{ split($3, parts, ","); for (i in parts) { sub(":", "", parts[i]); n = split(parts[i], r, "-");
         c += (n == 2 ? r[2] - r[1] + 1 : 1) } } END { print c + 0 }')
name="--bootstrap slurm, client returns 3: srun exits 3, all 4 tasks exited 3"
if [ $rc -eq 3 ] && [ "$ntasks3" -eq 4 ] && ! grep -v "Exited with exit code 3" "$work/nompi3.err" |
  grep -vE "^srun: job [0-9]+ (queued and waiting for resources|has been allocated resources)$" | grep -q .; then
  ok "$name (${secs}s)"
else
  bad "$name (rc=$rc, $ntasks3 tasks reported exit 3)" "$work/nompi3.out" "$work/nompi3.err"
fi

# the launcher of jobs/runner with DTASK_BOOTSTRAP=slurm, as a user would submit it
submit nompi_sbatch --export=ALL,DTASK_BOOTSTRAP=slurm "$root/jobs/runner/runner_launcher.sh" "$stage" "$IF"
name="sbatch jobs/runner/runner_launcher.sh with DTASK_BOOTSTRAP=slurm: exit 0, expected output, clean stderr"
if [ -z "$jid" ]; then bad "$name (sbatch refused)" "$work/nompi_sbatch.sbatch"; else
  wait_job "$jid" 60
  if [ "$state" = COMPLETED ] && [ "$exitcode" = 0:0 ] && grep -q "dtask runner is working!" "$work/nompi_sbatch.out" &&
    clean_stderr "$work/nompi_sbatch.err"; then
    ok "$name [job $jid, ${secs}s]"
  else
    bad "$name [job $jid: state=$state ExitCode=$exitcode, ${secs}s]" "$work/nompi_sbatch.out" "$work/nompi_sbatch.err"
  fi
fi

# scancel while the client sleeps: the card (0600) is in the submit dir while it runs, gone after
timeout -k 5 60 srun --job-name=e2e-nompi_term "${nompi[@]}" -N2 -n4 --ntasks-per-node=2 "$run" --bootstrap slurm \
  --interface "$IF" "$job" sleep 60 >"$work/nompi_term.out" 2>"$work/nompi_term.err" &
step=$!
t0=$(now)
while ! grep -q sleeping "$work/nompi_term.out" 2>/dev/null && le "$(since "$t0")" 30; do sleep 0.2; done
cardfile=$(ls "$work"/dtask-run-*.json 2>/dev/null | head -1)
mode=$(stat -c %a "$cardfile" 2>/dev/null)
jid=$(timeout 10 squeue -h -n e2e-nompi_term -o %i | head -1)
[ -n "$jid" ] && timeout 10 scancel "$jid"
wait $step
rc=$?
step=""
left=1
t1=$(now)
while [ "$left" != 0 ] && le "$(since "$t1")" 10; do  # role processes: a few seconds' grace
  left=0
  for p in $(pgrep -f dtask-run); do
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "SLURM_JOB_ID=$jid" && left=$((left + 1))
  done
  [ "$left" != 0 ] && sleep 0.2
done
name="--bootstrap slurm, scancel mid-job: card dtask-run-JOB.STEP.json (0600) while running, non-zero, card and processes gone"
if [ -n "$jid" ] && [[ "$(basename "$cardfile")" =~ ^dtask-run-$jid\.[0-9]+\.json$ ]] && [ "$mode" = 600 ] &&
  [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ "$left" = 0 ] && ! ls "$work"/dtask-run-* >/dev/null 2>&1; then
  ok "$name (rc=$rc)"
else
  bad "$name (job $jid, card '$cardfile' mode $mode, rc=$rc, $left processes left)" "$work/nompi_term.out" "$work/nompi_term.err"
fi

srun_job nompi_bare 30 -N1 -n1 -- --bootstrap slurm "$job" chains
name="--bootstrap slurm with one task: exit 2, one error asking for -n 3"
if [ $rc -eq 2 ] && [ "$(grep -c 'needs at least 3 Slurm tasks' "$work/nompi_bare.err")" -eq 1 ]; then ok "$name"; else
  bad "$name (rc=$rc)" "$work/nompi_bare.out" "$work/nompi_bare.err"
fi

# no dtask-run of any Slurm job of ours survives the whole run
stray=""
for p in $(pgrep -f dtask-run); do
  tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -q "^SLURM_JOB_NAME=e2e-" && stray="$stray $p"
done
name="no dtask-run left from any e2e job"
if [ -z "$stray" ]; then ok "$name"; else
  ps -o pid=,args= -p "${stray# }" >"$work/stray.txt" 2>/dev/null
  bad "$name (pids$stray)" "$work/stray.txt"
fi

echo "$passed passed, $failed failed ($((SECONDS - t_start))s)"
((failed == 0))

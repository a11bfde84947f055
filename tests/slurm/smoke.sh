#!/usr/bin/env bash
# Smoke test for the two-node test cluster (run after `tests/slurm/cluster.sh up`):
#  1. compiles an MPI hello world (rank/size/hostname) into $DTASK_SLURM_DIR/smoke
#     (node2 has a private /tmp, so nothing may live in /tmp),
#  2. runs it with `srun -N 2 -n 4` and via `sbatch --wait`, asserting node1 and node2 both appear,
#  3. checks that a failing batch job's exit code is visible (sbatch --wait rc, scontrol, jobcomp).
# Exits non-zero on any failure; prints "N passed, N failed" at the end.
set -uo pipefail

S=${DTASK_SLURM_DIR:-/var/tmp/dtask-slurm}
W=$S/smoke
PASS=0 FAIL=0
ok()   { echo "PASS: $*"; PASS=$((PASS + 1)); }
bad()  { echo "FAIL: $*"; FAIL=$((FAIL + 1)); }
check_hosts() { # check_hosts NAME OUTPUT_FILE EXPECTED_LINES
  local n; n=$(grep -c '^hello rank ' "$2" || true)
  if grep -q 'host node1$' "$2" && grep -q 'host node2$' "$2" && [ "$n" -eq "$3" ]; then
    ok "$1: $n ranks on node1 and node2"
  else
    bad "$1: expected $3 ranks on node1+node2, got:"; sed 's/^/    /' "$2"
  fi
}

rm -rf "$W"; mkdir -p "$W"
cat >"$W/hello.c" <<'EOF'
#include <mpi.h>
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv) {
  int rank, size; char host[256];
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  gethostname(host, sizeof host);
  int sum = 0;                       /* exercise real inter-node communication */
  MPI_Allreduce(&rank, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  printf("hello rank %d size %d sum %d host %s\n", rank, size, sum, host);
  MPI_Finalize();
  return 0;
}
EOF
if timeout 120 mpicc -O1 -o "$W/hello" "$W/hello.c"; then ok "mpicc"; else bad "mpicc"; exit 1; fi

# 1. srun across both nodes (MpiDefault=pmix, so no --mpi flag needed)
timeout 120 srun -N 2 -n 4 "$W/hello" >"$W/srun.out" 2>"$W/srun.err"
rc=$?
[ $rc -eq 0 ] || { bad "srun rc=$rc"; cat "$W/srun.err"; }
check_hosts "srun -N 2 -n 4" "$W/srun.out" 4

# 2. sbatch --wait of a batch script that sruns the program (6 tasks over 2 nodes)
cat >"$W/job.sh" <<EOF
#!/bin/bash
#SBATCH -N 2
#SBATCH -n 6
#SBATCH -o $W/sbatch.out
#SBATCH -e $W/sbatch.err
srun "$W/hello"
EOF
timeout 180 sbatch --wait --parsable "$W/job.sh" >"$W/sbatch.id"
rc=$?
[ $rc -eq 0 ] && ok "sbatch --wait rc=0 (job $(cat "$W/sbatch.id"))" || { bad "sbatch --wait rc=$rc"; cat "$W/sbatch.err"; }
check_hosts "sbatch -N 2 -n 6" "$W/sbatch.out" 6

# 3. exit code of a failing job
cat >"$W/fail.sh" <<EOF
#!/bin/bash
#SBATCH -N 1
#SBATCH -o $W/fail.out
exit 7
EOF
timeout 120 sbatch --wait --parsable "$W/fail.sh" >"$W/fail.id"
rc=$?
jid=$(cut -d';' -f1 "$W/fail.id")
[ $rc -eq 7 ] && ok "sbatch --wait returns job exit code (7)" || bad "sbatch --wait rc=$rc, expected 7"
ec=$(timeout 10 scontrol show job "$jid" 2>/dev/null | grep -o ' ExitCode=[0-9]*:[0-9]*' | cut -d= -f2)
[ "$ec" = "7:0" ] && ok "scontrol show job $jid: ExitCode=$ec" || bad "scontrol ExitCode='$ec', expected 7:0"
for _ in $(seq 20); do grep -q "JobId=$jid " "$S/log/jobcomp.txt" 2>/dev/null && break; sleep 0.5; done
jc=$(grep "JobId=$jid " "$S/log/jobcomp.txt" 2>/dev/null | grep -o ' ExitCode=[0-9]*:[0-9]*' | cut -d= -f2)
[ "$jc" = "7:0" ] && ok "jobcomp log: ExitCode=$jc" || bad "jobcomp ExitCode='$jc', expected 7:0"

# srun propagates a task's exit code too
timeout 60 srun -N 2 -n 2 sh -c 'exit 3'
rc=$?
[ $rc -eq 3 ] && ok "srun returns task exit code (3)" || bad "srun rc=$rc, expected 3"

echo "$PASS passed, $FAIL failed"
[ $FAIL -eq 0 ]

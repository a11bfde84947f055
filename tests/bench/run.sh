#!/usr/bin/env bash
# The benchmark suite in one command: dtask (W1-W11, and FP: what each fast path is worth) and
# Dask distributed (W1-W6, default config and worker-saturation=inf) on this machine, one after
# the other, merged into one table with the dtask/Dask ratios and the target checks. See
# docs/performance.md.
#
#   tests/bench/run.sh [--small] [--workloads W1,...,W11,FP] [--build-dir DIR] [--no-build]
#                      [--out DIR] [--no-dask] [--wait-idle SECONDS] [--fast-paths SPEC]
#
# --small      small sizes (CI: the whole run takes under ~3 minutes on 2 cores)
# --no-build   do not run ninja (meson's `benchmark` entry has built everything already)
# --out DIR    where the JSON files and the table go (default: BUILD/bench-results[-small])
# --no-dask    dtask only
# --wait-idle  wait up to this long for the 1-minute load average to fall below 0.5 first
# --fast-paths the latency shortcuts for every dtask case: all, none, or e.g.
#              -early_start,-run_on_loop (default: DTASK_FAST_PATHS, else all). FP runs its own
#              series (all, none, each one off) whatever this says.
#
# Every step runs under `timeout`. Exit status: 0 when every record is ok (a target that is
# missed is reported, not a failure: targets are read from the figures, not enforced here).
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="$root/build"
small=0
do_build=1
do_dask=1
out=""
workloads="W1,W2,W3,W4,W5,W6,W7,W8,W9,W10,W11,FP"
fast_paths=()
wait_idle=0
py=/usr/bin/python3

while (($#)); do
  case "$1" in
    --small) small=1 ;;
    --no-build) do_build=0 ;;
    --no-dask) do_dask=0 ;;
    --build-dir) build="$(cd "$2" && pwd)"; shift ;;
    --out) out="$2"; shift ;;
    --workloads) workloads="$2"; shift ;;
    --wait-idle) wait_idle="$2"; shift ;;
    --fast-paths) fast_paths=("--fast-paths=$2"); shift ;;
    --fast-paths=*) fast_paths=("$1") ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$out" ]; then
  out="$build/bench-results"
  ((small)) && out="$build/bench-results-small"
fi
mkdir -p "$out"
rm -f "$out"/dtask_*.json "$out"/dask.json "$out"/bench.json "$out"/table.md "$out"/*.log

bench="$build/tests/bench/dtask_bench"
if ((do_build)); then
  if [ ! -f "$build/build.ninja" ]; then
    timeout 600 meson setup "$build" "$root" || { echo "run.sh: meson setup failed"; exit 1; }
  fi
  # Only what the bench needs, so an unrelated target that does not build cannot stop it.
  targets=(tests/bench/dtask_bench tests/bench/libbench_tasks.so src/cli/dtask-scheduler src/cli/dtask-worker)
  timeout 1800 ninja -C "$build" "${targets[@]}" || { echo "run.sh: build failed"; exit 1; }
  # Optional: W7 is skipped without them.
  timeout 1800 ninja -C "$build" src/cli/dtask-run tests/bench/mpi_hello >/dev/null 2>&1 || true
fi
[ -x "$bench" ] || { echo "run.sh: $bench is missing (build first)"; exit 1; }

if ((wait_idle > 0)); then
  end=$((SECONDS + wait_idle))
  while ((SECONDS < end)); do
    load=$(cut -d' ' -f1 /proc/loadavg)
    awk -v l="$load" 'BEGIN { exit !(l < 0.5) }' && break
    echo "run.sh: load average $load, waiting for the machine to be idle..."
    sleep 15
  done
fi

small_flag=()
((small)) && small_flag=(--small)
# Per-workload bounds (seconds). The full run's W2 (1M tasks twice) and W9 (10M tasks) are long.
limit() {
  if ((small)); then echo 120; return; fi
  case "$1" in
    W2) echo 1800 ;;
    W9) echo 3600 ;;
    *) echo 900 ;;
  esac
}

status=0
started=$(date -u +%Y-%m-%dT%H:%M:%SZ)
t0=$SECONDS
echo "=== dtask ($workloads$( ((small)) && echo ', small sizes'))"
IFS=',' read -r -a wl <<<"$workloads"
for w in "${wl[@]}"; do
  w="${w^^}"
  lim=$(limit "$w")
  # The case timeout inside is a little shorter than the outer bound, so a stuck case is
  # reported as a record (ok=false) instead of being lost with the process.
  timeout -k 10 "$lim" "$bench" --workloads "$w" --workers 2 "${small_flag[@]}" "${fast_paths[@]}" \
    --case-timeout $((lim - 30)) --json "$out/dtask_$w.json"
  rc=$?
  if ((rc != 0)); then
    echo "run.sh: dtask_bench $w exited with status $rc"
    status=1
  fi
done
dtask_s=$((SECONDS - t0))

dask_s=0
if ((do_dask)); then
  dask_wl=""
  for w in "${wl[@]}"; do
    case "${w^^}" in W1|W2|W3|W4|W5|W6) dask_wl="${dask_wl:+$dask_wl,}${w^^}" ;; esac
  done
  if [ -n "$dask_wl" ]; then
    if "$py" -c 'import distributed' 2>/dev/null; then
      echo "=== Dask distributed ($dask_wl; configs default and worker-saturation=inf)"
      t1=$SECONDS
      # Per case 600 s (Dask's default config needs more than 300 s for some 100k cases);
      # the whole Dask part is bounded too.
      dask_total=$((small ? 600 : 14400))
      timeout -k 30 "$dask_total" "$py" "$here/dask_bench.py" --workers 2 --config default,fast \
        --workloads "$dask_wl" "${small_flag[@]}" --timeout 600 --json "$out/dask.json" \
        2>"$out/dask_stderr.log"
      rc=$?
      if ((rc != 0)); then
        echo "run.sh: dask_bench.py exited with status $rc (see $out/dask_stderr.log)"
        status=1
      fi
      dask_s=$((SECONDS - t1))
    else
      echo "run.sh: $py cannot import distributed (apt-get install python3-distributed); Dask skipped"
    fi
  fi
fi

echo "=== merged (dtask ${dtask_s}s, Dask ${dask_s}s)"
timeout 120 "$py" "$here/merge.py" --dir "$out" --small "$small" --started "$started" \
  --dtask-seconds "$dtask_s" --dask-seconds "$dask_s" || status=1
echo "results: $out/bench.json, $out/table.md"
exit $status

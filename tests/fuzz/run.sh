#!/usr/bin/env bash
# Builds the libFuzzer targets with clang in build-fuzz/ (apart from the gcc build), then by default
# replays the seed corpus under ASan+UBSan and fuzzes each target for a bounded time.
#   tests/fuzz/run.sh [--seconds N] [--replay-only] [--corpus] [--target fuzz_wire|fuzz_codec]
#   --corpus   regenerates tests/fuzz/corpus/ with make_corpus (the valid and hostile seeds)
# Crashes found while fuzzing are written to build-fuzz/crashes/<target>/; copy each one into
# tests/fuzz/corpus/<target>/ (named for what it is) once understood, so the replay keeps it.
# Exits non-zero if any replay or fuzzing run fails.
set -uo pipefail
cd "$(dirname "$0")/../.."
root="$PWD"
seconds=60
replay_only=0
regen=0
targets=(fuzz_wire fuzz_codec)
while (($#)); do
  case "$1" in
    --seconds) seconds="$2"; shift ;;
    --replay-only) replay_only=1 ;;
    --corpus) regen=1 ;;
    --target) targets=("$2"); shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

bdir="$root/build-fuzz"
if [ ! -f "$bdir/build.ninja" ]; then
  CXX=clang++ CXX_LD= meson setup "$bdir" "$root/tests/fuzz" >/dev/null || { echo "cannot configure $bdir"; exit 1; }
fi
ninja -C "$bdir" -j2 >/dev/null || { ninja -C "$bdir" -j1 | tail -30; echo "fuzz build failed"; exit 1; }

corpus="$root/tests/fuzz/corpus"
if ((regen)); then "$bdir/make_corpus" "$corpus" || exit 1; fi

# ASan: a deep recursion is a stack overflow to report, not a hang; leaks are not this test's subject.
export ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
status=0
for t in "${targets[@]}"; do
  name="${t#fuzz_}"
  seeds="$corpus/$name"
  # Replay every seed one by one so that one crashing input does not hide the others.
  echo "--- $t: replaying $(ls "$seeds" | wc -l) seeds"
  bad=0
  for f in "$seeds"/*; do
    if ! "$bdir/$t" -rss_limit_mb=2048 -runs=1 "$f" >"$bdir/$t.replay.log" 2>&1; then
      echo "    CRASH: $(basename "$f") ($(grep -m1 -o 'ERROR: [A-Za-z]*: [a-z-]*\|SUMMARY: .*' "$bdir/$t.replay.log" | head -1))"
      bad=1
    fi
  done
  ((bad)) && status=1
  ((replay_only)) && continue
  # Fuzz from the seeds, without the ones known to crash (they would stop the run at once);
  # new inputs go to a scratch corpus, crashes to build-fuzz/crashes/<target>/.
  work="$bdir/work/$name"
  crashes="$bdir/crashes/$name"
  mkdir -p "$work" "$crashes"
  for f in "$seeds"/*; do
    "$bdir/$t" -runs=1 "$f" >/dev/null 2>&1 && cp "$f" "$work/"
  done
  echo "--- $t: fuzzing for $seconds s"
  "$bdir/$t" "$work" -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
    -artifact_prefix="$crashes/" -print_final_stats=1 >"$bdir/$t.fuzz.log" 2>&1
  rc=$?
  grep -E '^stat::number_of_executed_units|^stat::new_units_added' "$bdir/$t.fuzz.log" | sed 's/^/    /'
  if ((rc != 0)); then
    echo "    FOUND A CRASH (log: $bdir/$t.fuzz.log; input: $(ls -t "$crashes" | head -1))"
    grep -m3 -E 'ERROR|SUMMARY' "$bdir/$t.fuzz.log" | sed 's/^/    /'
    status=1
  fi
done
exit $status

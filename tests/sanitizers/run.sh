#!/usr/bin/env bash
# The unit and LocalCluster suites under a sanitizer, in their own build dir (CI steps in tests/run.sh).
# Usage: tests/sanitizers/run.sh asan|tsan [-j N] [--suite unit|integration]...
#   asan: AddressSanitizer + UndefinedBehaviorSanitizer (+ LeakSanitizer), build-asan/
#   tsan: ThreadSanitizer, build-tsan/ (libzmq's own threads: tests/sanitizers/tsan.supp)
# Only what the two suites run is built (test executables, plugins, dtask-worker/-scheduler/-cluster), not
# the bench or the MPI runner. Every process (the tests and the workers they spawn) writes its
# reports to $build/sanitizer-logs/; a report anywhere fails the step, even one from a worker
# whose exit code no test looks at. Ends with the reports, if any, and a one-line verdict.
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
kind="${1:-}"
shift || true
jobs=2
suites=()
while [ $# -gt 0 ]; do
  case "$1" in
    -j) jobs="$2"; shift 2 ;;
    --suite) suites+=("$2"); shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[ ${#suites[@]} -gt 0 ] || suites=(unit integration)

case "$kind" in
  asan) build="$root/build-asan"; sanitize="address,undefined" ;;
  tsan) build="$root/build-tsan"; sanitize="thread" ;;
  *) echo "usage: $0 asan|tsan [-j N] [--suite NAME]..." >&2; exit 2 ;;
esac

# -O0 -g: a third of -O1's compile time under the sanitizers (the builds dominate this step on
# 2 cores), readable stacks, line numbers in the reports.
if [ ! -f "$build/build.ninja" ]; then
  mkdir -p "$build"
  meson setup "$build" -Dbuildtype=debug -Db_sanitize="$sanitize" \
    -Db_lundef=false -Dmpi=disabled >"$build/setup.log" 2>&1 || { cat "$build/setup.log"; exit 1; }
fi

logs="$build/sanitizer-logs"
rm -rf "$logs"
mkdir -p "$logs"
# halt_on_error: the first report ends the process (UBSan would otherwise print and go on);
# log_path: one file per process, so a worker's report is seen too.
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=0:detect_leaks=1:log_path=$logs/asan"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$logs/ubsan"
export TSAN_OPTIONS="halt_on_error=1:exitcode=66:second_deadlock_stack=1:log_path=$logs/tsan:suppressions=$root/tests/sanitizers/tsan.supp"

# Suite by suite: build what it needs (read from meson's target list: its test executables, the
# programs its shell-driven tests run from tests/progress and tests/dashboard, the plugins,
# dtask-worker, dtask-scheduler and dtask-cluster), then run it.
rc=0
for suite in "${suites[@]}"; do
  mapfile -t targets < <(meson introspect "$build" --targets | python3 -c '
import json, sys, os
root, suite = sys.argv[1], sys.argv[2]
want = ("tests/" + suite + "/", "tests/libtest_tasks", "tests/libnot_a_plugin", "tests/libbad_version",
        "src/cli/dtask-worker", "src/cli/dtask-scheduler", "src/cli/dtask-cluster")
if suite == "integration":
    want += ("tests/progress/", "tests/dashboard/")
for t in json.load(sys.stdin):
    for f in t["filename"]:
        rel = os.path.relpath(f, root)
        if rel.startswith(want):
            print(rel)
' "$build" "$suite")
  t0=$SECONDS
  ninja -C "$build" -j "$jobs" "${targets[@]}" >"$build/ninja.log" 2>&1 || { tail -40 "$build/ninja.log"; exit 1; }
  echo "$kind: built the $suite suite's targets in $((SECONDS - t0)) s"
  t0=$SECONDS
  meson test -C "$build" --no-rebuild --print-errorlogs --suite "$suite" \
    --timeout-multiplier "${DTASK_SANITIZER_TIMEOUT_MULTIPLIER:-3}" || rc=1
  echo "$kind: ran the $suite suite in $((SECONDS - t0)) s"
done
reports=$(find "$logs" -type f | wc -l)
if [ "$reports" -gt 0 ]; then
  for f in "$logs"/*; do
    echo "----- $f"
    head -80 "$f"
  done
  echo "$kind: $reports sanitizer report(s)"
  exit 1
fi
echo "$kind: no sanitizer report"
exit $rc

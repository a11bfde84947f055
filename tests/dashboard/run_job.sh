#!/bin/bash
# Headless Chromium on the dashboard of a real job (dashboard_job: a LocalCluster busy with slow
# tasks): both workers listed, progress advancing between two loads, no page errors, a screenshot
# kept (OUT_DIR/dashboard-job.png), 403 without the token; then the job's report (written at
# close) loads without errors and names its tasks with the right counts.
# Usage: run_job.sh DASHBOARD_JOB OUT_DIR. Exit 77 (skip) only when chromium is not installed.
set -u  # no pipefail: grep -q ends pipelines early on purpose
job=$1 out=$2
here=$(cd "$(dirname "$0")" && pwd)
source "$here/page_check.sh"
have_chromium || { echo "chromium is not installed: skipped"; exit 77; }
mkdir -p "$out"
work=$(mktemp -d)
export PAGE_CHECK_LOG="$out/chromium-job.log"
: >"$PAGE_CHECK_LOG"
fail() { echo "FAIL: $*"; exit 1; }

"$job" "$work/link" "$work/stop" "$work/report.html" >"$work/job.out" 2>"$work/job.err" &
pid=$!
trap 'touch "$work/stop"; kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
trap 'exit 1' INT TERM
for _ in $(seq 300); do [ -s "$work/link" ] && break; kill -0 $pid 2>/dev/null || break; sleep 0.1; done
[ -s "$work/link" ] || fail "the job wrote no link: $(cat "$work/job.err")"
link=$(cat "$work/link")
echo "link: $link"

why=$(check_live_page "$link" "$out/dom-job" 0 1) || fail "$why"
echo "$why"
screenshot "$link" "$out/dashboard-job.png" || fail "no screenshot"
echo "screenshot: $out/dashboard-job.png"
base=${link%%\?*}
code=$(curl -s -o /dev/null -w '%{http_code}' "$base")
[ "$code" = 403 ] || fail "without the token: HTTP $code, expected 403"

touch "$work/stop"
wait $pid
rc=$?
[ $rc -eq 0 ] || fail "the job exited $rc: $(cat "$work/job.err")"
grep -qx "sum 180300" "$work/job.out" || fail "wrong results: $(cat "$work/job.out")"
[ -s "$work/report.html" ] || fail "no report written"
cp "$work/report.html" "$out/report-job.html"
rdom=$(dump_dom "file://$work/report.html") || fail "chromium could not load the report"
<<<"$rdom" grep -q 'id="rendered"' || fail "the report did not render"
<<<"$rdom" page_errors_empty || fail "report page errors: $(<<<"$rdom" grep -o '<ul id="page-errors">.*</ul>')"
row() { grep -o "<tr class=\"by-name\" data-name=\"$1\"[^>]*>"; }
<<<"$rdom" row slow_inc | grep -q 'data-done="600"' || fail "report: slow_inc row: $(<<<"$rdom" row slow_inc)"
<<<"$rdom" row fail_if_negative | grep -q 'data-erred="1"' || fail "report: fail_if_negative row: $(<<<"$rdom" row fail_if_negative)"
screenshot "file://$work/report.html" "$out/report-job.png" || fail "no screenshot of the report"
echo "ok"

#!/bin/bash
# Headless Chromium check of a sample job report (fake_server report): #rendered present, no page
# errors, the by-name rows as in the data. Usage: run_report.sh FAKE_SERVER OUT_DIR (77: no chromium).
set -u  # no pipefail: grep -q ends pipelines early on purpose
fake=$1 out=$2
here=$(cd "$(dirname "$0")" && pwd)
source "$here/page_check.sh"
have_chromium || { echo "chromium is not installed: skipped"; exit 77; }
mkdir -p "$out"
export PAGE_CHECK_LOG="$out/chromium-report.log"
: >"$PAGE_CHECK_LOG"
fail() { echo "FAIL: $*"; exit 1; }

report="$out/report-sample.html"
"$fake" report "$report" || fail "fake_server could not write the report"
dom=$(dump_dom "file://$report" 2000) || fail "chromium could not load $report"
printf '%s\n' "$dom" >"$out/dom-report.html"
<<<"$dom" grep -q 'id="rendered"' || fail "#rendered missing: the report's script did not finish"
<<<"$dom" page_errors_empty || fail "page errors: $(<<<"$dom" grep -o '<ul id="page-errors">.*</ul>')"
rows=$(<<<"$dom" grep -o '<tr class="by-name"[^>]*>' | sed 's/.*data-name="\([^"]*\)" data-done="\([0-9]*\)" data-erred="\([0-9]*\)".*/\1:\2:\3/' | tr '\n' ' ')
[ "$rows" = "load:200:0 inc:300:0 fail:0:5 " ] || fail "by-name rows: '$rows'"
<<<"$dom" grep -q '<img src="x"' && fail "an error message became markup"
screenshot "file://$report" "$out/report-sample.png" || fail "no screenshot"
echo "screenshot: $out/report-sample.png"
# A report with nothing in it (every field missing) still renders without errors.
"$fake" report-sparse "$out/report-sparse.html" || fail "fake_server could not write the sparse report"
dom=$(dump_dom "file://$out/report-sparse.html" 2000) || fail "chromium could not load the sparse report"
<<<"$dom" grep -q 'id="rendered"' || fail "sparse report: #rendered missing"
<<<"$dom" page_errors_empty || fail "sparse report: page errors: $(<<<"$dom" grep -o '<ul id="page-errors">.*</ul>')"
echo "ok"

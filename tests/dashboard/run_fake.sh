#!/bin/bash
# Headless Chromium check of the live page served by fake_server: workers listed, progress advancing
# between two loads, no page errors, a screenshot kept (BUILD/tests/dashboard/dashboard-fake.png), 403 without token.
# Usage: run_fake.sh FAKE_SERVER OUT_DIR. Exit 77 (skip) only when chromium is not installed.
set -u  # no pipefail: grep -q ends pipelines early on purpose
fake=$1 out=$2
here=$(cd "$(dirname "$0")" && pwd)
source "$here/page_check.sh"
have_chromium || { echo "chromium is not installed: skipped"; exit 77; }
mkdir -p "$out"
export PAGE_CHECK_LOG="$out/chromium-fake.log"
: >"$PAGE_CHECK_LOG"
fail() { echo "FAIL: $*"; exit 1; }

"$fake" serve --seconds 300 >"$out/fake.out" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
trap 'exit 1' INT TERM
link=$(wait_for_link "$out/fake.out" 20 $pid) || fail "fake_server printed no link: $(cat "$out/fake.out")"
echo "link: $link"

why=$(check_live_page "$link" "$out/dom-fake" fake-0 fake-1 fake-2) || fail "$why"
echo "$why"
dom2=$(cat "$out/dom-fake-2.html")
# Live without reload: within one load the page drew several snapshots (it polls every 400 ms).
renders=$(<<<"$dom2" attr_values data-renders '<span id="updated"')
echo "snapshots drawn in one load: $renders"
[ "${renders:-0}" -ge 2 ] || fail "the page drew ${renders:-0} snapshots in one load, expected it to keep polling"
rows=$(<<<"$dom2" attr_values data-name '<tr class="progress"' | tr '\n' ' ')
[ "$rows" = "load inc fail " ] || fail "progress rows: '$rows'"
# The hostile error message is shown as text, never parsed as markup.
<<<"$dom2" grep -q '&lt;/script&gt;&lt;script&gt;alert(1)' || fail "error message not shown as text"
<<<"$dom2" grep -q '<img src="x"' && fail "an error message became markup"

screenshot "$link" "$out/dashboard-fake.png" || fail "no screenshot"
echo "screenshot: $out/dashboard-fake.png"

# Snapshots with most fields missing (a scheduler with no job yet) draw without errors.
"$fake" serve-sparse --seconds 120 >"$out/fake-sparse.out" 2>&1 &
sparse_pid=$!
trap 'kill $pid $sparse_pid 2>/dev/null; wait $pid $sparse_pid 2>/dev/null' EXIT
sparse_link=$(wait_for_link "$out/fake-sparse.out" 20 $sparse_pid) || fail "fake_server serve-sparse printed no link"
dom3=$(dump_dom "$sparse_link") || fail "chromium could not load $sparse_link"
<<<"$dom3" page_errors_empty || fail "sparse snapshots: page errors: $(<<<"$dom3" grep -o '<ul id="page-errors">.*</ul>')"
<<<"$dom3" grep -q 'id="status" class="status live"' || fail "sparse snapshots: #status is not live"

base=${link%%\?*}
code=$(curl -s -o /dev/null -w '%{http_code}' "$base")
[ "$code" = 403 ] || fail "without the token: HTTP $code, expected 403"
code=$(curl -s -o /dev/null -w '%{http_code}' "$base?token=0123456789abcdef0123456789abcdef")
[ "$code" = 403 ] || fail "with a wrong token: HTTP $code, expected 403"
echo "ok"

# Headless Chromium helpers for the dashboard checks (source this file): dump a page's DOM after
# its scripts ran, take a screenshot, pull attribute values out of the dump.
# Each call uses a fresh profile directory so checks running at once do not share one.

DASHBOARD_CHROMIUM=${DASHBOARD_CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}

have_chromium() { [ -n "$DASHBOARD_CHROMIUM" ] && [ -x "$DASHBOARD_CHROMIUM" ]; }

_chromium() {
  local profile rc
  profile=$(mktemp -d "${TMPDIR:-/tmp}/dtask-chromium.XXXXXX")
  timeout 90 "$DASHBOARD_CHROMIUM" --headless --no-sandbox --disable-gpu --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" "$@" 2>>"${PAGE_CHECK_LOG:-/dev/null}"
  rc=$?
  rm -rf "$profile"
  return $rc
}

# dump_dom URL [BUDGET_MS]: the DOM after BUDGET_MS (default 3000) of virtual time, on stdout.
dump_dom() { _chromium --virtual-time-budget="${2:-3000}" --dump-dom "$1"; }

# screenshot URL FILE.png [BUDGET_MS]: a 1400x1000 screenshot after the page ran.
screenshot() {
  _chromium --virtual-time-budget="${3:-3000}" --hide-scrollbars --window-size=1400,1000 \
    --screenshot="$2" "$1" >/dev/null
  [ -s "$2" ]
}

# attr_values ATTR SELECTOR_PREFIX < DOM: the values of ATTR on elements whose opening tag starts
# with SELECTOR_PREFIX, e.g. attr_values data-name '<tr class="worker"'.
attr_values() {
  grep -o "$2[^>]*" | grep -o " $1=\"[^\"]*\"" | sed -e "s/^ $1=\"//" -e 's/"$//'
}

# page_errors_empty < DOM: succeeds when the page's #page-errors list has no entry.
page_errors_empty() { grep -q '<ul id="page-errors"></ul>'; }

# wait_for_link FILE [SECONDS] [PID]: the first dashboard link (http://...?token=HEX) written to FILE,
# on stdout, waiting up to SECONDS (default 20); fails if it never comes or process PID exits first.
wait_for_link() {
  local link tries=$(( ${2:-20} * 5 ))
  for _ in $(seq "$tries"); do
    link=$(grep -o 'http://[^ ]*/status?token=[0-9a-f]*' "$1" 2>/dev/null | head -n 1)
    [ -n "$link" ] && { echo "$link"; return 0; }
    [ -n "${3:-}" ] && ! kill -0 "$3" 2>/dev/null && return 1
    sleep 0.2
  done
  return 1
}

# check_live_page LINK DOM_PREFIX WORKER...: loads the live page twice, a second apart, keeps the
# DOMs as DOM_PREFIX-1.html and DOM_PREFIX-2.html, and succeeds when every WORKER is listed, the
# page has no errors and is live, and the tasks done rose between the loads; otherwise it prints
# what was wrong and fails.
check_live_page() {
  local link=$1 prefix=$2 w done1 done2
  shift 2
  dump_dom "$link" >"$prefix-1.html" || { echo "chromium could not load $link (see $PAGE_CHECK_LOG)"; return 1; }
  sleep 1
  dump_dom "$link" >"$prefix-2.html" || { echo "chromium could not load $link the second time"; return 1; }
  for w in "$@"; do
    attr_values data-name '<tr class="worker"' <"$prefix-2.html" | grep -qx "$w" || { echo "worker $w not listed"; return 1; }
  done
  page_errors_empty <"$prefix-2.html" || { echo "page errors: $(grep -o '<ul id="page-errors">.*</ul>' "$prefix-2.html")"; return 1; }
  grep -q 'id="status" class="status live"' "$prefix-2.html" || { echo "#status is not live"; return 1; }
  done1=$(attr_values data-done '<tr class="progress"' <"$prefix-1.html" | awk '{s += $1} END {print s + 0}')
  done2=$(attr_values data-done '<tr class="progress"' <"$prefix-2.html" | awk '{s += $1} END {print s + 0}')
  echo "tasks done: first load $done1, second load $done2"
  [ "$done2" -gt "$done1" ] || { echo "progress did not advance ($done1 then $done2)"; return 1; }
}

#!/usr/bin/env bash
# dtask::progress on a pseudo-terminal (util-linux `script`) and into a file: '\r' redraws there, plain lines here.
#   run.sh PATH/TO/progress_demo
set -euo pipefail
demo=${1:?usage: run.sh PATH/TO/progress_demo}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; for f in "$tmp"/*; do echo "--- $f" >&2; cat -A "$f" >&2 || true; done; exit 1; }
final='100% | 60/60 done | 1 erred'
line_re='^\[[# ]*\] +[0-9]+% \| [0-9]+/60 done \| [0-9]+ erred \| [0-9hms. ]+$'

# (a) A terminal: `script` runs the demo on a pty; the pty turns each '\n' into "\r\n", so a redraw
# is a '\r' followed by the bar's '['.
script -qfec "$(printf '%q' "$demo")" /dev/null < /dev/null > "$tmp/pty.out" 2> "$tmp/pty.err" || fail "demo on a pty exited $?"
redraws=$(grep -o $'\r\\[' "$tmp/pty.out" | wc -l)
[ "$redraws" -ge 2 ] || fail "expected '\\r' redraws of the bar on a pty, found $redraws"
last=$(tr '\r' '\n' < "$tmp/pty.out" | grep -v '^$' | tail -n 1)
[[ $last == *"$final"* ]] || fail "the pty's last line is not the final one: '$last'"
[[ $last =~ $line_re ]] || fail "the pty's last line is not a bar line: '$last'"

# (b) A file (a batch job's log): plain lines every 200 ms and a final one, no '\r', no escape.
"$demo" --interval-ms 200 > "$tmp/log.out" 2> "$tmp/log.err" || fail "demo into a file exited $?"
[ -s "$tmp/log.out" ] || fail "nothing written into the file"
if grep -q $'\r' "$tmp/log.out"; then fail "a '\\r' in the file"; fi
if grep -q $'\x1b' "$tmp/log.out"; then fail "an escape sequence in the file"; fi
while IFS= read -r l; do
  [[ $l =~ $line_re ]] || fail "not a progress line: '$l'"
done < "$tmp/log.out"
[[ $(tail -n 1 "$tmp/log.out") == *"$final"* ]] || fail "the file's last line is not the final one"
[ "$(grep -c -F "$final" "$tmp/log.out")" -ge 1 ] || fail "no final line in the file"

# (c) The compute option, into a file: the same final line, and compute() still throws the failure.
"$demo" --compute > "$tmp/compute.out" 2> "$tmp/compute.err" || fail "demo --compute exited $?"
if grep -q $'\r' "$tmp/compute.out"; then fail "a '\\r' in compute's file"; fi
[[ $(tail -n 1 "$tmp/compute.out") == *"$final"* ]] || fail "compute's last line is not the final one"
echo "progress: pty ($redraws redraws), file ($(wc -l < "$tmp/log.out") lines) and compute: ok"

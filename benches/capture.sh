#!/usr/bin/env bash
# Capture benchmark: median time per page with a warm browser session
# (`dpxdt update`, per-test times from --junit) and pages per minute with
# 1 and 2 jobs, against a bare `chromium --headless --screenshot` per page
# (and a bare `chromium-headless-shell --screenshot` when it is installed).
# dpxdt uses the headless shell when installed; DPXDT_CHROMIUM picks another.
#
# With taskset it also runs 1 job pinned to one core: 2 jobs on 2 cores
# against that shows how throughput grows with cores.
#
# BROWSER=firefox measures Firefox instead (every test with `browser:
# firefox`), against a bare `firefox-esr --headless --screenshot` per page.
#
# Usage: [BROWSER=firefox] benches/capture.sh [PAGES]   (default 60; needs python3, chromium)
# Build first: cargo build --release -p dpxdt-tools --bin dpxdt
set -euo pipefail
PAGES=${1:-60}
BROWSER=${BROWSER:-chromium}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DPXDT=${DPXDT:-$ROOT/target/release/dpxdt}
[ -x "$DPXDT" ] || DPXDT=$ROOT/target/debug/dpxdt
WORK=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT

# A simple page: a heading, a paragraph, a coloured box.
mkdir -p "$WORK/site"
for i in $(seq 1 "$PAGES"); do
  cat > "$WORK/site/p$i.html" <<HTML
<!doctype html><html><head><title>page $i</title></head><body style="font:16px sans-serif">
<h1>Page $i</h1><p>Lorem ipsum dolor sit amet, consectetur adipiscing elit.</p>
<div style="width:200px;height:80px;background:#369"></div></body></html>
HTML
done
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$WORK/site" && exec python3 -m http.server "$PORT" --bind 127.0.0.1 >/dev/null 2>&1) &
SERVER=$!
until curl -sf "http://127.0.0.1:$PORT/p1.html" >/dev/null; do sleep 0.05; done

make_suite() { # DIR N
  mkdir -p "$1"
  { echo "tests:"; for i in $(seq 1 "$2"); do
      echo "  - name: p$i"; echo "    url: http://127.0.0.1:$PORT/p$i.html"
      [ "$BROWSER" = chromium ] || echo "    config: {browser: $BROWSER}"; done; } > "$1/bench.yaml"
}
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.4f\n", (a[NR/2]+a[NR/2+1])/2}'; }
now() { date +%s.%N; }

# Pages per minute come from the difference between a short and a long run
# (browser start-up and shutdown cancel out); both follow a discarded
# warm-up run, so a cold page cache does not count.
SHORT=$(( PAGES / 3 > 0 ? PAGES / 3 : 1 ))
make_suite "$WORK/warm" 1
make_suite "$WORK/short" "$SHORT"
make_suite "$WORK/all" "$PAGES"
"$DPXDT" update "$WORK/warm" --jobs 1 >/dev/null 2>&1
wall() { # DIR JOBS [--pin | extra dpxdt args]
  local t0 t1 pin=()
  if [ "${3:-}" = "--pin" ]; then pin=(taskset -c 0); set -- "$1" "$2"; fi
  t0=$(now); "${pin[@]}" "$DPXDT" update "$1" --jobs "$2" "${@:3}" >/dev/null 2>&1; t1=$(now)
  echo "$t1 - $t0" | bc -l
}

if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
  W_SHORT=$(wall "$WORK/short" 1 --pin)
  W_ALL=$(wall "$WORK/all" 1 --pin)
  printf 'dpxdt jobs=1 pinned to 1 core: %.0f pages/min\n' "$(echo "($PAGES - $SHORT) * 60 / ($W_ALL - $W_SHORT)" | bc -l)"
fi

for JOBS in 1 2; do
  W_SHORT=$(wall "$WORK/short" "$JOBS")
  W_ALL=$(wall "$WORK/all" "$JOBS" --junit "$WORK/junit$JOBS.xml")
  MED=$(grep -o '<testcase name="p[0-9]*" classname="bench" time="[0-9.]*"' "$WORK/junit$JOBS.xml" \
        | sed 's/.*time="//; s/"//' | median)
  PPM=$(echo "($PAGES - $SHORT) * 60 / ($W_ALL - $W_SHORT)" | bc -l)
  printf 'dpxdt jobs=%d: median %.0f ms per page (warm session), %.0f pages/min (wall %.2f s for %d pages, %.2f s for %d)\n' \
    "$JOBS" "$(echo "$MED * 1000" | bc -l)" "$PPM" "$W_ALL" "$PAGES" "$W_SHORT" "$SHORT"
done

# The bare browser: one process per page, as a script without a warm
# session would.
N=$(( PAGES < 10 ? PAGES : 10 ))
if [ "$BROWSER" = firefox ]; then
  FIREFOX=$(command -v firefox-esr || command -v firefox)
  for i in $(seq 1 "$N"); do
    mkdir -p "$WORK/ffprof$i"
    t0=$(now)
    "$FIREFOX" --headless -no-remote -profile "$WORK/ffprof$i" --window-size=1280,800 \
      --screenshot "$WORK/bare$i.png" "http://127.0.0.1:$PORT/p$i.html" >/dev/null 2>&1
    t1=$(now)
    echo "$t1 - $t0" | bc -l
  done | median | awk '{printf "bare %s --headless --screenshot: median %.0f ms per page (%d runs)\n", "'"$(basename "$FIREFOX")"'", $1*1000, '"$N"'}'
  exit 0
fi
for BARE in /usr/bin/chromium /usr/bin/chromium-headless-shell; do
  [ -x "$BARE" ] || continue
  for i in $(seq 1 "$N"); do
    t0=$(now)
    "$BARE" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run \
      --hide-scrollbars --window-size=1280,800 --user-data-dir="$WORK/prof-$(basename "$BARE")-$i" \
      --screenshot="$WORK/bare$i.png" "http://127.0.0.1:$PORT/p$i.html" >/dev/null 2>&1
    t1=$(now)
    echo "$t1 - $t0" | bc -l
  done | median | awk '{printf "bare %s --headless --screenshot: median %.0f ms per page (%d runs)\n", "'"$(basename "$BARE")"'", $1*1000, '"$N"'}'
done

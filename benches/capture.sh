#!/usr/bin/env bash
# Capture benchmark: median time per page with a warm browser session
# (`dpxdt update`, per-test times from --junit) and pages per minute with
# 1 and 2 jobs, against a bare `chromium --headless --screenshot` per page.
#
# Usage: benches/capture.sh [PAGES]   (default 30; needs python3, chromium)
# Build first: cargo build --release -p dpxdt-tools --bin dpxdt
set -euo pipefail
PAGES=${1:-30}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DPXDT=${DPXDT:-$ROOT/target/release/dpxdt}
[ -x "$DPXDT" ] || DPXDT=$ROOT/target/debug/dpxdt
CHROMIUM=${DPXDT_CHROMIUM:-/usr/bin/chromium}
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
      echo "  - name: p$i"; echo "    url: http://127.0.0.1:$PORT/p$i.html"; done; } > "$1/bench.yaml"
}
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.4f\n", (a[NR/2]+a[NR/2+1])/2}'; }
now() { date +%s.%N; }

make_suite "$WORK/one" 1
make_suite "$WORK/all" "$PAGES"

t0=$(now); "$DPXDT" update "$WORK/one" --jobs 1 >/dev/null 2>&1; t1=$(now)
STARTUP=$(echo "$t1 - $t0" | bc -l)

for JOBS in 1 2; do
  t0=$(now)
  "$DPXDT" update "$WORK/all" --jobs "$JOBS" --junit "$WORK/junit$JOBS.xml" >/dev/null 2>&1
  t1=$(now)
  WALL=$(echo "$t1 - $t0" | bc -l)
  MED=$(grep -o '<testcase name="p[0-9]*" classname="bench" time="[0-9.]*"' "$WORK/junit$JOBS.xml" \
        | sed 's/.*time="//; s/"//' | median)
  # Pages per minute once the browser is up: the run minus a 1-page run.
  PPM=$(echo "($PAGES - 1) * 60 / ($WALL - $STARTUP)" | bc -l)
  printf 'dpxdt jobs=%d: median %.0f ms per page (warm session), %.0f pages/min, wall %.2f s for %d pages (1-page run %.2f s)\n' \
    "$JOBS" "$(echo "$MED * 1000" | bc -l)" "$PPM" "$WALL" "$PAGES" "$STARTUP"
done

# Bare Chromium: one process per page, as a script without a warm session would.
N=$(( PAGES < 10 ? PAGES : 10 ))
for i in $(seq 1 "$N"); do
  t0=$(now)
  "$CHROMIUM" --headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run \
    --hide-scrollbars --window-size=1280,800 --user-data-dir="$WORK/prof$i" \
    --screenshot="$WORK/bare$i.png" "http://127.0.0.1:$PORT/p$i.html" >/dev/null 2>&1
  t1=$(now)
  echo "$t1 - $t0" | bc -l
done | median | awk '{printf "bare chromium --headless --screenshot: median %.0f ms per page (%d runs)\n", $1*1000, '"$N"'}'

#!/usr/bin/env bash
# End-to-end site_diff benchmark: crawl a 200-page site served on loopback,
# capture every page through the server's workers and wait until the release
# reaches `reviewing` (`site_diff --wait`), with 1 and with 2 capture workers
# (the server's in-process worker, plus one `dpxdt-server worker` process).
# First, the floor: `dpxdt update` of the same pages in local mode (its
# default jobs), browser start included as it is in the server runs.
#
# Usage: benches/site_diff.sh [PAGES] [ROUNDS]   (default 200 pages, 1
# round; needs python3, chromium). SERVER_ARGS adds arguments to
# dpxdt-server (e.g. "--capture-sessions 1"); RENDER=1 lets site_diff
# render pages while crawling.
# Builds the release binaries it needs. Prints one line per run.
set -euo pipefail
PAGES=${1:-200}
ROUNDS=${2:-1}
# The crawl reads each page's HTML only (site_diff's default renders every
# page in Chromium to find script-made links too, which is a second capture
# of each page: RENDER=1 measures that).
CRAWL=(--no-render)
[ "${RENDER:-0}" = 1 ] && CRAWL=()
# Captured pages may reach this machine (the site is on loopback).
read -r -a EXTRA <<< "--capture-allow 127.0.0.1 ${SERVER_ARGS:-}"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
cargo build --release --quiet -p dpxdt-server -p dpxdt-tools --bin dpxdt-server --bin site_diff --bin dpxdt
BIN=$ROOT/target/release
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The site: an index linking every page, each page linking home and onwards
# (so the crawler meets cycles), with a heading, some text and a coloured box.
mkdir -p "$WORK/site"
{
  echo '<!doctype html><html><body style="font:16px sans-serif"><h1>Bench site</h1><ul>'
  for i in $(seq 1 $((PAGES - 1))); do echo "<li><a href=\"p$i.html\">page $i</a></li>"; done
  echo '</ul></body></html>'
} > "$WORK/site/index.html"
for i in $(seq 1 $((PAGES - 1))); do
  next=$(( i % (PAGES - 1) + 1 ))
  cat > "$WORK/site/p$i.html" <<HTML
<!doctype html><html><body style="font:16px sans-serif"><h1>Page $i</h1>
<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.</p>
<div style="width:300px;height:80px;background:hsl($(( i * 7 % 360 )),60%,60%)"></div>
<a href="index.html">home</a> <a href="p$next.html">next</a></body></html>
HTML
done
SITE_PORT=$(free_port)
(cd "$WORK/site" && exec python3 -m http.server "$SITE_PORT" --bind 127.0.0.1 >/dev/null 2>&1) &
PIDS+=($!)
until curl -sf "http://127.0.0.1:$SITE_PORT/index.html" >/dev/null; do sleep 0.05; done

# The floor: local mode, the same pages.
mkdir -p "$WORK/local"
{ echo "tests:"; echo "  - name: index"; echo "    url: http://127.0.0.1:$SITE_PORT/index.html"
  for i in $(seq 1 $((PAGES - 1))); do
    echo "  - name: p$i"; echo "    url: http://127.0.0.1:$SITE_PORT/p$i.html"; done; } > "$WORK/local/site.yaml"
pages_per_min() { echo "$1 * 60 / $2" | bc -l; }
for ROUND in $(seq 1 "$ROUNDS"); do
rm -f "$WORK/local/"*.png
t0=$(date +%s.%N)
status=0
"$BIN/dpxdt" update "$WORK/local" > "$WORK/local.txt" 2>&1 || status=$?
t1=$(date +%s.%N)
SECS=$(echo "$t1 - $t0" | bc -l)
printf 'local pages=%s seconds=%.1f pages/min=%.0f exit=%s\n' "$PAGES" "$SECS" "$(pages_per_min "$PAGES" "$SECS")" "$status"

for WORKERS in 1 2; do
  DATA=$WORK/data$WORKERS
  PORT=$(free_port)
  KEY="bench$WORKERS:$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  rm -rf "$DATA" "$WORK/worker"
  DPXDT_ADMIN_KEY=$KEY "$BIN/dpxdt-server" --listen "127.0.0.1:$PORT" --data-dir "$DATA" "${EXTRA[@]}" \
    > "$WORK/server$WORKERS.log" 2>&1 &
  PIDS+=($!)
  until curl -s "http://127.0.0.1:$PORT/api/release_status" >/dev/null; do sleep 0.1; done
  if [ "$WORKERS" = 2 ]; then
    "$BIN/dpxdt-server" --data-dir "$WORK/worker" "${EXTRA[@]}" worker \
      --server "http://127.0.0.1:$PORT/" --api-key "$KEY" > "$WORK/worker.log" 2>&1 &
    PIDS+=($!)
  fi
  eval "$("$BIN/dpxdt-server" --data-dir "$DATA" create-build bench | sed 's/^/export B_/')"
  t0=$(date +%s.%N)
  status=0
  DPXDT_CLIENT_ID=$B_api_key DPXDT_CLIENT_SECRET=$B_api_secret "$BIN/site_diff" \
    --release_server_prefix "http://127.0.0.1:$PORT/api" \
    --upload_build_id "$B_build_id" --upload_release_name bench --wait --poll_interval_ms 200 \
    ${CRAWL[@]+"${CRAWL[@]}"} \
    "http://127.0.0.1:$SITE_PORT/index.html" > "$WORK/out$WORKERS.txt" 2> "$WORK/err$WORKERS.txt" || status=$?
  t1=$(date +%s.%N)
  SECS=$(echo "$t1 - $t0" | bc -l)
  printf 'server workers=%s pages=%s seconds=%.1f pages/min=%.0f exit=%s\n' "$WORKERS" "$PAGES" "$SECS" "$(pages_per_min "$PAGES" "$SECS")" "$status"
  tail -1 "$WORK/out$WORKERS.txt" | grep -v '^$' || true
  [ "$status" = 0 ] || { echo "site_diff failed:" >&2; tail -5 "$WORK/err$WORKERS.txt" >&2; }
  # Stop this round's server and worker before the next round.
  for p in "${PIDS[@]:1}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  PIDS=("${PIDS[0]}")
done
done

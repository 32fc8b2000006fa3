#!/usr/bin/env bash
# Stability benchmark: captures the project's hostile page (random numbers,
# the time, a requestAnimationFrame canvas, CSS animations and transitions,
# an animated GIF, a playing video, same- and cross-origin iframes; see
# tests/tests/fixtures/hostile) N times with `dpxdt stability` and prints
# how many captures differed from the first (the false diffs), then the
# same with the real clock ("clock": "real") to show what the freeze holds.
#
# Usage: benches/stability.sh [N]   (default 100; needs python3, chromium)
# Build first: cargo build --release -p dpxdt-tools --bin dpxdt
set -euo pipefail
N=${1:-100}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DPXDT=${DPXDT:-$ROOT/target/release/dpxdt}
[ -x "$DPXDT" ] || DPXDT=$ROOT/target/debug/dpxdt
WORK=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$ROOT/tests/tests/fixtures/hostile" && exec python3 -m http.server "$PORT" --bind 127.0.0.1 >/dev/null 2>&1) &
SERVER=$!
until curl -sf "http://127.0.0.1:$PORT/index.html" >/dev/null; do sleep 0.05; done
URL="http://127.0.0.1:$PORT/index.html"

t0=$(date +%s.%N)
"$DPXDT" stability "$URL" --repeat "$N" 2>/dev/null | sed 's/^/frozen: /' || true
t1=$(date +%s.%N)
printf 'frozen: %d captures in %.1f s\n' "$N" "$(echo "$t1 - $t0" | bc -l)"

echo '{"clock": "real"}' > "$WORK/real.json"
"$DPXDT" stability "$URL" --repeat 10 --config "$WORK/real.json" 2>/dev/null | sed 's/^/real clock: /' || true

#!/usr/bin/env bash
# Modes benchmark: N pages captured in four modes each, as one test with
# `modes` per page against four separate tests per page with the same
# fields, by `dpxdt update` (wall time of the whole run, several runs
# alternated). Two sets of modes: media features only (light, dark,
# reduced motion, forced colours: one load serves all four) and mixed
# (light, dark, a phone, German in Berlin: the phone and German need
# loads of their own).
#
# Usage: benches/modes.sh [PAGES] [RUNS]   (default 15 pages, 5 runs)
# Build first: cargo build --release -p dpxdt-tools --bin dpxdt
set -euo pipefail
PAGES=${1:-15}
RUNS=${2:-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DPXDT=${DPXDT:-$ROOT/target/release/dpxdt}
[ -x "$DPXDT" ] || DPXDT=$ROOT/target/debug/dpxdt
WORK=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT

# A page styled by its media features, with a phone breakpoint.
mkdir -p "$WORK/site"
for i in $(seq 1 "$PAGES"); do
  cat > "$WORK/site/p$i.html" <<HTML
<!doctype html><html><head><title>page $i</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font: 16px sans-serif; background: #fff; color: #222; }
.box { width: 200px; height: 80px; background: #369; transition: width 1s; }
@media (prefers-color-scheme: dark) { body { background: #111; color: #eee; } }
@media (prefers-reduced-motion: reduce) { .box { transition: none; } }
@media (max-width: 600px) { .box { width: 100%; } }
</style></head><body><h1>Page $i</h1>
<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit.</p><div class="box"></div></body></html>
HTML
done
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$WORK/site" && exec python3 -m http.server "$PORT" --bind 127.0.0.1 >/dev/null 2>&1) &
SERVER=$!
until curl -sf "http://127.0.0.1:$PORT/p1.html" >/dev/null; do sleep 0.05; done

# suite DIR KIND SET: KIND is modes or separate; SET is media or mixed.
suite() {
  local names=(light dark b c) fields
  if [ "$3" = media ]; then
    names=(light dark reduced forced)
    fields=('' 'colorScheme: dark' 'reducedMotion: reduce' 'forcedColors: active')
  else
    names=(light dark phone de)
    fields=('' 'colorScheme: dark' 'device: "Pixel 7"' 'locale: de-DE, timezone: Europe/Berlin')
  fi
  mkdir -p "$1"
  { echo "tests:"
    for i in $(seq 1 "$PAGES"); do
      if [ "$2" = modes ]; then
        echo "  - name: p$i"; echo "    url: http://127.0.0.1:$PORT/p$i.html"; echo "    modes:"
        for k in 0 1 2 3; do echo "      - {name: ${names[$k]}${fields[$k]:+, ${fields[$k]}}}"; done
      else
        for k in 0 1 2 3; do
          echo "  - name: p$i-${names[$k]}"; echo "    url: http://127.0.0.1:$PORT/p$i.html"
          echo "    config: {${fields[$k]}}"
        done
      fi
    done; } > "$1/bench.yaml"
}
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.4f\n", (a[NR/2]+a[NR/2+1])/2}'; }
now() { date +%s.%N; }

for SET in media mixed; do
  suite "$WORK/$SET-modes" modes "$SET"
  suite "$WORK/$SET-separate" separate "$SET"
  "$DPXDT" update "$WORK/$SET-modes" >/dev/null 2>&1   # warm-up
  : > "$WORK/ratios"; : > "$WORK/a"; : > "$WORK/b"
  for r in $(seq 1 "$RUNS"); do
    t0=$(now); "$DPXDT" update "$WORK/$SET-modes" >/dev/null 2>&1; t1=$(now)
    "$DPXDT" update "$WORK/$SET-separate" >/dev/null 2>&1; t2=$(now)
    a=$(echo "$t1 - $t0" | bc -l); b=$(echo "$t2 - $t1" | bc -l)
    echo "$a" >> "$WORK/a"; echo "$b" >> "$WORK/b"; echo "$a / $b" | bc -l >> "$WORK/ratios"
  done
  # The modes' screenshots are the separate tests' (same fields, same pixels).
  same=0
  for f in "$WORK/$SET-separate"/*.png; do
    n=$(basename "$f" .png); m="${n%-*}@${n##*-}"
    cmp -s "$f" "$WORK/$SET-modes/$m.png" && same=$((same + 1))
  done
  printf '%s: %d pages x 4 modes: modes median %.2f s, separate tests median %.2f s, ratio (paired) median %.2f; %d of %d screenshots identical\n' \
    "$SET" "$PAGES" "$(median < "$WORK/a")" "$(median < "$WORK/b")" "$(median < "$WORK/ratios")" "$same" "$((PAGES * 4))"
done

#!/usr/bin/env bash
# Times whole-process `dpxdt diff` against its peers on the pairs that
# benches/make_pairs.sh renders, and checks dpxdt's numbers against them.
#
#   odiff       npm odiff-bin (its native binary, called directly, so node's
#               start-up is not charged to it)
#   pixelmatch  npm pixelmatch's CLI (node + pngjs), with includeAA=true so
#               that, like dpxdt's and odiff's defaults, it does not skip
#               anti-aliased pixels
#   compare     ImageMagick `compare -metric RMSE`
#
# Every tool gets the same two files and writes its diff image (threshold
# 0.1 where the tool has one). hyperfine runs each command with warm-up runs
# first and exports JSON; the table shows medians and the ratio to dpxdt
# (ratio > 1: the peer is slower).
#
# Then: peak memory (max RSS, /usr/bin/time -v) of dpxdt on the largest pair
# against the two decoded RGBA buffers (w*h*4*2), and dpxdt's distortion
# against `compare -metric RMSE` (the value in parentheses), tolerance 0.001.
#
# Usage: benches/compare.sh            (all pairs)
#        PAIRS="dashboard" RUNS=5 benches/compare.sh
# Environment: PAIRS (article dashboard long), ROUNDS (3), RUNS per round (5;
# the long pair uses LONG_RUNS, 2), WARMUP runs per round (1), OUT
# (benches/target-data/compare), REUSE=1 (keep the timings already in OUT and
# only redo the checks and the report).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
data="$here/target-data"
PAIRS="${PAIRS:-article dashboard long}"
ROUNDS="${ROUNDS:-3}"
RUNS="${RUNS:-5}"
LONG_RUNS="${LONG_RUNS:-2}"
WARMUP="${WARMUP:-1}"
OUT="${OUT:-$data/compare}"
tools="$data/tools"
mkdir -p "$OUT" "$tools"

say() { echo "compare: $*" >&2; }

# ---- peer tools ------------------------------------------------------------
apt_need=()
command -v hyperfine >/dev/null 2>&1 || apt_need+=(hyperfine)
[ -x /usr/bin/compare ] || apt_need+=(imagemagick)
command -v jq >/dev/null 2>&1 || apt_need+=(jq)
[ -x /usr/bin/time ] || apt_need+=(time)
command -v npm >/dev/null 2>&1 || apt_need+=(npm)
if [ ${#apt_need[@]} -gt 0 ]; then
    say "installing ${apt_need[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq >&2
    $sudo apt-get install -y -qq "${apt_need[@]}" >&2
fi
if [ ! -x "$tools/node_modules/.bin/pixelmatch" ] || [ ! -x "$tools/node_modules/.bin/odiff" ] ||
    [ ! -d "$tools/node_modules/pngjs" ]; then
    say "installing odiff-bin, pixelmatch and pngjs into $tools"
    [ -f "$tools/package.json" ] || echo '{"private": true}' >"$tools/package.json"
    (cd "$tools" && npm install --no-audit --no-fund --silent odiff-bin@4 pixelmatch@7 pngjs@7 >&2)
fi
odiff="$tools/node_modules/.bin/odiff"
native_odiff="$(ls "$tools"/node_modules/@odiff/*/odiff 2>/dev/null | head -n 1 || true)"
[ -n "$native_odiff" ] && [ -x "$native_odiff" ] && odiff="$native_odiff"
pixelmatch="$tools/node_modules/.bin/pixelmatch"
magick_compare=/usr/bin/compare

# The distribution's ImageMagick policy caps images at 16K pixels a side and
# 256 MiB of memory, which refuses the 4000x20000 pair or pushes it to a disk
# cache. A copy of the policy with those limits raised lets `compare` work on
# every pair in memory, as the other tools do.
policy_dir="$data/magick-policy"
mkdir -p "$policy_dir"
sys_policy="$(ls /etc/ImageMagick-*/policy.xml 2>/dev/null | head -n 1 || true)"
if [ -n "$sys_policy" ]; then
    sed -e 's/name="width" value="[^"]*"/name="width" value="64KP"/' \
        -e 's/name="height" value="[^"]*"/name="height" value="64KP"/' \
        -e 's/name="area" value="[^"]*"/name="area" value="4GP"/' \
        -e 's/name="memory" value="[^"]*"/name="memory" value="8GiB"/' \
        -e 's/name="map" value="[^"]*"/name="map" value="8GiB"/' \
        -e 's/name="disk" value="[^"]*"/name="disk" value="16GiB"/' \
        "$sys_policy" >"$policy_dir/policy.xml"
    export MAGICK_CONFIGURE_PATH="$policy_dir"
fi

# ---- dpxdt -----------------------------------------------------------------
say "building dpxdt (release)"
(cd "$root" && cargo build --release --quiet -p dpxdt-tools --bin dpxdt)
dpxdt="${CARGO_TARGET_DIR:-$root/target}/release/dpxdt"

# ---- pairs -----------------------------------------------------------------
pairs_dir="$data/pairs"
for name in $PAIRS; do
    [ -s "$pairs_dir/$name/same.png" ] || { bash "$here/make_pairs.sh"; break; }
done

# WIDTHxHEIGHT of a PNG, from its IHDR chunk (bytes 16..24, big-endian).
dims() { od -An -tu1 -j16 -N8 "$1" | awk '{ printf "%dx%d", (($1 * 256 + $2) * 256 + $3) * 256 + $4, (($5 * 256 + $6) * 256 + $7) * 256 + $8 }'; }

# ---- timing ----------------------------------------------------------------
# hyperfine runs one command's runs back to back. To spread the machine's
# load over all tools alike, the whole set is timed in ROUNDS rounds, one
# after the other, and the median is taken over the runs of all rounds.
if [ "${REUSE:-0}" != 1 ]; then
    rm -f "$OUT"/*.r*.json
    for round in $(seq 1 "$ROUNDS"); do
        for name in $PAIRS; do
            ref="$pairs_dir/$name/ref.png"
            runs="$RUNS"
            [ "$name" = long ] && runs="$LONG_RUNS"
            for variant in changed same; do
                new="$pairs_dir/$name/$variant.png"
                o="$OUT/$name-$variant"
                mkdir -p "$o"
                say "round $round/$ROUNDS: timing $name/$variant ($(dims "$ref"), $WARMUP warm-up + $runs runs)"
                # -i: every tool exits non-zero when the images differ.
                hyperfine -N -i --style basic --warmup "$WARMUP" --runs "$runs" \
                    --export-json "$OUT/$name-$variant.r$round.json" \
                    -n dpxdt "$dpxdt diff $ref $new -o $o/dpxdt.png" \
                    -n odiff "$odiff $ref $new $o/odiff.png" \
                    -n pixelmatch "$pixelmatch $ref $new $o/pixelmatch.png 0.1 true" \
                    -n compare "$magick_compare -metric RMSE $ref $new $o/compare.png" \
                    >"$OUT/$name-$variant.r$round.log" 2>&1 ||
                    { cat "$OUT/$name-$variant.r$round.log" >&2; exit 2; }
            done
        done
    done
fi

# Median (seconds) and run count of TOOL over every round's runs of a pair.
pooled() {
    jq -s -r --arg n "$2" '[.[].results[] | select(.command == $n) | .times[]] | sort
        | (length) as $l | if $l == 0 then "nan 0"
          elif $l % 2 == 1 then "\(.[($l - 1) / 2]) \($l)"
          else "\((.[$l / 2 - 1] + .[$l / 2]) / 2) \($l)" end' "$OUT/$1".r*.json
}

# Mean CPU time (user + system, seconds) of TOOL over the rounds: less
# sensitive than wall time to other work on the machine.
cpu() {
    jq -s -r --arg n "$2" '[.[].results[] | select(.command == $n) | .user + .system]
        | if length == 0 then "nan" else add / length end' "$OUT/$1".r*.json
}

rows=()
cpus=()
checks=()
for name in $PAIRS; do
    ref="$pairs_dir/$name/ref.png"
    for variant in changed same; do
        new="$pairs_dir/$name/$variant.png"
        read -r d n <<<"$(pooled "$name-$variant" dpxdt)"
        row="$(printf '%-10s %-8s %-11s %4s' "$name" "$variant" "$(dims "$ref")" "$n")"
        for tool in dpxdt odiff pixelmatch compare; do
            read -r m _ <<<"$(pooled "$name-$variant" "$tool")"
            row="$row$(awk -v m="$m" -v d="$d" 'BEGIN { printf " %9.1f ms (%5.2fx)", m * 1000, m / d }')"
        done
        rows+=("$row")
        c="$(cpu "$name-$variant" dpxdt)"
        row="$(printf '%-10s %-8s %-11s' "$name" "$variant" "$(dims "$ref")")"
        for tool in dpxdt odiff pixelmatch compare; do
            m="$(cpu "$name-$variant" "$tool")"
            row="$row$(awk -v m="$m" -v d="$c" 'BEGIN { printf " %9.1f ms (%5.2fx)", m * 1000, m / d }')"
        done
        cpus+=("$row")

        # Agreement: dpxdt's distortion vs ImageMagick's normalized RMSE, and
        # the changed-pixel counts of the three perceptual tools.
        dj="$("$dpxdt" diff --json "$ref" "$new" || true)"
        dist="$(jq -r .distortion <<<"$dj")"
        dchg="$(jq -r .changed_pixels <<<"$dj")"
        im="$("$magick_compare" -metric RMSE "$ref" "$new" null: 2>&1 | sed -n 's/.*(\(.*\)).*/\1/p' || true)"
        ochg="$("$odiff" --parsable-stdout "$ref" "$new" 2>/dev/null | cut -d';' -f1 || true)"
        [ -n "$ochg" ] || ochg=0
        pchg="$("$pixelmatch" "$ref" "$new" "" 0.1 true 2>/dev/null | sed -n 's/different pixels: //p' || true)"
        checks+=("$(awk -v n="$name/$variant" -v a="$dist" -v b="$im" -v dc="$dchg" -v oc="$ochg" -v pc="$pchg" 'BEGIN {
            diff = a - b; if (diff < 0) diff = -diff
            printf "%-18s %-12.7f %-12.7f %-10.2e %-5s %9s %9s %9s", n, a, b, diff, (diff <= 0.001 ? "ok" : "FAIL"), dc, oc, pc }')")
    done
done

# ---- memory ----------------------------------------------------------------
mem_line=""
biggest=""
for name in $PAIRS; do biggest="$name"; done
if [ -n "$biggest" ]; then
    ref="$pairs_dir/$biggest/ref.png"
    new="$pairs_dir/$biggest/changed.png"
    rss() {
        { /usr/bin/time -v "$@" 2>&1 >/dev/null || true; } |
            sed -n 's/.*Maximum resident set size (kbytes): //p' | tail -n 1
    }
    dk="$(rss "$dpxdt" diff "$ref" "$new" -o "$OUT/mem-dpxdt.png")"
    ok="$(rss "$odiff" "$ref" "$new" "$OUT/mem-odiff.png")"
    wh="$(dims "$ref" | tr 'x' ' ')"
    mem_line="$(awk -v dk="$dk" -v ok="$ok" -v wh="$wh" -v n="$biggest" 'BEGIN {
        split(wh, a, " "); buf = a[1] * a[2] * 4 * 2 / 1048576
        printf "peak memory on %s (%dx%d, changed): dpxdt %.0f MiB, odiff %.0f MiB; two RGBA buffers %.0f MiB; dpxdt/buffers = %.2fx (target <= 2.5x)",
            n, a[1], a[2], dk / 1024, ok / 1024, buf, dk / 1024 / buf }')"
fi

# ---- report ----------------------------------------------------------------
{
    echo
    echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), load average $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "versions: $("$dpxdt" --version 2>/dev/null || echo dpxdt) | odiff $("$odiff" --version 2>&1 | head -n 1) | pixelmatch $(jq -r .version "$tools/node_modules/pixelmatch/package.json") (node $(node --version)) | $("$magick_compare" -version | head -n 1 | cut -d' ' -f2-3)"
    echo
    echo "median wall time, whole process, over $ROUNDS rounds (ratio = tool / dpxdt; > 1 means dpxdt is faster)"
    printf '%-10s %-8s %-11s %4s %-22s %-22s %-22s %-22s\n' pair new size runs dpxdt odiff pixelmatch compare
    printf '%s\n' "${rows[@]}"
    echo
    echo "mean CPU time (user + system), whole process (ratio = tool / dpxdt)"
    printf '%-10s %-8s %-11s %-22s %-22s %-22s %-22s\n' pair new size dpxdt odiff pixelmatch compare
    printf '%s\n' "${cpus[@]}"
    echo
    echo "distortion: dpxdt vs ImageMagick compare -metric RMSE (normalized), tolerance 0.001; changed pixels at threshold 0.1"
    printf '%-18s %-12s %-12s %-10s %-5s %9s %9s %9s\n' pair dpxdt imagemagick "|diff|" ok dpxdt odiff pixelmatch
    printf '%s\n' "${checks[@]}"
    echo
    [ -n "$mem_line" ] && echo "$mem_line"
    echo "raw results: $OUT/*.r*.json (hyperfine --export-json, one file per pair and round)"
} | tee "$OUT/summary.txt"

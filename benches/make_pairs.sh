#!/usr/bin/env bash
# Renders the benchmark pairs: real full-page screenshots taken by headless
# Chromium of three pages this script writes itself (deterministic content).
#
#   article    1280x5000   a long text article     change: one word
#   dashboard  1920x1080   KPI cards, charts, table change: one number
#   long       4000x20000  a product catalogue     change: one swatch colour
#
# For each page it writes PAIRS_DIR/NAME/{ref,changed,same}.png:
#   ref      the reference capture,
#   changed  a capture of the page with the one small change,
#   same     a second, independent capture of the unchanged page.
#
# Usage: benches/make_pairs.sh [--force]   (PAIRS_DIR defaults to
# benches/target-data/pairs, which is git-ignored; files that exist are kept
# unless --force). Needs /usr/bin/chromium (scripts/deps.sh installs it).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PAIRS_DIR="${PAIRS_DIR:-$here/target-data/pairs}"
force=0
[ "${1:-}" = "--force" ] && force=1

chromium_bin="${CHROMIUM:-$(command -v chromium || true)}"
if [ -z "$chromium_bin" ]; then
    bash "$here/../scripts/deps.sh"
    chromium_bin="$(command -v chromium)"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# page KIND VARIANT > html. VARIANT is "ref" or "changed"; the same VARIANT
# always gives the same bytes (a Park-Miller generator seeded per page, exact
# in awk's doubles).
page() {
    awk -v kind="$1" -v variant="$2" '
    function rnd(n) { seed = (seed * 16807) % 2147483647; return seed % n }
    function word() { return words[rnd(nwords) + 1] }
    function sentence(   n, s, i) {
        n = 6 + rnd(14); s = word(); s = toupper(substr(s, 1, 1)) substr(s, 2)
        for (i = 1; i < n; i++) s = s " " word()
        return s "."
    }
    function para(   n, s, i) { n = 3 + rnd(5); s = ""; for (i = 0; i < n; i++) s = s " " sentence(); return s }
    BEGIN {
        nwords = split("pixel baseline release screenshot render layout column margin font glyph " \
            "browser review approve candidate capture region border shadow header footer " \
            "the a of and to in is that for on with as by at from this it be are was " \
            "quickly careful subtle bright narrow window scroll anchor canvas vector " \
            "deploy server client queue worker build test change diff threshold colour", words, " ")
        seed = (kind == "article") ? 4242 : (kind == "dashboard") ? 1717 : 9001
        if (kind == "article") article(); else if (kind == "dashboard") dashboard(); else catalogue()
    }
    function head(w, h, extra) {
        printf "<!doctype html><html><head><meta charset=\"utf-8\"><title>%s</title><style>\n", kind
        printf "html,body{margin:0;width:%dpx;height:%dpx;overflow:hidden;background:#fff}\n", w, h
        printf "*{box-sizing:border-box;animation:none!important;caret-color:transparent}\n%s</style></head><body>\n", extra
    }
    function article(   i, p, text, sect) {
        head(1280, 5000, "body{font:18px/1.6 \"DejaVu Serif\",serif;color:#222}" \
            "nav{background:#1d3557;color:#fff;padding:14px 40px;font:16px \"DejaVu Sans\",sans-serif}" \
            "nav a{color:#f1faee;margin-right:24px;text-decoration:none}" \
            "main{width:760px;margin:30px 0 0 120px}aside{position:absolute;left:940px;top:120px;width:280px;" \
            "font:14px/1.5 \"DejaVu Sans\",sans-serif;color:#444;border-left:3px solid #e63946;padding-left:16px}" \
            "h1{font:bold 42px/1.2 \"DejaVu Sans\",sans-serif;margin:10px 0}h2{font:bold 26px \"DejaVu Sans\",sans-serif;margin:34px 0 8px;color:#1d3557}" \
            ".by{color:#777;font-style:italic}blockquote{margin:20px 0;padding:10px 20px;background:#f1faee;border-left:6px solid #a8dadc}" \
            ".fig{height:220px;margin:24px 0;background:linear-gradient(135deg,#a8dadc,#457b9d 60%,#1d3557)}code{font:15px \"DejaVu Sans Mono\",monospace;background:#eee}")
        print "<nav><a href=#>Home</a><a href=#>Releases</a><a href=#>Builds</a><a href=#>Docs</a><a href=#>About</a></nav>"
        print "<main><h1>How screenshot diffs keep deploys safe</h1><p class=by>By the Depicted team, 25 November 2026</p>"
        for (i = 1; i <= 26; i++) {
            if (i % 5 == 1) { sect++; printf "<h2>%d. %s</h2>\n", sect, sentence() }
            text = para()
            # The one change: a single word in paragraph 12.
            if (i == 12) text = text " The reviewer <b>" (variant == "changed" ? "rejected" : "approved") "</b> the run."
            if (i % 7 == 3) printf "<blockquote>%s</blockquote>\n", sentence()
            else if (i % 9 == 4) printf "<div class=fig></div>\n"
            printf "<p>%s <code>dpxdt diff</code>%s</p>\n", text, para()
        }
        print "</main><aside><b>In this article</b>"
        for (i = 1; i <= 14; i++) printf "<p>%s</p>\n", sentence()
        print "</aside></body></html>"
    }
    function dashboard(   i, j, v, x, pts) {
        head(1920, 1080, "body{font:14px \"DejaVu Sans\",sans-serif;color:#1f2933;background:#f0f2f5}" \
            ".side{position:absolute;left:0;top:0;width:220px;height:1080px;background:#243b53;color:#d9e2ec;padding:20px}" \
            ".side div{padding:9px 0;border-bottom:1px solid #334e68}.top{position:absolute;left:220px;top:0;right:0;height:56px;" \
            "background:#fff;box-shadow:0 1px 3px #0002;padding:16px 24px;font-size:18px}" \
            ".cards{position:absolute;left:244px;top:80px;width:1652px;display:grid;grid-template-columns:repeat(4,1fr);gap:16px}" \
            ".card{background:#fff;border-radius:8px;padding:16px;box-shadow:0 1px 3px #0002}.card b{display:block;font-size:30px;margin-top:6px}" \
            ".up{color:#2f855a}.down{color:#c53030}.chart{position:absolute;left:244px;top:350px;width:900px;height:330px;background:#fff;border-radius:8px;padding:16px}" \
            ".bars{display:flex;align-items:flex-end;height:260px;gap:6px}.bars div{flex:1;background:#4c8bf5;border-radius:3px 3px 0 0}" \
            ".line{position:absolute;left:1160px;top:350px;width:736px;height:330px;background:#fff;border-radius:8px;padding:16px}" \
            "table{position:absolute;left:244px;top:700px;width:1652px;border-collapse:collapse;background:#fff}" \
            "td,th{padding:6px 12px;border-bottom:1px solid #e4e7eb;text-align:left}th{background:#f5f7fa}")
        print "<div class=side><h2>Depicted</h2>"
        for (i = 1; i <= 14; i++) printf "<div>%s</div>\n", word() " " word()
        print "</div><div class=top>Overview &middot; build 42 &middot; release 2026-11-25-r01</div><div class=cards>"
        for (i = 1; i <= 8; i++) {
            v = 1000 + rnd(90000)
            # The one change: a single digit of the third KPI.
            if (i == 3 && variant == "changed") v = v + 1
            printf "<div class=card>%s %s<b>%d,%03d</b><span class=%s>%s%d.%d%%</span> vs last week</div>\n", \
                word(), word(), int(v / 1000), v % 1000, (rnd(2) ? "up" : "down"), (rnd(2) ? "+" : "-"), rnd(20), rnd(10)
        }
        print "</div><div class=chart><b>Runs per day</b><div class=bars>"
        for (i = 1; i <= 40; i++) printf "<div style=\"height:%dpx\"></div>", 20 + rnd(230)
        print "</div></div><div class=line><b>Diff time (ms)</b><svg width=700 height=270>"
        pts = ""; for (x = 0; x <= 700; x += 14) pts = pts sprintf("%d,%d ", x, 40 + rnd(200))
        printf "<polyline fill=none stroke=\"#e8590c\" stroke-width=2.5 points=\"%s\"/></svg></div>\n", pts
        print "<table><tr><th>Run</th><th>Status</th><th>Changed pixels</th><th>Distortion</th><th>Reviewer</th><th>Notes</th></tr>"
        for (i = 1; i <= 11; i++)
            printf "<tr><td>/%s/%s</td><td>%s</td><td>%d</td><td>0.%04d</td><td>%s</td><td>%s</td></tr>\n", \
                word(), word(), (rnd(3) ? "approved" : "needs review"), rnd(50000), rnd(10000), word(), sentence()
        print "</table></body></html>"
    }
    function catalogue(   i, h, s, l) {
        head(4000, 20000, "body{font:13px/1.4 \"DejaVu Sans\",sans-serif;color:#333}" \
            "header{height:120px;background:#212529;color:#fff;font-size:48px;padding:30px 60px}" \
            ".grid{display:grid;grid-template-columns:repeat(16,232px);gap:12px;padding:20px 28px}" \
            ".c{height:238px;border:1px solid #ddd;border-radius:6px;overflow:hidden}.c i{display:block;height:110px}" \
            ".c b{display:block;padding:4px 8px 0}.c p{margin:2px 8px;color:#555;height:58px;overflow:hidden}" \
            ".c s{float:right;text-decoration:none;color:#0b7285;font-weight:bold;margin-right:8px}")
        print "<header>Catalogue &mdash; every screenshot we ever took</header><div class=grid>"
        for (i = 1; i <= 1248; i++) {
            h = rnd(360); s = 40 + rnd(50); l = 45 + rnd(35)
            # The one change: the swatch colour of one card near the middle.
            if (i == 700 && variant == "changed") h = (h + 40) % 360
            printf "<div class=c><i style=\"background:hsl(%d,%d%%,%d%%)\"></i><b>%s %s</b><s>$%d.%02d</s><p>%s</p></div>\n", \
                h, s, l, word(), word(), 1 + rnd(300), rnd(100), sentence() " " sentence()
        }
        print "</div></body></html>"
    }'
}

# shot HTML PNG W H: one full-page capture. The window is the page size, so
# the viewport screenshot is the whole page in one piece (Chromium's software
# renderer takes 4000x20000 in one capture here; no tiling was needed).
shot() {
    local profile
    profile="$(mktemp -d "$work/profile.XXXX")"
    "$chromium_bin" --headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage \
        --no-first-run --disable-background-networking --disable-component-update \
        --disable-sync --disable-quic --user-data-dir="$profile" \
        --hide-scrollbars --force-device-scale-factor=1 --window-size="$3,$4" \
        --screenshot="$2" "file://$1" >"$work/chromium.log" 2>&1 || {
        cat "$work/chromium.log" >&2
        echo "make_pairs: chromium failed on $1" >&2
        exit 2
    }
    rm -rf "$profile"
}

make_pair() {
    local name="$1" w="$2" h="$3" dir="$PAIRS_DIR/$1"
    if [ "$force" -eq 0 ] && [ -s "$dir/ref.png" ] && [ -s "$dir/changed.png" ] && [ -s "$dir/same.png" ]; then
        echo "make_pairs: $name exists (use --force to render again)"
        return
    fi
    mkdir -p "$dir"
    page "$name" ref >"$work/$name-ref.html"
    page "$name" changed >"$work/$name-changed.html"
    if cmp -s "$work/$name-ref.html" "$work/$name-changed.html"; then
        echo "make_pairs: $name: the changed page equals the reference" >&2
        exit 2
    fi
    echo "make_pairs: rendering $name ${w}x${h} (ref, changed, same)"
    shot "$work/$name-ref.html" "$dir/ref.png" "$w" "$h"
    shot "$work/$name-changed.html" "$dir/changed.png" "$w" "$h"
    # A second, independent capture of the reference page: the realistic
    # "nothing changed" input (same pixels, separately encoded file).
    shot "$work/$name-ref.html" "$dir/same.png" "$w" "$h"
}

# WIDTHxHEIGHT of a PNG, from its IHDR chunk (bytes 16..24, big-endian).
dims() { od -An -tu1 -j16 -N8 "$1" | awk '{ printf "%dx%d", (($1 * 256 + $2) * 256 + $3) * 256 + $4, (($5 * 256 + $6) * 256 + $7) * 256 + $8 }'; }

make_pair article 1280 5000
make_pair dashboard 1920 1080
make_pair long 4000 20000

# Report what was made.
for name in article dashboard long; do
    dir="$PAIRS_DIR/$name"
    line="$name: $(dims "$dir/ref.png")"
    for v in ref changed same; do line="$line $v=$(stat -c %s "$dir/$v.png")B"; done
    echo "make_pairs: $line"
done

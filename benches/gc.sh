#!/usr/bin/env bash
# Garbage collection at scale (issue: storage that does not grow forever):
# builds dpxdt-server's `gc_bench` example in release mode, which makes a
# data directory of RELEASES x RUNS run rows (default 10,000 x 100) over
# DISTINCT screenshot files and times one collection with the default
# policy; /usr/bin/time adds the whole process's peak memory.
#
# Usage: benches/gc.sh [RELEASES RUNS DISTINCT]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /usr/bin/time ] || { echo "gc.sh: installing time" >&2; apt-get install -y -qq time >&2; }
echo "gc.sh: building the example (release)" >&2
cargo build --release --quiet -p dpxdt-server --example gc_bench
bin="${CARGO_TARGET_DIR:-target}/release/examples/gc_bench"
/usr/bin/time -v "$bin" "$@" 2> >(grep -E "gc_bench|Maximum resident|Elapsed" >&2)

#!/usr/bin/env bash
# The server's API load (dpxdt-server/examples/load.rs) on each storage
# set-up, interleaved so that all of them see the same machine: SQLite and
# the data directory, PostgreSQL and a Garage bucket with one replica, and
# the same with two replicas. Each PostgreSQL/Garage run starts its own
# throw-away cluster and node (scripts/deps.sh --test installs both); the
# cluster commits durably (fsync on), as SQLite does here.
#
#   bash benches/server_backends.sh [ROUNDS] [PAIRS]     # default 3 rounds, 1000 pairs
#
# Prints each run's lines and, at the end, the median of each figure.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
pairs=${2:-1000}
cargo build --release -q -p dpxdt-server --no-default-features --example load
bin=target/release/examples/load
export DPXDT_PG_DURABLE=1
out=benches/target-data/server_backends
mkdir -p "$out"
: >"$out/runs.txt"
for round in $(seq 1 "$rounds"); do
    for setup in "sqlite 1" "pg_s3 1" "pg_s3 2"; do
        set -- $setup
        echo "== round $round: $1, $2 replica(s)" >&2
        "$bin" "$pairs" "$1" "$2" | sed "s/^/$1 x$2: /" | tee -a "$out/runs.txt"
    done
done
python3 - "$out/runs.txt" <<'PY'
import re, statistics, sys
figures = {}
for line in open(sys.argv[1]):
    setup, _, rest = line.partition(": ")
    for name, pattern in [
        ("report_run req/s", r"report_run: \d+ requests.*: (\d+) req/s"),
        ("report_run cpu ms", r"report_run: cpu ms per request: .*total ([\d.]+)"),
        ("report_run 4 builds req/s", r"report_run over 4 builds: .*: (\d+) req/s"),
        ("report_run 4 builds cpu ms", r"report_run over builds: cpu .*total ([\d.]+)"),
        ("1 MB uploads/s", r"upload 1 MB: .*: (\d+) req/s"),
        ("pairs reported (s)", r"uploaded and reported in ([\d.]+) s"),
        ("pairs to reviewing (s)", r"reviewing after ([\d.]+) s"),
        ("pairs cpu ms per pair", r"release of pairs: cpu .*total ([\d.]+)"),
        ("pairs cpu ms: postgres", r"release of pairs: cpu .*postgres ([\d.]+)"),
        ("pairs cpu ms: garage", r"release of pairs: cpu .*garage ([\d.]+)"),
    ]:
        m = re.search(pattern, rest)
        if m:
            figures.setdefault((setup, name), []).append(float(m.group(1)))
print("\nmedians:")
for (setup, name), values in figures.items():
    print(f"  {setup:10} {name:28} {statistics.median(values):8.2f}   (runs: {values})")
PY

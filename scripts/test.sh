#!/usr/bin/env bash
# The whole test suite: installs what is missing, then format check, lints,
# and every test of the workspace (unit, integration, real Chromium, real
# server on loopback). This is what CI runs (.ci/run).
#
# Clippy runs as the compiler of the workspace's own crates during the test
# build (RUSTC_WORKSPACE_WRAPPER=clippy-driver, which is what `cargo clippy`
# does over `cargo check`), so every dependency is compiled once, not once
# for clippy's check profile and again for the tests. The lints and the
# `-D warnings` rule are the same as `cargo clippy --workspace --all-targets
# -- -D warnings`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh --test

echo "== cargo fmt --check" >&2
cargo fmt --all -- --check

# The arguments cargo-clippy would hand to clippy-driver for `-- -D warnings`.
export RUSTC_WORKSPACE_WRAPPER=clippy-driver
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"

echo "== clippy and build (every target of the workspace)" >&2
cargo test --workspace --all-targets --locked --no-run

echo "== cargo test" >&2
cargo test --workspace --locked "$@"

# The server's API, UI, worker and kill tests once more, every server on a
# throw-away PostgreSQL and a Garage bucket instead of SQLite and a directory.
# The test binary built above is run as it is: `cargo test -p dpxdt-server`
# would resolve features for that one package and so build the shared
# dependencies (and the binary) a second time.
echo "== cargo test (server on PostgreSQL and S3)" >&2
server_it=$(cargo test --workspace --all-targets --locked --no-run --message-format=json |
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    t = m.get("target", {})
    if m.get("reason") == "compiler-artifact" and m.get("executable") \
            and t.get("name") == "it" and "/dpxdt-server/" in t.get("src_path", ""):
        print(m["executable"])
')
[ -x "$server_it" ] || { echo "test.sh: no dpxdt-server test binary found" >&2; exit 2; }
(cd dpxdt-server && DPXDT_TEST_STORAGE=pg_s3 "$server_it" "$@")

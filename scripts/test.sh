#!/usr/bin/env bash
# The whole test suite: installs what is missing, then format check, lints,
# and every test of the workspace (unit, integration, real Chromium, real
# server on loopback). This is what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh --test

echo "== cargo fmt --check" >&2
cargo fmt --all -- --check

echo "== cargo clippy" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test" >&2
cargo test --workspace --locked "$@"

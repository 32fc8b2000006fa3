#!/usr/bin/env bash
# Starts the Depicted server with its in-process capture and diff workers,
# SQLite in ./dpxdt-data (override with DPXDT_DATA_DIR), listening on
# 127.0.0.1:5000 (override with DPXDT_LISTEN). Installs what is missing first.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh

cargo build --release --locked -p dpxdt-server >&2
exec target/release/dpxdt-server "$@"

#!/usr/bin/env bash
# Runs every test of the workspace: unit and property tests beside the code, and the
# end-to-end tests under tests/ that start real dhtd processes on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
# The end-to-end tests drive the workspace binaries; build them (debug) first.
cargo build --workspace --bins
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi

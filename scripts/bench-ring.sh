#!/usr/bin/env bash
# Throughput and latency of a 3-node loopback ring, through one node, with dhtctl bench.
#   scripts/bench-ring.sh [OPS] [CONCURRENCY]        (default 100000 64)
# Runs twice: nodes on durable storage (the default, durability = sync) and --ephemeral.
# Prints figures; it is a benchmark, not a test.
set -euo pipefail
cd "$(dirname "$0")/.."
OPS=${1:-100000}
CONC=${2:-64}
cargo build -q --release -p dhtd -p dhtctl
BIN=target/release
WORK=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

start_ring() {
  local mode=$1 base=$2
  pids=()
  for i in 0 1 2; do
    local port=$((base + i)) extra=()
    [ "$i" -gt 0 ] && extra=(--bootstrap "127.0.0.1:$base")
    if [ "$mode" = ephemeral ]; then extra+=(--ephemeral); else extra+=(--data-dir "$WORK/$mode-$port"); fi
    "$BIN/dhtd" --bind "127.0.0.1:$port" "${extra[@]}" >/dev/null 2>"$WORK/$mode-$port.log" &
    pids+=($!)
    for _ in $(seq 1 100); do "$BIN/dhtctl" --node "127.0.0.1:$port" info >/dev/null 2>&1 && break; sleep 0.1; done
  done
  sleep 2 # let stabilize settle the ring
}

stop_ring() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait "${pids[@]}" 2>/dev/null || true; pids=(); }

echo "machine: $(nproc) cores, $(uname -sr)"
for mode in durable ephemeral; do
  base=$((20000 + RANDOM % 20000))
  start_ring "$mode" "$base"
  echo "== 3-node ring, $mode storage, bench via 127.0.0.1:$base"
  "$BIN/dhtctl" --node "127.0.0.1:$base" bench --ops "$OPS" --concurrency "$CONC"
  stop_ring
done

#!/usr/bin/env bash
# Scale benchmark of one node's storage: load KEYS keys (16-byte keys, 100-byte values) through
# the streaming PutMany path, then report load rate, the node's resident memory, the data
# directory's size, random-get throughput, and the time a restart takes to serve again.
#   scripts/bench-storage.sh [KEYS]     (default 1000000)
# Prints figures; it is a benchmark, not a test.
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${1:-1000000}
cargo build -q --release -p dhtd -p dhtctl
BIN=target/release
WORK=$(mktemp -d)
PORT=$((20000 + RANDOM % 20000))
pid=
cleanup() { if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi; rm -rf "$WORK"; }
trap cleanup EXIT

start() {
  "$BIN/dhtd" --bind "127.0.0.1:$PORT" --data-dir "$WORK/data" >/dev/null 2>>"$WORK/node.log" &
  pid=$!
  for _ in $(seq 1 600); do "$BIN/dhtctl" --node "127.0.0.1:$PORT" info >/dev/null 2>&1 && return 0; sleep 0.01; done
  echo "node did not start; log:" >&2; cat "$WORK/node.log" >&2; exit 1
}

start
echo "machine: $(nproc) cores; one node, durability = sync"
"$BIN/dhtctl" --node "127.0.0.1:$PORT" --timeout 60 bench --ops "$KEYS" --batch 1000 --concurrency "${CONC:-8}" \
  --key-size 16 --value-size 100 --reads 200000
echo "rss after load: $(awk '/VmRSS/ {printf "%.0f MiB", $2/1024}' /proc/$pid/status)"
echo "keys stored:    $("$BIN/dhtctl" --node "127.0.0.1:$PORT" info | awk '/^keys/ {print $2}')"
echo "data dir size:  $(du -sh "$WORK/data" | cut -f1)"
kill -TERM "$pid"; wait "$pid" || true
t0=$(date +%s.%N)
start
t1=$(date +%s.%N)
echo "restart to serving: $(echo "$t1 - $t0" | bc) s"
echo "keys after restart: $("$BIN/dhtctl" --node "127.0.0.1:$PORT" info | awk '/^keys/ {print $2}')"

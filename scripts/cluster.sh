#!/usr/bin/env bash
# Starts and stops a local dht ring of real dhtd processes on 127.0.0.1.
#
#   scripts/cluster.sh demo              build, start 3 nodes on 5000..5002, show put/get/lookup
#   scripts/cluster.sh up N [BASE_PORT]  start N nodes on BASE_PORT.. (default 5000)
#   scripts/cluster.sh down              stop them (SIGTERM: each leaves gracefully)
#   scripts/cluster.sh status            show each node's ring view
#
# Pid files and logs live under $DHT_CLUSTER_DIR (default: a folder in the temp directory);
# the script prints where. PROFILE=debug uses a debug build (default: release).
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-release}
STATE=${DHT_CLUSTER_DIR:-${TMPDIR:-/tmp}/dht-cluster-${USER:-$(id -u)}}
BIN=target/$PROFILE

build() {
  local flag=()
  [ "$PROFILE" = release ] && flag=(--release)
  echo "building dhtd and dhtctl ($PROFILE)..."
  cargo build -q "${flag[@]}" -p dhtd -p dhtctl
}

wait_port() {
  local port=$1
  for _ in $(seq 1 100); do
    if "$BIN/dhtctl" --node "127.0.0.1:$port" --timeout 1 info >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "node on port $port did not come up; see $STATE/node-$port.log" >&2
  return 1
}

up() {
  local n=${1:-3} base=${2:-5000}
  [[ "$n" =~ ^[0-9]+$ && "$n" -ge 1 ]] || { echo "usage: $0 up N [BASE_PORT]" >&2; exit 2; }
  [[ "$base" =~ ^[0-9]+$ ]] || { echo "usage: $0 up N [BASE_PORT]" >&2; exit 2; }
  [ -x "$BIN/dhtd" ] && [ -x "$BIN/dhtctl" ] || build
  mkdir -p "$STATE"
  local boot=()
  for i in $(seq 0 $((n - 1))); do
    local port=$((base + i))
    if [ -f "$STATE/node-$port.pid" ] && kill -0 "$(cat "$STATE/node-$port.pid")" 2>/dev/null; then
      echo "node on port $port already running" >&2; exit 1
    fi
    "$BIN/dhtd" --bind "127.0.0.1:$port" --ephemeral "${boot[@]}" \
      >"$STATE/node-$port.out" 2>"$STATE/node-$port.log" &
    echo $! >"$STATE/node-$port.pid"
    wait_port "$port"
    boot=(--bootstrap "127.0.0.1:$base")
  done
  echo "started $n nodes on 127.0.0.1:$base..$((base + n - 1)); pids and logs in $STATE"
}

down() {
  shopt -s nullglob
  local pids=()
  for f in "$STATE"/node-*.pid; do
    local pid; pid=$(cat "$f")
    if kill -TERM "$pid" 2>/dev/null; then pids+=("$pid"); fi
    rm -f "$f"
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  echo "stopped ${#pids[@]} nodes (logs kept in $STATE)"
}

status() {
  shopt -s nullglob
  for f in "$STATE"/node-*.pid; do
    local port=${f##*/node-}; port=${port%.pid}
    echo "== 127.0.0.1:$port"
    "$BIN/dhtctl" --node "127.0.0.1:$port" info || true
  done
}

demo() {
  build
  down >/dev/null 2>&1 || true
  up 3 5000
  local ctl="$BIN/dhtctl"
  sleep 1
  echo
  echo "\$ dhtctl put greeting 'hello, ring'"; "$ctl" --node 127.0.0.1:5000 put greeting 'hello, ring'
  for port in 5000 5001 5002; do
    echo "\$ dhtctl --node 127.0.0.1:$port get greeting"; "$ctl" --node "127.0.0.1:$port" get greeting
  done
  echo "\$ dhtctl lookup greeting"; "$ctl" lookup greeting
  echo "\$ dhtctl delete greeting && dhtctl get greeting"
  "$ctl" delete greeting && { "$ctl" get greeting || echo "(exit $?: not found)"; }
  echo "\$ dhtctl --node 127.0.0.1:5001 info"; "$ctl" --node 127.0.0.1:5001 info
  echo
  echo "The ring keeps running: try '$ctl put k v', then stop it with '$0 down'."
}

case "${1:-}" in
  up) shift; up "$@" ;;
  down) down ;;
  status) status ;;
  demo) demo ;;
  *) sed -n '2,12p' "$0"; exit 2 ;;
esac

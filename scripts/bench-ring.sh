#!/usr/bin/env bash
# The ring's throughput and latency as a fraction of this machine's bare gRPC capacity.
#   scripts/bench-ring.sh [OPS]        (default 50000 keys written, then read back)
#
# In one run, with one client (dhtctl bench: 16-byte keys, 100-byte values, 4 connections,
# writes then random reads through one node), it measures:
#   ceiling        crates/dhtd/examples/ceiling.rs, a bare tonic Kv server over an in-memory
#                  map (no ring, no routing, no replication, no storage engine)
#   3 nodes        durable storage (--data-dir, durability = sync) and --ephemeral
#   5 nodes        durable storage
# all at concurrency 64, and the 3-node durable ring again at concurrency 16 (its p99 under a
# lighter load). Rings run with --replication-factor 3, and with majority write and read
# quorums when this dhtd has --write-quorum. Then it prints one table whose last columns are
# puts/s and gets/s as a percentage of the ceiling's.
#
# Only the ratios within one run mean anything: on a 2-core machine the ceiling alone swings
# ±30% from one run to the next (whatever else runs on it), so absolute figures from different
# runs, or a ring from one run against a ceiling from another, are not comparable. It is a
# benchmark that prints figures, not a test.
set -euo pipefail
cd "$(dirname "$0")/.."
OPS=${1:-50000}
[[ "$OPS" =~ ^[0-9]+$ && "$OPS" -ge 1 ]] || { echo "usage: $0 [OPS]" >&2; exit 2; }
TARGET=${CARGO_TARGET_DIR:-target}
cargo build -q --release -p dhtd -p dhtctl --bins --example ceiling
BIN=$TARGET/release
WORK=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

stop_all() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  wait "${pids[@]}" 2>/dev/null || true
  pids=()
}

# Options every ring node gets: as many of the replication settings as this dhtd knows.
HELP=$("$BIN/dhtd" --help)
RING_OPTS=()
[[ $HELP == *--replication-factor* ]] && RING_OPTS+=(--replication-factor 3)
[[ $HELP == *--write-quorum* ]] && RING_OPTS+=(--write-quorum majority --read-quorum majority)

wait_info() { # wait_info ADDR LOG: until the server at ADDR answers `info`
  for _ in $(seq 1 100); do
    "$BIN/dhtctl" --node "$1" --timeout 1 info >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "$1 did not come up; its log:" >&2
  tail -n 20 "$2" >&2
  return 1
}

# True when every node has a predecessor and lists every other node among its successors.
ring_formed() { # ring_formed PORT...
  local p q info succ
  for p in "$@"; do
    info=$("$BIN/dhtctl" --node "127.0.0.1:$p" --timeout 1 --json info 2>/dev/null) || return 1
    [[ $info == *'"predecessor":null'* ]] && return 1
    succ=${info#*\"successors\":[}
    succ=${succ%%]*}
    for q in "$@"; do
      [ "$q" = "$p" ] || [[ $succ == *"\"127.0.0.1:$q\""* ]] || return 1
    done
  done
}

start_ring() { # start_ring N MODE: nodes on BASE..BASE+N-1, all bootstrapping through BASE
  local n=$1 mode=$2 i port ports=() extra
  BASE=$((20000 + RANDOM % 20000))
  for i in $(seq 0 $((n - 1))); do
    port=$((BASE + i))
    ports+=("$port")
    extra=()
    [ "$i" -gt 0 ] && extra=(--bootstrap "127.0.0.1:$BASE")
    if [ "$mode" = ephemeral ]; then extra+=(--ephemeral); else extra+=(--data-dir "$WORK/$mode-$port"); fi
    "$BIN/dhtd" --bind "127.0.0.1:$port" "${RING_OPTS[@]}" "${extra[@]}" \
      >/dev/null 2>"$WORK/$mode-$port.log" &
    pids+=($!)
    wait_info "127.0.0.1:$port" "$WORK/$mode-$port.log"
  done
  for _ in $(seq 1 300); do
    if ring_formed "${ports[@]}"; then return 0; fi
    sleep 0.1
  done
  echo "the $n-node ring on 127.0.0.1:$BASE.. did not form within 30 s" >&2
  for port in "${ports[@]}"; do "$BIN/dhtctl" --node "127.0.0.1:$port" info >&2 || true; done
  return 1
}

# Results, one entry per configuration, in the order measured.
labels=()
declare -A PUT GET PUT99 GET99 ERRS

bench() { # bench LABEL ADDR CONCURRENCY: runs dhtctl bench, shows its output, keeps the figures
  local label=$1 addr=$2 conc=$3 out
  echo "== $label, via $addr"
  out=$("$BIN/dhtctl" --node "$addr" --timeout 10 bench --ops "$OPS" --concurrency "$conc")
  echo "$out"
  # dhtctl bench prints, per phase:
  #   put:     12345 ops/s  p50    1.23 ms  p99    4.56 ms  max    7.89 ms  errors 0
  local phase rate p99 errs
  for phase in put get; do
    rate= p99= errs=
    read -r rate p99 errs < <(awk -v ph="$phase:" '$1 == ph {
        for (i = 2; i < NF; i++) { if ($(i+1) == "ops/s") r = $i; if ($i == "p99") p = $(i+1); if ($i == "errors") e = $(i+1) }
        print r, p, e }' <<<"$out") || true
    [ -n "${rate:-}" ] || { echo "cannot parse the $phase line of dhtctl bench" >&2; exit 1; }
    if [ "$phase" = put ]; then PUT[$label]=$rate PUT99[$label]=$p99; else GET[$label]=$rate GET99[$label]=$p99; fi
    ERRS[$label]=$(( ${ERRS[$label]:-0} + errs ))
  done
  labels+=("$label")
}

echo "machine: $(nproc) cores, $(uname -sr); $OPS ops per configuration"
echo "ring options: ${RING_OPTS[*]:-(none)}"

"$BIN/examples/ceiling" --bind 127.0.0.1:0 >"$WORK/ceiling.out" 2>"$WORK/ceiling.log" &
pids+=($!)
CEIL=
for _ in $(seq 1 100); do
  CEIL=$(sed -n 's/^listening on //p' "$WORK/ceiling.out")
  [ -n "$CEIL" ] && break
  sleep 0.1
done
[ -n "$CEIL" ] || { echo "the ceiling server did not start:" >&2; cat "$WORK/ceiling.log" >&2; exit 1; }
wait_info "$CEIL" "$WORK/ceiling.log"
bench "ceiling" "$CEIL" 64
stop_all

start_ring 3 durable
bench "3 nodes, durable, c64" "127.0.0.1:$BASE" 64
bench "3 nodes, durable, c16" "127.0.0.1:$BASE" 16
stop_all

start_ring 3 ephemeral
bench "3 nodes, ephemeral, c64" "127.0.0.1:$BASE" 64
stop_all

start_ring 5 durable
bench "5 nodes, durable, c64" "127.0.0.1:$BASE" 64
stop_all

echo
echo "== summary: $OPS ops, $(nproc) cores; % = of the ceiling's puts/s and gets/s in this run"
fmt="%-25s %10s %10s %12s %12s %8s %8s %7s\n"
# shellcheck disable=SC2059
printf "$fmt" configuration puts/s gets/s "put p99 ms" "get p99 ms" "puts %" "gets %" errors
for l in "${labels[@]}"; do
  # shellcheck disable=SC2059
  printf "$fmt" "$l" "${PUT[$l]}" "${GET[$l]}" "${PUT99[$l]}" "${GET99[$l]}" \
    "$(awk -v a="${PUT[$l]}" -v b="${PUT[ceiling]}" 'BEGIN { printf "%.1f", 100 * a / b }')" \
    "$(awk -v a="${GET[$l]}" -v b="${GET[ceiling]}" 'BEGIN { printf "%.1f", 100 * a / b }')" \
    "${ERRS[$l]}"
done

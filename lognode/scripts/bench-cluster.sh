#!/usr/bin/env bash
# Starts a 3-node release cluster on 127.0.0.1 (fsync on), runs lognode-bench against its first
# node with the arguments given, and stops the nodes. Data goes under target/bench-cluster.
#   lognode/scripts/bench-cluster.sh --duration-secs 10 --conc 1,16,64 --batch 100
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
cargo build --release -q -p lognode --bins
B=$ROOT/target/release
D=$ROOT/target/bench-cluster
rm -rf "$D" && mkdir -p "$D"
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
export RUST_LOG=warn
for i in 1 2 3; do
  args=(--id "$i" --data-dir "$D/$i" --grpc-addr "127.0.0.1:710$i" --gossip-addr "127.0.0.1:720$i" --gossip-profile local)
  if [ "$i" = 1 ]; then args+=(--bootstrap); else args+=(--join 127.0.0.1:7201); fi
  "$B/lognode" "${args[@]}" > "$D/node$i.log" 2>&1 &
  PIDS+=($!)
  [ "$i" = 1 ] && sleep 1
done
# Wait (bounded) until all three are voters; the bench retries until a leader answers.
sleep 6
"$B/lognode-bench" --addr 127.0.0.1:7101 "$@"

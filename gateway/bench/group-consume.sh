#!/usr/bin/env bash
# Consumer-group benchmark (issue 6): a 3-node release cluster on 127.0.0.1 (fsync on) and one
# release gateway; fills a topic with N records through the gateway, then ONE group member
# fetches them all through the gateway (max_records=1000), committing after every fetch, then a
# second member of another group does the same committing every 100 ms; each prints
#   RESULT group-consume/<commit mode> conc=1 run=1 tput=<records/s> p50_ms=<fetch> ...
# Compare with: DRAIN_REPS=1 REPS=1 CONCS=1 WARMUP=1 DURATION=2 ../shared/peers/run-nats.sh default
#   usage: gateway/bench/group-consume.sh [--n 1000000] [--max-records 1000]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
T=${CARGO_TARGET_DIR:-$ROOT/target}
cargo build --release -q -p lognode --bin lognode -p gateway --bin gateway --example group-consume
B=$T/release
D=$T/bench-group-consume
rm -rf "$D" && mkdir -p "$D"
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
export RUST_LOG=warn
for i in 1 2 3; do
  args=(--id "$i" --data-dir "$D/$i" --grpc-addr "127.0.0.1:711$i" --gossip-addr "127.0.0.1:721$i" --gossip-profile local)
  if [ "$i" = 1 ]; then args+=(--bootstrap); else args+=(--join 127.0.0.1:7211); fi
  "$B/lognode" "${args[@]}" > "$D/node$i.log" 2>&1 &
  PIDS+=($!)
  [ "$i" = 1 ] && sleep 1
done
"$B/gateway" --auth none --listen 127.0.0.1:8181 --join 127.0.0.1:7211 --gossip-addr 127.0.0.1:7311 --gossip-profile local \
  > "$D/gateway.log" 2>&1 &
PIDS+=($!)
# Bounded wait for a leader that accepts writes.
for _ in $(seq 1 60); do
  curl -fsS http://127.0.0.1:8181/readyz > /dev/null 2>&1 && break
  sleep 0.5
done
sleep 3  # let the other two nodes become voters
# One member of a new group each run, from the earliest offset: first committing after every
# fetch, then committing every 100 ms (Kafka's auto-commit style).
"$B/examples/group-consume" --gateway 127.0.0.1:8181 --fill --group bench-each "$@"
"$B/examples/group-consume" --gateway 127.0.0.1:8181 --group bench-100ms --commit-every-ms 100 "$@"

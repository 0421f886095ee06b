#!/usr/bin/env bash
# Starts a local Ledger on 127.0.0.1: 3 lognodes (fsync on) and a gateway on :8080, prints the
# URLs and a curl example, and stops everything on Ctrl-C. Data lives under ./data (survives a
# restart); pass --fresh to wipe it first. Interim main command until `ledger dev` (issue 8),
# which will also start the projector.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
DATA=${LEDGER_DEV_DATA:-$ROOT/data}
if [ "${1:-}" = "--fresh" ]; then rm -rf "$DATA"; fi
for port in 7101 7102 7103 7201 7202 7203 7301 8080; do
  if ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then
    echo "port $port is already in use: stop whatever holds it (an earlier dev cluster?) and retry" >&2
    exit 1
  fi
done
echo "building (release)..."
cargo build --release -q -p lognode --bin lognode -p gateway --bin gateway
B=$ROOT/target/release
mkdir -p "$DATA"
PIDS=()
stop() {
  trap - INT TERM EXIT
  echo; echo "stopping..."
  for p in "${PIDS[@]:-}"; do kill -TERM "$p" 2>/dev/null || true; done
  for _ in $(seq 1 100); do
    alive=0; for p in "${PIDS[@]:-}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break; sleep 0.1
  done
  for p in "${PIDS[@]:-}"; do kill -KILL "$p" 2>/dev/null || true; done
  echo "stopped; data kept in $DATA"
}
trap stop INT TERM EXIT
for i in 1 2 3; do
  args=(--id "$i" --data-dir "$DATA/node$i" --grpc-addr "127.0.0.1:710$i" --gossip-addr "127.0.0.1:720$i" --gossip-profile local)
  if [ "$i" = 1 ]; then args+=(--bootstrap); else args+=(--join 127.0.0.1:7201); fi
  "$B/lognode" "${args[@]}" > "$DATA/node$i.log" 2>&1 &
  PIDS+=($!)
  [ "$i" = 1 ] && sleep 1
done
"$B/gateway" --listen 127.0.0.1:8080 --join 127.0.0.1:7201 --gossip-addr 127.0.0.1:7301 --gossip-profile local \
  > "$DATA/gateway.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 300); do
  curl -fs http://127.0.0.1:8080/readyz > /dev/null 2>&1 && break
  sleep 0.1
done
if ! curl -fs http://127.0.0.1:8080/readyz > /dev/null 2>&1; then
  echo "the cluster did not become ready in 30 s; logs are in $DATA/*.log" >&2
  exit 1
fi
cat <<MSG

Ledger is running (logs in $DATA/*.log):
  API      http://127.0.0.1:8080/v1/...
  docs     http://127.0.0.1:8080/docs
  metrics  http://127.0.0.1:8080/metrics

Try:
  curl -s -XPOST localhost:8080/v1/accounts -H 'content-type: application/json' -d '{"id":"equity","currency":"USD","allow_overdraft":true}'
  curl -s -XPOST localhost:8080/v1/accounts -H 'content-type: application/json' -d '{"id":"alice","currency":"USD"}'
  curl -s -XPOST localhost:8080/v1/transfers -H 'content-type: application/json' -d '{"id":"t1","debit_account_id":"equity","credit_account_id":"alice","amount":1000,"currency":"USD"}'
  curl -s localhost:8080/v1/accounts/alice

Ctrl-C stops everything.
MSG
wait -n "${PIDS[@]}" || true
echo "a process exited; see $DATA/*.log" >&2

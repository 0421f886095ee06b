#!/usr/bin/env bash
# How state grows with history, and what a restart costs (issue 20). Starts `ledger dev` (3
# lognodes, fsync on, no projector) on a fresh data dir, loads it with the Rust load generator
# (batched transfers), prints each lognode's RSS and disk (Raft log, events log, snapshots) and
# the snapshot the nodes hold, stops the cluster (SIGINT), starts it again on the same data and
# times how long until a strong read is served; then prints the RSS again.
#
#   loadtest/restart.sh [--duration 40] [--concurrency 32] [--scenario transfers-batch]
#
# Needs the release binaries (built here). Data and logs: target/restart-bench/. Where the ledger's
# records live follows lognode's default (`--state-store disk`); LEDGER_STATE_STORE=memory in the
# environment runs the nodes with them in memory.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
DURATION=40
CONC=32
SCENARIO=transfers-batch
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=${2%s}; shift 2 ;;
    --concurrency) CONC=$2; shift 2 ;;
    --scenario) SCENARIO=$2; shift 2 ;;
    -h|--help) sed -n 2,10p "$0"; exit 0 ;;
    *) echo "restart.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$DURATION" in ''|*[!0-9]*) echo "restart.sh: --duration takes whole seconds" >&2; exit 2 ;; esac

cargo build --release --locked -q -p lognode -p gateway -p projector -p ledger-cli -p loadtest
BIN=$ROOT/target/release
OUT=$ROOT/target/restart-bench
DATA=$OUT/data
mkdir -p "$OUT"
GATEWAY=http://127.0.0.1:18080
PID=

start() {
  "$BIN/ledger" dev --no-projector --listen 127.0.0.1:18080 --port-base 17600 --data-dir "$DATA" "$@" \
    > "$OUT/dev.log" 2>&1 &
  PID=$!
}

stop() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill -INT "$PID"
    for _ in $(seq 1 300); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$PID" 2>/dev/null && kill -9 "$PID"
  fi
  PID=
}
trap stop EXIT

# Seconds until a strong read is served (a 200 or a 404 problem: either way the leader answered
# after applying what it had), at most 300 s.
wait_strong_read() {
  local t0 code
  t0=$(date +%s.%N)
  for _ in $(seq 1 3000); do
    kill -0 "$PID" 2>/dev/null || { echo "ledger dev exited:" >&2; tail -5 "$OUT/dev.log" >&2; return 1; }
    code=$(curl -s -o /dev/null -w '%{http_code}' "$GATEWAY/v1/accounts/restart-probe?consistency=strong" || true)
    if [ "$code" = 200 ] || [ "$code" = 404 ]; then
      echo "$(date +%s.%N) - $t0" | bc
      return 0
    fi
    sleep 0.1
  done
  echo "no strong read within 300 s" >&2
  return 1
}

nodes() {
  for pid in $(pgrep -f "$BIN/lognode" || true); do
    local id rss
    id=$(tr '\0' ' ' < "/proc/$pid/cmdline" | sed -n 's/.*--id \([0-9]*\).*/\1/p')
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
    echo "lognode $id: RSS $((rss / 1024)) MiB"
  done | sort
}

disk() {
  for d in "$DATA"/node*/ "$DATA"/n*/; do
    [ -d "$d" ] || continue
    printf '%s: total %s, raft log %s, events %s, snapshot %s, state store %s\n' "$(basename "$d")" \
      "$(du -sh "$d" | cut -f1)" "$(du -sh "$d/log" 2>/dev/null | cut -f1)" \
      "$(du -sh "$d/events" 2>/dev/null | cut -f1)" "$(du -sh "$d/log/snapshot" 2>/dev/null | cut -f1)" \
      "$(du -sh "$d/state" 2>/dev/null | cut -f1)"
  done
}

status() {
  curl -s "$GATEWAY/v1/cluster" || true
  echo
}

echo "== fresh cluster, $SCENARIO, $CONC clients, ${DURATION}s"
start --fresh
wait_strong_read > /dev/null
"$BIN/loadtest" --gateway "$GATEWAY" --scenario "$SCENARIO" --concurrency "$CONC" --duration "${DURATION}s" \
  --report "$OUT/load.json" | tail -n 12
sleep 2
echo "== after the load"
nodes
disk
status
echo "== restart"
stop
start
secs=$(wait_strong_read)
echo "RESULT restart to a served strong read: ${secs} s"
nodes
status

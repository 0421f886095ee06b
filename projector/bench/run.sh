#!/usr/bin/env bash
# Projector benchmark (issue 7), everything on 127.0.0.1:
#   1. a 3-lognode cluster (fsync on) and a gateway;
#   2. a backlog of $TRANSFERS transfers over $ACCOUNTS accounts, made through the gateway in
#      batches of 100 (projector-load);
#   3. projection rate: a projector starts on a fresh database and drains the backlog;
#      events/s = events projected / time to catch up (start-up, join and migrations included);
#   4. steady-state lag: while projector-load sends $LAG_RATE transfers/s for $LAG_SECS s, every
#      second the sampler reads the end offsets of the `ledger` partitions and measures how long
#      PostgreSQL takes to reach them (log -> PostgreSQL).
# Prints RESULT lines. Compare with pgbench in the same session:
#   REPS=1 CONCS=64 WARMUP=2 DURATION=10 ../shared/peers/run-pgbench.sh
#
# Usage: projector/bench/run.sh     (env: TRANSFERS=1000000 ACCOUNTS=1000 BATCH_MAX=5000
#                                    LAG_RATE=3000 LAG_SECS=30 CONC=16 DATABASE_URL=...)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TRANSFERS=${TRANSFERS:-1000000}
ACCOUNTS=${ACCOUNTS:-1000}
BATCH_MAX=${BATCH_MAX:-5000}
LAG_RATE=${LAG_RATE:-3000}
LAG_SECS=${LAG_SECS:-30}
CONC=${CONC:-16}
DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB=projector_bench_run
DB_URL=${DATABASE_URL%/*}/$DB
T=${CARGO_TARGET_DIR:-$ROOT/target}/release

cd "$ROOT"
cargo build --release -q -p lognode --bin lognode -p gateway --bin gateway -p projector --bin projector \
  --example projector-load
WORK=$(mktemp -d "${TMPDIR:-/tmp}/projector-bench.XXXXXX")
PIDS=()
cleanup() {
  set +e
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null; done
  for _ in $(seq 1 50); do
    alive=0; for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break; sleep 0.2
  done
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -KILL "$p" 2>/dev/null; done
  psql -q "$DATABASE_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1
  echo "logs kept in $WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
GRPC=(); SEED=
for i in 1 2 3; do
  g=127.0.0.1:$(port); gs=127.0.0.1:$(port); GRPC+=("$g")
  args=(--id "$i" --data-dir "$WORK/node$i" --grpc-addr "$g" --gossip-addr "$gs" --gossip-profile local --fsync always)
  if [ "$i" = 1 ]; then args+=(--bootstrap); SEED=$gs; else args+=(--join "$SEED"); fi
  RUST_LOG=warn "$T/lognode" "${args[@]}" > "$WORK/node$i.log" 2>&1 &
  PIDS+=($!)
done
GW=127.0.0.1:$(port)
RUST_LOG=warn "$T/gateway" --auth none --listen "$GW" --lognodes "$(IFS=,; echo "${GRPC[*]}")" > "$WORK/gateway.log" 2>&1 &
PIDS+=($!)
URL=http://$GW
for _ in $(seq 1 300); do
  voters=$(curl -fs "$URL/v1/cluster" 2>/dev/null | python3 -c 'import sys,json; c=json.load(sys.stdin); print(sum(1 for n in c["nodes"] if n["alive"] and n["role"]!="learner") if c.get("leader_id") else 0)' 2>/dev/null || echo 0)
  [ "$voters" = 3 ] && curl -fs "$URL/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done
[ "$voters" = 3 ] || { echo "cluster not ready in 60 s; logs in $WORK" >&2; exit 1; }

echo "== backlog: $TRANSFERS transfers, $ACCOUNTS accounts, batches of 100, $CONC in flight"
"$T/examples/projector-load" --gateway "$URL" --accounts "$ACCOUNTS" --transfers "$TRANSFERS" \
  --batch 100 --concurrency "$CONC" --prefix b | tee "$WORK/backlog.txt"

psql -q "$DATABASE_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null

# Sum of the end offsets of the 8 `ledger` partitions (strong reads).
ends() {
  python3 - "$URL" <<'PY'
import json, sys, urllib.request
url = sys.argv[1]
print(sum(json.load(urllib.request.urlopen(f"{url}/v1/topics/ledger/partitions/{p}/records?offset=0&limit=1&consistency=strong", timeout=10))["end_offset"] for p in range(8)))
PY
}
projected() { psql -qAt "$DB_URL" -c "SELECT coalesce(sum(next_offset),0) FROM projector_offsets" 2>/dev/null || echo 0; }

END=$(ends)
echo "== projection: $END events in the log; projector --batch-max $BATCH_MAX into $DB"
T0=$(date +%s.%N)
RUST_LOG=info "$T/projector" --gateway "$URL" --database-url "$DB_URL" --batch-max "$BATCH_MAX" \
  > "$WORK/projector.log" 2>&1 &
PIDS+=($!)
while :; do
  p=$(projected)
  [ "$p" -ge "$END" ] && break
  kill -0 "${PIDS[-1]}" 2>/dev/null || { echo "projector exited; see $WORK/projector.log" >&2; exit 1; }
  sleep 0.2
done
T1=$(date +%s.%N)
python3 -c "import sys; n,a,b=int(sys.argv[1]),float(sys.argv[2]),float(sys.argv[3]); print(f'RESULT projection events={n} secs={b-a:.1f} tput={n/(b-a):.0f} batch_max=$BATCH_MAX')" "$END" "$T0" "$T1" \
  | tee "$WORK/projection.txt"

echo "== steady-state lag: $LAG_RATE transfers/s for $LAG_SECS s"
"$T/examples/projector-load" --gateway "$URL" --accounts "$ACCOUNTS" --transfers $((LAG_RATE * LAG_SECS)) \
  --batch 100 --concurrency "$CONC" --rate "$LAG_RATE" --prefix s > "$WORK/lag-load.txt" 2>&1 &
LOAD=$!
PIDS+=($LOAD)
sleep 3   # warm-up
python3 - "$URL" "$DB_URL" $((LAG_SECS - 3)) <<'PY' | tee "$WORK/lag.txt"
import json, subprocess, sys, time, urllib.request
url, db, secs = sys.argv[1], sys.argv[2], int(sys.argv[3])
def ends():
    return sum(json.load(urllib.request.urlopen(f"{url}/v1/topics/ledger/partitions/{p}/records?offset=0&limit=1&consistency=strong", timeout=10))["end_offset"] for p in range(8))
def projected():
    out = subprocess.run(["psql", "-qAt", db, "-c", "SELECT coalesce(sum(next_offset),0) FROM projector_offsets"], capture_output=True, text=True).stdout.strip()
    return int(out or 0)
lags = []
stop = time.time() + secs
while time.time() < stop and len(lags) < 600:
    t0 = time.time()
    e = ends()
    while projected() < e and time.time() - t0 < 30:
        time.sleep(0.02)
    lags.append(time.time() - t0)
    time.sleep(max(0, 1 - (time.time() - t0)))
lags.sort()
q = lambda x: lags[min(len(lags) - 1, int(x * len(lags)))] * 1000
print(f"RESULT lag samples={len(lags)} p50_ms={q(0.5):.0f} p99_ms={q(0.99):.0f} max_ms={lags[-1]*1000:.0f}")
PY
wait "$LOAD" || true
cat "$WORK/lag-load.txt"

#!/usr/bin/env bash
# Instructions per transfer: a CPU figure that does not move with the neighbours' load (issue 14).
# Wall-clock throughput on these shared 2-core machines varies by +-25 % from hour to hour;
# valgrind's callgrind counts executed instructions instead, the same for the same binaries and
# workload whatever else runs.
#
#   loadtest/callgrind.sh [--transfers 10000] [--batch 100] [--clients 1]
#
# One lognode (a single-voter cluster, fsync on) and a gateway, both release builds, each run under
# `valgrind --tool=callgrind --instr-atstart=no` (uninstrumented, so start-up is quick). After
# the accounts exist and are funded, instrumentation is turned on in both (callgrind_control -i
# on) and a fixed workload runs: --transfers transfers between 100 accounts, in non-atomic
# `POST /v1/transfers/batch` requests of --batch items (--batch 1: single `POST /v1/transfers`),
# from --clients concurrent clients; then instrumentation is turned off and the processes stop.
# Printed: instructions (Ir) per transfer for the lognode and the gateway, and their sum.
# Everything the processes ran while instrumented counts (timers and Raft ticks too), so figures
# compare only at the same options. Files go to target/callgrind/ (callgrind_annotate them for
# the hot spots). A run of 10,000 batched transfers takes 1-3 minutes, most of it the release
# build and valgrind's start-up. LEDGER_BIN_DIR=<dir> runs the lognode and gateway found there
# instead of building them (to compare two builds).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
TRANSFERS=10000
BATCH=100
CLIENTS=1
while [ $# -gt 0 ]; do
  case "$1" in
    --transfers) TRANSFERS=$2; shift 2 ;;
    --batch) BATCH=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    -h|--help) sed -n 2,20p "$0"; exit 0 ;;
    *) echo "callgrind.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
for v in "$TRANSFERS" "$BATCH" "$CLIENTS"; do
  case "$v" in ''|*[!0-9]*|0) echo "callgrind.sh: --transfers, --batch and --clients take positive numbers" >&2; exit 2 ;; esac
done
[ "$BATCH" -le 8000 ] || { echo "callgrind.sh: --batch is at most 8000 (the gateway's batch limit)" >&2; exit 2; }
for tool in valgrind callgrind_control python3 curl; do
  command -v "$tool" >/dev/null 2>&1 || { echo "callgrind.sh: $tool is needed (Debian: valgrind, python3, curl)" >&2; exit 2; }
done
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=$TARGET/callgrind
D=$OUT/data
GRPC=127.0.0.1:17301
GOSSIP=127.0.0.1:17302
HTTP=127.0.0.1:17380
for a in $GRPC $GOSSIP $HTTP; do
  if ss -Hltn "sport = :${a##*:}" 2>/dev/null | grep -q .; then echo "callgrind.sh: port ${a##*:} is in use" >&2; exit 1; fi
done

if [ -n "${LEDGER_BIN_DIR:-}" ]; then
  # Another build's lognode and gateway (an A/B of two commits), not built here.
  B=$LEDGER_BIN_DIR
  echo "== lognode and gateway from $B (LEDGER_BIN_DIR)"
else
  echo "== building (release)"
  cargo build --release --locked -q -p lognode --bin lognode -p gateway --bin gateway
  B=$TARGET/release
fi
rm -rf "$OUT"; mkdir -p "$D"

source "$ROOT/loadtest/lib.sh"
# Under valgrind a graceful stop (and the dump it writes) takes a while: at most 60 s.
stop_all() { stop_pids 600; }
trap stop_all EXIT

CG=(valgrind --tool=callgrind --instr-atstart=no --trace-children=no)
RUST_LOG=warn "${CG[@]}" --callgrind-out-file="$OUT/lognode.%p.cg" \
  "$B/lognode" --id 1 --data-dir "$D/node1" --grpc-addr "$GRPC" --gossip-addr "$GOSSIP" \
  --gossip-profile local --fsync always --bootstrap > "$OUT/lognode.log" 2>&1 &
PIDS+=($!)
RUST_LOG=warn "${CG[@]}" --callgrind-out-file="$OUT/gateway.%p.cg" \
  "$B/gateway" --auth none --listen "$HTTP" --lognodes "$GRPC" > "$OUT/gateway.log" 2>&1 &
PIDS+=($!)

echo "== waiting for a leader (at most 120 s; valgrind is slow to start)"
ready=0
for _ in $(seq 1 1200); do
  if curl -fs "http://$HTTP/readyz" >/dev/null 2>&1; then ready=1; break; fi
  sleep 0.1
done
[ $ready = 1 ] || { echo "callgrind.sh: the node or the gateway did not become ready; logs in $OUT" >&2; exit 1; }

python3 - "$HTTP" setup "$TRANSFERS" "$BATCH" "$CLIENTS" <<'PY'
import sys, json, urllib.request
http = sys.argv[1]
def post(path, body):
    req = urllib.request.Request(f"http://{http}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=120) as r:
        return r.status
for i in range(100):
    post("/v1/accounts", {"id": f"cg{i}", "currency": "USD", "allow_overdraft": i == 0})
# Fund every account from cg0 (the only one allowed to overdraw) so that the measured transfers,
# which move at most 10 units each between any two accounts, never run out of funds.
for i in range(1, 100):
    post("/v1/transfers", {"id": f"cg-fund{i}", "debit_account_id": "cg0", "credit_account_id": f"cg{i}",
                           "amount": 1_000_000_000, "currency": "USD"})
print("   100 accounts created and funded")
PY

echo "== collecting: $TRANSFERS transfers, batches of $BATCH, $CLIENTS clients"
for p in "${PIDS[@]}"; do callgrind_control -i on "$p" > /dev/null 2>&1; done
t0=$(date +%s.%N)
python3 - "$HTTP" run "$TRANSFERS" "$BATCH" "$CLIENTS" <<'PY'
import sys, json, urllib.request, threading
http, _, n, batch, clients = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
def post(path, body):
    req = urllib.request.Request(f"http://{http}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=300) as r:
        return json.loads(r.read())
def transfer(k):
    a, b = k % 99 + 1, (k * 7 + 3) % 99 + 1
    if a == b:
        b = b % 99 + 1
    return {"id": f"cg-t{k}", "debit_account_id": f"cg{a}", "credit_account_id": f"cg{b}",
            "amount": 1 + k % 10, "currency": "USD"}
requests = [list(range(s, min(n, s + batch))) for s in range(0, n, batch)]
errors = []
def worker(w):
    for i in range(w, len(requests), clients):
        ks = requests[i]
        try:
            if batch == 1:
                r = post("/v1/transfers", transfer(ks[0]))
                if r.get("status") not in ("posted", "pending"):
                    errors.append(r)
            else:
                r = post("/v1/transfers/batch", {"atomic": False, "transfers": [transfer(k) for k in ks]})
                errors.extend(x for x in r["results"] if x["result"] == "failed")
        except Exception as e:  # noqa: BLE001 - any failure makes the count meaningless
            errors.append(str(e))
threads = [threading.Thread(target=worker, args=(w,)) for w in range(clients)]
for t in threads: t.start()
for t in threads: t.join()
if errors:
    sys.exit(f"callgrind.sh: {len(errors)} transfers failed, e.g. {errors[0]}")
PY
t1=$(date +%s.%N)
for p in "${PIDS[@]}"; do callgrind_control -i off "$p" > /dev/null 2>&1; done
stop_all

python3 - "$OUT" "$TRANSFERS" "$BATCH" "$CLIENTS" "$t0" "$t1" <<'PY'
import sys, glob, re
out, n, batch, clients, t0, t1 = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5]), float(sys.argv[6])
total = 0
rows = []
for name in ("lognode", "gateway"):
    ir = 0
    files = glob.glob(f"{out}/{name}.*.cg")
    if not files:
        sys.exit(f"callgrind.sh: no callgrind output for {name} in {out} (did it stop cleanly?)")
    for f in files:
        for line in open(f):
            m = re.match(r"(?:summary|totals): (\d+)", line)
            if m:
                ir = max(ir, int(m.group(1)))
    if ir == 0:
        sys.exit(f"callgrind.sh: {name} counted no instructions (was instrumentation turned on?)")
    rows.append((name, ir))
    total += ir
print(f"== instructions per transfer ({n} transfers, batch {batch}, {clients} clients; {t1 - t0:.0f} s under valgrind)")
for name, ir in rows:
    print(f"   {name:8} {ir / n:12,.0f} Ir/transfer  ({ir:,} Ir)")
print(f"   {'both':8} {total / n:12,.0f} Ir/transfer")
print(f"RESULT callgrind transfers={n} batch={batch} clients={clients} " + " ".join(f"{name}_ir={ir / n:.0f}" for name, ir in rows) + f" total_ir={total / n:.0f}")
PY

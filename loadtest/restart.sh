#!/usr/bin/env bash
# How state grows with history, and what a restart costs (issue 20). Starts `ledger dev` (3
# lognodes, fsync on, no projector) on a fresh data dir, loads it with the Rust load generator
# (batched transfers) while sampling each lognode's RSS every 10 s, prints the rate of the first
# and last minute, each lognode's RSS and disk (state store, Raft log, events log), stops the
# cluster (SIGINT), starts it again on the same data and times how long until a strong read is
# served; with --add-node, then starts a 4th lognode (with the gossip key and a certificate of
# the cluster's CA, made with openssl) and times until it has caught up (by snapshot when the log
# behind the leader's checkpoint was purged). Per node it reports RSS's mean per third of the run
# and its slope over the last two-thirds, the same less the store's block cache, and the live
# heap that lognode logs ("allocator memory").
#
#   loadtest/restart.sh [--duration 40] [--concurrency 32] [--scenario transfers-batch] [--ids scattered|ordered] [--add-node]
#   loadtest/restart.sh --reuse [--add-node]   # no load: restart (and add a node to) the last run's data
#
# Needs the release binaries (built here). Data and logs: target/restart-bench/ (RSS samples in
# rss.tsv). Where the ledger's records live follows lognode's default (`--state-store disk`);
# LEDGER_STATE_STORE=memory in the environment runs the nodes with them in memory. Other lognode
# settings come from the environment too, e.g. LEDGER_RETENTION_BYTES=67108864 (issue 20's
# benchmark: the Raft log purged behind checkpoints down to 64 MiB).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
DURATION=40
CONC=32
SCENARIO=transfers-batch
IDS=scattered
ADD_NODE=
REUSE=
CATCH_UP_MAX_S=1800
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=${2%s}; shift 2 ;;
    --concurrency) CONC=$2; shift 2 ;;
    --scenario) SCENARIO=$2; shift 2 ;;
    --ids) IDS=$2; shift 2 ;;
    --add-node) ADD_NODE=1; shift ;;
    --reuse) REUSE=1; shift ;;
    -h|--help) sed -n 2,20p "$0"; exit 0 ;;
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

# curl with the admin key `ledger dev` made (the gateway asks for API keys).
api() {
  curl -s -H "Authorization: Bearer $(cat "$DATA/admin.key" 2>/dev/null)" "$@"
}

start() {
  "$BIN/ledger" dev --no-projector --listen 127.0.0.1:18080 --port-base 17600 --data-dir "$DATA" "$@" \
    > "$OUT/dev.log" 2>&1 &
  PID=$!
}

NODE4=
SAMPLER=
stop() {
  if [ -n "$SAMPLER" ]; then kill "$SAMPLER" 2>/dev/null || true; SAMPLER=; fi
  if [ -n "$NODE4" ]; then kill -INT "$NODE4" 2>/dev/null || true; wait "$NODE4" 2>/dev/null || true; NODE4=; fi
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
    code=$(api -o /dev/null -w '%{http_code}' "$GATEWAY/v1/accounts/restart-probe?consistency=strong" || true)
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

# Every 10 s, each lognode's RSS in MiB as "seconds node MiB" lines (bounded: the run's
# duration plus a minute).
sample_rss() {
  local t0 now
  t0=$(date +%s)
  echo "$t0" > "$OUT/rss.t0"
  for _ in $(seq 1 $((DURATION / 10 + 7))); do
    now=$(($(date +%s) - t0))
    for pid in $(pgrep -f "$BIN/lognode" || true); do
      local id rss
      id=$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | sed -n 's/.*--id \([0-9]*\).*/\1/p')
      rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
      [ -n "$id" ] && echo "$now $id $((rss / 1024))"
    done
    sample_sys "$now" >> "$OUT/sys.tsv"
    sleep 10
  done
}

# One line of what the machine did, for telling the ledger's own slowdown from the machine's:
# seconds, dirty and writeback page-cache KiB, and the CPU ticks (user + system) so far of the
# lognodes together, of the gateway and of the load generator.
sample_sys() {
  local dirty wb ln gw lg
  dirty=$(awk '/^Dirty:/ {print $2}' /proc/meminfo)
  wb=$(awk '/^Writeback:/ {print $2}' /proc/meminfo)
  ticks() { local t=0 pid; for pid in $(pgrep -f "$1" || true); do
      t=$((t + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0))); done; echo "$t"; }
  ln=$(ticks "$BIN/lognode")
  gw=$(ticks "$BIN/gateway")
  lg=$(ticks "$BIN/loadtest")
  echo "$1 $dirty $wb $ln $gw $lg"
}

disk() {
  for d in "$DATA"/node*/; do
    [ -d "$d" ] || continue
    printf '%s: total %s, raft log %s, events %s, snapshot %s, state store %s\n' "$(basename "$d")" \
      "$(du -sh "$d" | cut -f1)" "$(du -sh "$d/log" 2>/dev/null | cut -f1)" \
      "$(du -sh "$d/events" 2>/dev/null | cut -f1)" "$(du -sh "$d/log/snapshot" 2>/dev/null | cut -f1)" \
      "$(du -sh "$d/state" 2>/dev/null | cut -f1)"
  done
}

status() {
  api "$GATEWAY/v1/cluster" || true
  echo
}

if [ -n "$REUSE" ]; then
  [ -d "$DATA/node1" ] || { echo "restart.sh: --reuse needs the data of an earlier run in $DATA" >&2; exit 2; }
  rm -rf "$DATA/node4"
else
echo "== fresh cluster, $SCENARIO, $CONC clients, ${DURATION}s, $IDS ids"
start --fresh
wait_strong_read > /dev/null
: > "$OUT/sys.tsv"
sample_rss > "$OUT/rss.tsv" &
SAMPLER=$!
LEDGER_KEY=$(cat "$DATA/admin.key") "$BIN/loadtest" --gateway "$GATEWAY" --scenario "$SCENARIO" --concurrency "$CONC" --duration "${DURATION}s" \
  --ids "$IDS" --report "$OUT/load.json" | tail -n 12
kill "$SAMPLER" 2>/dev/null || true
SAMPLER=
sleep 2
echo "== after the load"
nodes
disk
status
python3 - "$OUT/load.json" "$OUT/rss.tsv" "$DATA" "$OUT/sys.tsv" "$OUT/rss.t0" <<'PY'
import datetime, json, os, re, sys
report, rss_file, data, sys_file, t0_file = sys.argv[1:6]
r = json.load(open(report))
tl = [s.get("transfers", 0) for s in r.get("timeline", [])]
total = sum(tl)
if len(tl) >= 120:
    first, last = sum(tl[:60]) / 60, sum(tl[-60:]) / 60
    print(f"RESULT rate: first minute {first:,.0f}/s, last minute {last:,.0f}/s ({(last / first - 1) * 100:+.0f} %)")
    minutes = [sum(tl[i:i + 60]) / 60 for i in range(0, len(tl) - 59, 60)]
    print("RESULT rate by whole minute (thousands/s): " + " ".join(f"{m / 1000:.1f}" for m in minutes))
# CPU per transfer by minute, from the ticks sampled every 10 s (sampling starts with the load).
hz = os.sysconf("SC_CLK_TCK")
srows = [tuple(map(int, l.split())) for l in open(sys_file) if len(l.split()) == 6]
if len(srows) > 6 and tl:
    cells, dirty = [], max(r[1] for r in srows) // 1024
    for a, b in zip(srows, srows[6::6]):
        n = sum(tl[a[0]:b[0]])
        if n:
            cells.append("/".join(f"{(b[i] - a[i]) / hz * 1e6 / n:.1f}" for i in (3, 4, 5)))
    print("RESULT CPU us per transfer by minute (lognodes/gateway/loadgen): " + " ".join(cells))
    print(f"RESULT page cache: dirty at most {dirty} MiB")
rows = [tuple(map(int, l.split())) for l in open(rss_file) if len(l.split()) == 3]
end = max((t for t, _, _ in rows), default=0)
for node in sorted({n for _, n, _ in rows}):
    mine = [(t, m) for t, n, m in rows if n == node]
    tail = [m for t, m in mine if t >= end / 3]
    print(f"RESULT lognode {node} RSS: max {max(m for _, m in mine)} MiB; last two-thirds {min(tail, default=0)}-{max(tail, default=0)} MiB; "
          f"samples {' '.join(str(m) for _, m in mine)}")
# Whether RSS is flat: its mean per third of the run and its least-squares slope over the last
# two-thirds; and the same for RSS less the store's block cache, which fills slowly up to
# --state-cache-bytes (its size at each checkpoint, from the node's log), so that a cache still
# filling is told from memory that grows with history.
def slope(pts):
    if len(pts) < 3:
        return 0.0
    mx, my = sum(x for x, _ in pts) / len(pts), sum(y for _, y in pts) / len(pts)
    den = sum((x - mx) ** 2 for x, _ in pts)
    return sum((x - mx) * (y - my) for x, y in pts) / den * 60 if den else 0.0
def thirds(pts):
    cells = []
    for k in range(3):
        part = [y for x, y in pts if k * end / 3 <= x < (k + 1) * end / 3 or (k == 2 and x == end)]
        cells.append(f"{sum(part) / len(part):.0f}" if part else "-")
    return "/".join(cells)
t0 = int(open(t0_file).read()) if os.path.exists(t0_file) else None
for node in sorted({n for _, n, _ in rows}):
    mine = [(t, m) for t, n, m in rows if n == node and m > 0]
    tail = [(t, m) for t, m in mine if t >= end / 3]
    line = f"RESULT lognode {node} RSS flat?: mean per third {thirds(mine)} MiB, slope over the last two-thirds {slope(tail):+.1f} MiB/min"
    # One pass over the node's log: the block cache's size at each checkpoint, and the live heap
    # that lognode logs every 30 s ("allocator memory").
    cache, live = [], []
    log = os.path.join(data, "logs", f"node{node}.log")
    if t0 is not None and os.path.exists(log):
        for l in open(log, errors="replace"):
            c = re.search(r"checkpoint taken.* cache_bytes=(\d+)", l)
            a = re.search(r"allocator memory allocated_mib=(\d+)", l)
            if c or a:
                at = datetime.datetime.fromisoformat(l.split()[0].replace("Z", "+00:00")).timestamp() - t0
                if c:
                    cache.append((at, int(c.group(1)) / 2**20))
                elif 0 <= at <= end:
                    live.append((at, int(a.group(1))))
    if cache:
        less = []
        for t, m in mine:
            before = [c for at, c in cache if at <= t]
            if before:
                less.append((t, m - before[-1]))
        less_tail = [(t, m) for t, m in less if t >= end / 3]
        line += (f"; block cache {cache[0][1]:.0f} -> {max(c for _, c in cache):.0f} MiB; RSS less the cache: mean per third "
                 f"{thirds(less)} MiB, slope {slope(less_tail):+.1f} MiB/min")
    # What the allocator holds live, whole and less the cache.
    if live:
        live_less = [(t, a - ([c for at, c in cache if at <= t] or [0])[-1]) for t, a in live]
        line += (f"; allocated (live heap): mean per third {thirds(live)} MiB, slope {slope([p for p in live if p[0] >= end / 3]):+.1f} MiB/min"
                 f", less the cache {thirds(live_less)} MiB, slope {slope([p for p in live_less if p[0] >= end / 3]):+.1f} MiB/min")
    print(line)
def du(p):
    n = 0
    for root, _, files in os.walk(p):
        for f in files:
            try:
                n += os.lstat(os.path.join(root, f)).st_blocks * 512
            except OSError:
                pass
    return n
if total:
    for d in sorted(os.listdir(data)):
        nd = os.path.join(data, d)
        if not d.startswith("node") or not os.path.isdir(nd):
            continue
        state, log = du(os.path.join(nd, "state")), du(os.path.join(nd, "log"))
        print(f"RESULT {d}: state {state / 1e6:,.0f} MB + Raft log {log / 1e6:,.0f} MB = {(state + log) / total:,.0f} B per transfer "
              f"({total:,} transfers)")
PY
fi
echo "== restart"
stop
start
secs=$(wait_strong_read)
echo "RESULT restart to a served strong read: ${secs} s"
nodes
status
disk
if [ -n "$ADD_NODE" ]; then
  echo "== a 4th lognode joins"
  target=$(api "$GATEWAY/v1/cluster" | python3 -c 'import json,sys; print(max(n.get("last_applied", 0) for n in json.load(sys.stdin)["nodes"]))')
  t0=$(date +%s.%N)
  # What `ledger dev` gave its nodes: the gossip key, and a certificate of its CA (made here for
  # node 4 like the others': CN node4, valid for lognode, localhost and 127.0.0.1).
  secure=()
  if [ -f "$DATA/gossip.key" ]; then secure+=(--gossip-key-file "$DATA/gossip.key"); fi
  if [ -f "$DATA/tls/ca.key" ]; then
    if [ ! -f "$DATA/tls/node4.pem" ]; then
      (umask 077
       openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=node4 \
         -keyout "$DATA/tls/node4.key" -out "$DATA/tls/node4.csr" 2>/dev/null
       openssl x509 -req -in "$DATA/tls/node4.csr" -CA "$DATA/tls/ca.pem" -CAkey "$DATA/tls/ca.key" \
         -CAcreateserial -days 30 -out "$DATA/tls/node4.pem" -extfile <(printf '%s\n' \
         'subjectAltName=DNS:lognode,DNS:localhost,IP:127.0.0.1' 'keyUsage=digitalSignature' \
         'extendedKeyUsage=serverAuth,clientAuth') 2>/dev/null) \
        || { echo "restart.sh: openssl could not make node 4's certificate from $DATA/tls/ca.key" >&2; exit 1; }
    fi
    secure+=(--tls-ca "$DATA/tls/ca.pem" --tls-cert "$DATA/tls/node4.pem" --tls-key "$DATA/tls/node4.key")
  fi
  "$BIN/lognode" --id 4 --data-dir "$DATA/node4" --grpc-addr 127.0.0.1:17604 --gossip-addr 127.0.0.1:17704 \
    --gossip-profile local --fsync always --voters 3 --join 127.0.0.1:17701 "${secure[@]}" > "$OUT/node4.log" 2>&1 &
  NODE4=$!
  # Polled every second up to CATCH_UP_MAX_S (a new node loads the leader's whole store).
  caught=
  PEAK4=0
  : > "$OUT/node4-rss.tsv"
  deadline=$(($(date +%s) + CATCH_UP_MAX_S))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    kill -0 "$NODE4" 2>/dev/null || { echo "lognode 4 exited:" >&2; tail -5 "$OUT/node4.log" >&2; break; }
    rss4=$(awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$NODE4/status" 2>/dev/null || echo 0)
    [ "${rss4:-0}" -gt "$PEAK4" ] && PEAK4=$rss4
    echo "$(($(date +%s) - ${t0%.*})) ${rss4:-0}" >> "$OUT/node4-rss.tsv"
    applied=$(api "$GATEWAY/v1/cluster" | python3 -c 'import json,sys
n=[n for n in json.load(sys.stdin)["nodes"] if n["id"]==4]
print(n[0].get("last_applied", 0) if n else 0)' 2>/dev/null || echo 0)
    if [ "${applied:-0}" -ge "$target" ]; then caught=1; break; fi
    sleep 1
  done
  if [ -n "$caught" ]; then
    echo "RESULT a 4th lognode caught up to index $target in $(echo "$(date +%s.%N) - $t0" | bc) s"
  else
    echo "RESULT a 4th lognode did not catch up to index $target within $CATCH_UP_MAX_S s"
  fi
  echo "RESULT lognode 4 peak RSS while catching up: $PEAK4 MiB (sampled every second: $OUT/node4-rss.tsv)"
  sleep 1
  grep -h "snapshot installed" "$OUT/node4.log" | tail -1 || echo "(lognode 4 logged no snapshot install: it caught up from the log)"
  nodes
  disk
fi

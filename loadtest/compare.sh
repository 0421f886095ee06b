#!/usr/bin/env bash
# Side by side on this machine, back to back: Ledger's transfer scenario (the Rust load
# generator) and pgbench's built-in tpcb-like script (one money movement per transaction), at the
# same concurrency; prints both RESULT lines, a table and the ratio.
#
#   loadtest/compare.sh [--gateway http://127.0.0.1:8080 | --start-cluster] [--concurrency 64]
#                       [--duration 20] [--scenarios "transfers transfers-batch"]
#
# --start-cluster builds the release binaries and starts 3 lognodes (fsync on) and a gateway on
# 127.0.0.1 (ports 17101.., data under target/compare-cluster), and stops them before pgbench
# runs. Without it, a gateway must already be running (e.g. `cargo run --release --bin ledger -- dev`).
# pgbench runs against a fresh PostgreSQL of its own, never the machine's shared one (whose speed
# depends on whatever else runs there): its own `initdb` under target/compare-pg (through
# `runuser -u postgres` when run as root), default durability (fsync=on, synchronous_commit=on;
# printed), on 127.0.0.1:$COMPARE_PGPORT (default 17432); `pgbench -i -s 10`, a warm-up of the
# same length as the measured run, then `-M prepared -c C -j 2 -T D`. Each side reports
# throughput, p50/p99, CPU seconds per process and CPU microseconds per transfer (Ledger: all
# lognodes, the gateway and the generator, only with --start-cluster; pgbench: the postmaster,
# its backends and background processes, and pgbench itself). Results and logs go to
# target/compare/. With --start-cluster, LEDGER_BIN_DIR=<dir> runs the lognode and gateway found
# there instead of building them (to compare two builds).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
GATEWAY=http://127.0.0.1:8080
START=0
CONC=64
DURATION=20
SCENARIOS="transfers"
while [ $# -gt 0 ]; do
  case "$1" in
    --gateway) GATEWAY=$2; shift 2 ;;
    --start-cluster) START=1; shift ;;
    --concurrency) CONC=$2; shift 2 ;;
    --duration) DURATION=${2%s}; shift 2 ;;
    --scenarios) SCENARIOS=$2; shift 2 ;;
    -h|--help) sed -n 2,21p "$0"; exit 0 ;;
    *) echo "compare.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$DURATION" in ''|*[!0-9]*) echo "compare.sh: --duration takes whole seconds, e.g. 20 or 20s" >&2; exit 2 ;; esac
case "$CONC" in ''|*[!0-9]*) echo "compare.sh: --concurrency takes a number" >&2; exit 2 ;; esac
PGPORT_OWN=${COMPARE_PGPORT:-17432}
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
for tool in initdb pg_ctl pgbench psql; do
  [ -x "$PGBIN/$tool" ] || { echo "compare.sh: $tool not found in '$PGBIN' (install PostgreSQL's server binaries or set PGBIN)" >&2; exit 2; }
done
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=$TARGET/compare
mkdir -p "$OUT"
RESULTS=$OUT/results.txt
: > "$RESULTS"
CPU_FILE=$OUT/cpu.txt   # "<scenario> <CPU-s all processes> <operations>", one line per run
: > "$CPU_FILE"

source "$ROOT/loadtest/lib.sh"
stop_cluster() { stop_pids; }
PGD=$TARGET/compare-pg
AS_PG=()
[ "$(id -u)" = 0 ] && AS_PG=(runuser -u postgres --)
stop_pg() {
  [ -f "$PGD/data/postmaster.pid" ] && "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$PGD/data" -m fast -w stop >/dev/null 2>&1 || true
}
trap 'stop_cluster; stop_pg' EXIT

echo "== building (release)"
if [ $START = 1 ] && [ -z "${LEDGER_BIN_DIR:-}" ]; then
  cargo build --release --locked -q -p loadtest --bin loadtest -p lognode --bin lognode -p gateway --bin gateway
else
  cargo build --release --locked -q -p loadtest
fi
B=$TARGET/release
# Another build's lognode and gateway (an A/B of two commits), not built here.
NB=${LEDGER_BIN_DIR:-$B}
[ -n "${LEDGER_BIN_DIR:-}" ] && echo "== lognode and gateway from $NB (LEDGER_BIN_DIR)"

# The disk's state right now: these machines are shared, and other builds' writes can make one
# fdatasync 20x slower than when the disk is quiet; every number below depends on it.
PG_TEST_FSYNC=$(ls -d /usr/lib/postgresql/*/bin/pg_test_fsync 2>/dev/null | sort -V | tail -1 || true)
disk_check() {
  echo "== disk now: one 8 kB write + fdatasync, 2 s (pg_test_fsync); load average $(cut -d' ' -f1-3 /proc/loadavg)"
  if [ -n "$PG_TEST_FSYNC" ]; then
    "$PG_TEST_FSYNC" -f "$OUT/pg_test_fsync.tmp" -s 2 2>/dev/null | grep -E '^ +fdatasync' | head -1 || true
    rm -f "$OUT/pg_test_fsync.tmp"
  fi
}
disk_check

if [ $START = 1 ]; then
  D=$TARGET/compare-cluster
  rm -rf "$D"; mkdir -p "$D"
  for port in 17101 17102 17103 17201 17202 17203 17080; do
    if ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then echo "port $port is in use" >&2; exit 1; fi
  done
  for i in 1 2 3; do
    args=(--id "$i" --data-dir "$D/node$i" --grpc-addr "127.0.0.1:1710$i" --gossip-addr "127.0.0.1:1720$i" --gossip-profile local --fsync always)
    if [ "$i" = 1 ]; then args+=(--bootstrap); else args+=(--join 127.0.0.1:17201); fi
    RUST_LOG=warn "$NB/lognode" "${args[@]}" > "$D/node$i.log" 2>&1 &
    PIDS+=($!)
    [ "$i" = 1 ] && sleep 1
  done
  RUST_LOG=warn "$NB/gateway" --auth none --listen 127.0.0.1:17080 --lognodes 127.0.0.1:17101,127.0.0.1:17102,127.0.0.1:17103 > "$D/gateway.log" 2>&1 &
  PIDS+=($!)
  GATEWAY=http://127.0.0.1:17080
  echo "== waiting for 3 voters and a leader (at most 60 s)"
  wait_ledger_ready "$GATEWAY" 3 || { echo "the cluster did not become ready; logs in $D" >&2; exit 1; }
fi

# Where the time goes (only for a cluster this script started, whose process ids it knows): CPU
# seconds of each process, fdatasync and fsync calls per lognode (perf tracepoints, when perf can), and
# Raft entries applied (the highest last_applied of /v1/cluster) against transfers made.
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
applied() {
  curl -fs "$GATEWAY/v1/cluster" | python3 -c 'import sys,json; print(max(n["last_applied"] for n in json.load(sys.stdin)["nodes"]))'
}
PERF_OK=0
if [ $START = 1 ] && command -v perf >/dev/null 2>&1 &&
   perf stat -e syscalls:sys_enter_fdatasync -p "${PIDS[0]}" -- sleep 0.1 >/dev/null 2>&1; then
  PERF_OK=1
fi

for s in $SCENARIOS; do
  echo "== ledger: $s, $CONC clients, ${DURATION}s ($GATEWAY)"
  PERFS=()
  if [ $START = 1 ]; then
    before=(); for p in "${PIDS[@]}"; do before+=("$(cpu_ticks "$p")"); done
    a0=$(applied)
    if [ $PERF_OK = 1 ]; then
      for i in 0 1 2; do
        perf stat -x, -e syscalls:sys_enter_fdatasync,syscalls:sys_enter_fsync -p "${PIDS[$i]}" -o "$OUT/perf-$s-node$((i + 1)).csv" &
        PERFS+=($!)
      done
    fi
  fi
  /usr/bin/time -f "%U %S %e" -o "$OUT/time-$s.txt" \
    "$B/loadtest" --gateway "$GATEWAY" --scenario "$s" --concurrency "$CONC" --duration "${DURATION}s" \
    --report "$OUT/ledger-$s.json" --chart "$OUT/ledger-$s.svg" | tee "$OUT/ledger-$s.txt"
  grep '^RESULT ' "$OUT/ledger-$s.txt" >> "$RESULTS"
  if [ $START = 1 ]; then
    for p in "${PERFS[@]:-}"; do [ -n "$p" ] && kill -INT "$p" 2>/dev/null || true; done
    for p in "${PERFS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
    a1=$(applied)
    after=(); for p in "${PIDS[@]}"; do after+=("$(cpu_ticks "$p")"); done
    python3 - "$OUT" "$s" "$a0" "$a1" "$(getconf CLK_TCK)" "${before[*]}" "${after[*]}" <<'PY'
import sys, json, os
out, s, a0, a1, hz = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
before = [int(x) for x in sys.argv[6].split()]
after = [int(x) for x in sys.argv[7].split()]
r = json.load(open(f"{out}/ledger-{s}.json"))
wall = float(open(f"{out}/time-{s}.txt").read().split()[2])
u, sy = (float(x) for x in open(f"{out}/time-{s}.txt").read().split()[:2])
names = ["lognode 1", "lognode 2", "lognode 3", "gateway"]
cpu = {n: (a - b) / hz for n, a, b in zip(names, after, before)}
cpu["loadtest"] = u + sy
total = sum(cpu.values())
print(f"-- where the time goes ({s}; {wall:.1f} s wall incl. setup and check, 2 cores = {2 * wall:.1f} CPU-s)")
# The generator's CPU and wall time include its setup and final check; the nodes' CPU does too
# (account creation, the check's reads): a slight over-estimate per transfer, never an under-one.
with open(f"{out}/cpu.txt", "a") as f:
    f.write(f"ledger-{s} {total:.3f} {r['transfers']}\n")
for n, c in cpu.items():
    print(f"   {n:10} {c:7.1f} CPU-s  {100 * c / wall:5.1f} % of one core  {100 * c / total:5.1f} % of all CPU used")
entries = a1 - a0
setup = 101 + (1 if s == "wallet" else 0)   # account creations (+ the funding batch)
moved = r["transfers"]
print(f"   all processes {total:.1f} CPU-s = {1e6 * total / max(1, r['transfers']):.1f} CPU-us per transfer ({r['transfers']} transfers)")
print(f"   Raft entries applied {entries} (about {setup} of them setup): "
      f"{moved / max(1, entries - setup):.1f} transfers per entry, {max(0, entries - setup) / r['duration_s']:.0f} entries/s")
for i in (1, 2, 3):
    f = f"{out}/perf-{s}-node{i}.csv"
    if os.path.exists(f):
        counts = {}
        for l in open(f):
            p = l.split(",")
            if len(p) > 2 and p[0].isdigit():
                counts[p[2].split("sys_enter_")[-1]] = int(p[0])
        if counts:
            print(f"   lognode {i}: " + ", ".join(f"{n} {c} calls ({c / wall:.0f}/s)" for n, c in sorted(counts.items())))
PY
  fi
done
stop_cluster

disk_check
echo "== pgbench tpcb-like, $CONC clients, ${DURATION}s, on a fresh PostgreSQL of its own (127.0.0.1:$PGPORT_OWN, $PGD)"
if ss -Hltn "sport = :$PGPORT_OWN" 2>/dev/null | grep -q .; then
  echo "port $PGPORT_OWN is in use (set COMPARE_PGPORT)" >&2; exit 1
fi
stop_pg
rm -rf "$PGD"; mkdir -p "$PGD/sock"
[ ${#AS_PG[@]} -gt 0 ] && chown -R postgres:postgres "$PGD"
if ! "${AS_PG[@]}" test -w "$PGD"; then
  echo "compare.sh: user postgres cannot write $PGD (a parent directory is not searchable); set CARGO_TARGET_DIR to a place it can reach" >&2
  exit 1
fi
"${AS_PG[@]}" "$PGBIN/initdb" -D "$PGD/data" -U postgres -A trust -E UTF8 --no-locale > "$PGD/initdb.log" 2>&1 ||
  { echo "compare.sh: initdb failed; see $PGD/initdb.log" >&2; exit 1; }
cat >> "$PGD/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PGPORT_OWN
unix_socket_directories = '$PGD/sock'
max_connections = $((CONC + 20))
# durability left at its defaults: fsync = on, synchronous_commit = on, full_page_writes = on
CONF
"${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$PGD/data" -l "$PGD/server.log" -w start > /dev/null ||
  { echo "compare.sh: PostgreSQL did not start; see $PGD/server.log" >&2; exit 1; }
PGPID=$(head -1 "$PGD/data/postmaster.pid")
PSQL=("$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT_OWN" -U postgres -At)
"${PSQL[@]}" -c "select version()" postgres
"${PSQL[@]}" -c "select name||'='||setting from pg_settings where name in ('fsync','synchronous_commit','wal_sync_method','full_page_writes','shared_buffers','max_connections')" postgres | tr '\n' ' '; echo
PGB=("$PGBIN/pgbench" -h 127.0.0.1 -p "$PGPORT_OWN" -U postgres)
"${PGB[@]}" -i -s 10 -q postgres > "$OUT/pgbench-init.log" 2>&1
echo "   warm-up: ${DURATION}s"
"${PGB[@]}" -M prepared -c "$CONC" -j 2 -T "$DURATION" postgres > /dev/null 2>&1
# CPU of the whole server: the postmaster's own and its reaped children's time (backends that
# ended), plus every live child's (checkpointer, WAL writer, ...). A child that ends between the
# two samples moves from the second sum to the first, so the difference stays exact.
pg_cpu_ticks() {
  local t c
  t=$(awk '{print $14+$15+$16+$17}' "/proc/$PGPID/stat")
  for c in $(pgrep -P "$PGPID"); do t=$((t + $(awk '{print $14+$15}' "/proc/$c/stat" 2>/dev/null || echo 0))); done
  echo "$t"
}
sleep 0.5   # let the warm-up's backends end and be reaped
pg0=$(pg_cpu_ticks)
LD=$OUT/pgbench-log; rm -rf "$LD"; mkdir -p "$LD"
(cd "$LD" && /usr/bin/time -f "%U %S %e" -o "$OUT/time-pgbench.txt" \
  "${PGB[@]}" -M prepared -c "$CONC" -j 2 -T "$DURATION" --log --log-prefix=tx postgres > summary.txt 2>&1)
sleep 0.5
pg1=$(pg_cpu_ticks)
python3 - "$LD" "$CONC" "$OUT" "$pg0" "$pg1" "$(getconf CLK_TCK)" >> "$RESULTS" <<'PY'
import sys, glob, re
d, c, out = sys.argv[1:4]
pg0, pg1, hz = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
s = open(d + "/summary.txt").read()
tps = float(re.search(r"tps = ([\d.]+) \(without initial connection time\)", s).group(1))
txs = int(re.search(r"number of transactions actually processed: (\d+)", s).group(1))
lat = []
for f in glob.glob(d + "/tx.*"):
    for line in open(f):
        lat.append(int(line.split()[2]))   # 3rd column: transaction latency in microseconds
lat.sort()
q = lambda x: lat[min(len(lat) - 1, int(x * len(lat)))] / 1000
fail = re.search(r"number of failed transactions: (\d+)", s)
u, sy, wall = (float(x) for x in open(f"{out}/time-pgbench.txt").read().split()[:3])
server, client = (pg1 - pg0) / hz, u + sy
total = server + client
with open(f"{out}/cpu.txt", "a") as f:
    f.write(f"pgbench-tpcb-like {total:.3f} {txs}\n")
print(f"-- where the time goes (pgbench; {wall:.1f} s wall, 2 cores = {2 * wall:.1f} CPU-s)", file=sys.stderr)
print(f"   postgres   {server:7.1f} CPU-s (postmaster, backends, background processes)", file=sys.stderr)
print(f"   pgbench    {client:7.1f} CPU-s", file=sys.stderr)
print(f"   all processes {total:.1f} CPU-s = {1e6 * total / max(1, txs):.1f} CPU-us per transaction ({txs} transactions)", file=sys.stderr)
print(f"RESULT pgbench-tpcb-like conc={c} run=1 tput={tps:.1f} p50_ms={q(0.5):.3f} p90_ms={q(0.9):.3f} p99_ms={q(0.99):.3f} p999_ms={q(0.999):.3f} errors={fail.group(1) if fail else 0}")
PY
rm -f "$LD"/tx.*
stop_pg

echo
echo "== side by side ($CONC clients, ${DURATION}s each, same machine, back to back)"
python3 - "$RESULTS" "$CPU_FILE" <<'PY'
import sys
cpu = {}
for line in open(sys.argv[2]):
    n, c, ops = line.split()
    cpu[n] = 1e6 * float(c) / max(1, int(ops))
rows = []
for line in open(sys.argv[1]):
    t = line.split()
    kv = dict(x.split("=", 1) for x in t[2:])
    rows.append((t[1], float(kv["tput"]), kv["p50_ms"], kv["p99_ms"], kv["errors"]))
pg = [r for r in rows if r[0].startswith("pgbench")]
base = pg[0][1] if pg else None
print(f"| {'what':28} | {'per second':>12} | {'p50 ms':>8} | {'p99 ms':>8} | errors | vs pgbench | CPU us/op |")
print(f"|{'-'*30}|{'-'*14}|{'-'*10}|{'-'*10}|--------|------------|-----------|")
for name, tput, p50, p99, err in rows:
    unit = "tps" if name.startswith("pgbench") else "transfers/s"
    ratio = f"{tput / base:.2f}x" if base else "-"
    c = cpu.get(name)
    cs = f"{c:.1f}" if c is not None else "-"
    print(f"| {name:28} | {tput:>12,.0f} | {float(p50):>8.2f} | {float(p99):>8.2f} | {err:>6} | {ratio:>10} | {cs:>9} |  ({unit})")
PY
echo "(RESULT lines in $RESULTS; reports and charts in $OUT)"

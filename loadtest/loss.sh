#!/usr/bin/env bash
# Throughput under packet loss between nodes, Ledger and etcd side by side in one run (issue 22).
#
#   loadtest/loss.sh [--concurrency 16] [--phase 15] [--losses "5 20"] [--drop-at input|output]
#                    [--skip-etcd]
#
# Three hosts made of network namespaces joined by a bridge (10.198.0.1-3; this shell's namespace
# is 10.198.0.254 on the same bridge). On them: 3 lognodes (release build, fsync on), with the
# gateway and the load generator here; then, after they stop, 3 etcd 3.4 nodes (Debian
# etcd-server) loaded by ../shared/peers' etcd-load at their leader. Each system is measured in
# phases of --phase seconds at --concurrency closed-loop clients: quiet, then each loss in turn.
# Loss is iptables' `statistic` match dropping at random that share of the packets between nodes
# (both directions of every node-to-node link; client traffic is untouched): with --drop-at input
# (the default) each node drops that share of what it receives from the others, as a lossy link
# would, unknown to the sender; with output, of what it sends to them, which the sender's kernel
# learns at once (the send fails) and retries sooner than a lost packet.
# Prints one RESULT line per system and phase, then a table of throughput as a share of the quiet
# phase. Needs root, iproute2, iptables, etcd-server and etcd-client, and protobuf-compiler for
# building etcd-load (`apt-get install -y iptables etcd-server etcd-client protobuf-compiler`).
# Logs and results go to target/loss/. LEDGER_LOGNODE_BIN runs another lognode binary (e.g. an
# older commit's build) in place of this checkout's.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
CONC=16
PHASE=15
LOSSES="5 20"
ETCD=1
DROP_AT=input
while [ $# -gt 0 ]; do
  case "$1" in
    --concurrency) CONC=$2; shift 2 ;;
    --phase) PHASE=${2%s}; shift 2 ;;
    --losses) LOSSES=$2; shift 2 ;;
    --drop-at) DROP_AT=$2; shift 2 ;;
    --skip-etcd) ETCD=0; shift ;;
    -h|--help) sed -n 2,21p "$0"; exit 0 ;;
    *) echo "loss.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$PHASE" in ''|*[!0-9]*) echo "loss.sh: --phase takes whole seconds" >&2; exit 2 ;; esac
case "$CONC" in ''|*[!0-9]*) echo "loss.sh: --concurrency takes a number" >&2; exit 2 ;; esac
case "$DROP_AT" in
  input) CHAIN=INPUT; DIR=-s ;;
  output) CHAIN=OUTPUT; DIR=-d ;;
  *) echo "loss.sh: --drop-at takes input or output" >&2; exit 2 ;;
esac
for l in $LOSSES; do
  case "$l" in ''|*[!0-9]*) echo "loss.sh: --losses takes whole percentages, e.g. \"5 20\"" >&2; exit 2 ;; esac
  [ "$l" -lt 100 ] || { echo "loss.sh: a loss must be below 100 %" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "loss.sh: needs root (network namespaces, iptables)" >&2; exit 2; }
for tool in ip iptables; do
  command -v $tool >/dev/null || { echo "loss.sh: $tool not found (apt-get install -y iproute2 iptables)" >&2; exit 2; }
done
if [ $ETCD = 1 ]; then
  for tool in etcd etcdctl protoc; do
    command -v $tool >/dev/null ||
      { echo "loss.sh: $tool not found (apt-get install -y etcd-server etcd-client protobuf-compiler, or --skip-etcd)" >&2; exit 2; }
  done
fi
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=$TARGET/loss
rm -rf "$OUT"; mkdir -p "$OUT"
RESULTS=$OUT/results.txt
: > "$RESULTS"
B=$TARGET/release
LOGNODE=${LEDGER_LOGNODE_BIN:-$B/lognode}
P=lloss     # namespace and interface prefix
SUB=10.198.0
NODES="1 2 3"

source "$ROOT/loadtest/lib.sh"
stop_all() { stop_pids; }
net_down() {
  for i in $NODES; do ip netns del "${P}n$i" 2>/dev/null || true; done
  ip netns del "${P}br" 2>/dev/null || true
  ip link del "${P}r" 2>/dev/null || true
}
trap 'stop_all; net_down' EXIT
trap 'exit 130' INT TERM

net_up() {
  net_down
  ip netns add "${P}br"
  ip -n "${P}br" link add br0 type bridge
  ip -n "${P}br" link set br0 up
  for i in $NODES; do
    ip netns add "${P}n$i"
    ip link add "${P}v$i" type veth peer name "${P}b$i"
    ip link set "${P}v$i" netns "${P}n$i"
    ip link set "${P}b$i" netns "${P}br"
    ip -n "${P}br" link set "${P}b$i" master br0 up
    ip -n "${P}n$i" addr add "$SUB.$i/24" dev "${P}v$i"
    ip -n "${P}n$i" link set "${P}v$i" up
    ip -n "${P}n$i" link set lo up
  done
  ip link add "${P}r" type veth peer name "${P}rb"
  ip link set "${P}rb" netns "${P}br"
  ip -n "${P}br" link set "${P}rb" master br0 up
  ip addr add "$SUB.254/24" dev "${P}r"
  ip link set "${P}r" up
}

# loss PCT: each node drops PCT % of what it receives from (or sends to) the other nodes; 0
# removes the rules.
loss() {
  for i in $NODES; do
    ip netns exec "${P}n$i" iptables -F "$CHAIN"
    [ "$1" = 0 ] && continue
    for j in $NODES; do
      [ "$i" = "$j" ] && continue
      ip netns exec "${P}n$i" iptables -A "$CHAIN" "$DIR" "$SUB.$j" -m statistic --mode random \
        --probability "$(python3 -c "print($1 / 100)")" -j DROP
    done
  done
}

echo "== building (release)"
cargo build --release --locked -q -p loadtest --bin loadtest -p lognode --bin lognode -p gateway --bin gateway
if [ $ETCD = 1 ]; then
  PEERS=$(cd "$ROOT/../shared/peers" 2>/dev/null && pwd) ||
    { echo "loss.sh: ../shared/peers not found (it builds etcd-load), or use --skip-etcd" >&2; exit 2; }
  PEERS_WORK=${PEERS_WORK:-${TMPDIR:-/tmp}/ledger-peers}
  ETCD_LOAD=$PEERS_WORK/target/release/etcd-load
  [ -x "$ETCD_LOAD" ] || (cd "$PEERS/rust" && cargo build --release --locked -q --target-dir "$PEERS_WORK/target")
fi
net_up
echo "== network: nodes $SUB.1-3 in namespaces ${P}n1-3, this namespace $SUB.254"

# phase SYSTEM LOSS COMMAND...: runs the load for one phase under LOSS % and records its RESULT.
phase() {
  local system=$1 pct=$2; shift 2
  loss "$pct"
  echo "-- $system, ${pct} % loss, $CONC clients, ${PHASE}s"
  "$@" > "$OUT/$system-$pct.txt" 2> "$OUT/$system-$pct.err" || { cat "$OUT/$system-$pct.err" >&2; return 1; }
  loss 0
  local line
  line=$(grep '^RESULT ' "$OUT/$system-$pct.txt" | head -1)
  [ -n "$line" ] || { echo "loss.sh: no RESULT line from $system at $pct %" >&2; cat "$OUT/$system-$pct.err" >&2; return 1; }
  echo "$system loss=$pct $line" | tee -a "$RESULTS"
  # Ledger's generator reads every account back at the end: money conserved, every acknowledged
  # transfer applied once (it exits non-zero otherwise, which stops this script).
  grep '^conservation' "$OUT/$system-$pct.txt" || true
}

# ---- Ledger ----------------------------------------------------------------------------------
D=$OUT/ledger
mkdir -p "$D"
for i in $NODES; do
  args=(--id "$i" --data-dir "$D/node$i" --grpc-addr "$SUB.$i:7101" --gossip-addr "$SUB.$i:7201"
        --gossip-profile local --fsync always)
  if [ "$i" = 1 ]; then args+=(--bootstrap); else args+=(--join "$SUB.1:7201"); fi
  RUST_LOG=warn ip netns exec "${P}n$i" "$LOGNODE" "${args[@]}" > "$D/node$i.log" 2>&1 &
  PIDS+=($!)
  [ "$i" = 1 ] && sleep 1
done
RUST_LOG=warn "$B/gateway" --auth none --listen 127.0.0.1:17380 --lognodes "$SUB.1:7101,$SUB.2:7101,$SUB.3:7101" \
  > "$D/gateway.log" 2>&1 &
PIDS+=($!)
GATEWAY=http://127.0.0.1:17380
wait_ledger_ready "$GATEWAY" 3 || { echo "loss.sh: the Ledger cluster did not become ready in 60 s; logs in $D" >&2; exit 1; }
ledger_load() {
  "$B/loadtest" --gateway "$GATEWAY" --scenario transfers --concurrency "$CONC" --duration "${PHASE}s"
}
ledger_load > "$OUT/ledger-warmup.txt" 2>&1 || true
for pct in 0 $LOSSES; do phase ledger "$pct" ledger_load; done
stop_all

# ---- etcd ------------------------------------------------------------------------------------
if [ $ETCD = 1 ]; then
  E=$OUT/etcd
  mkdir -p "$E"
  CLUSTER="e1=http://$SUB.1:2380,e2=http://$SUB.2:2380,e3=http://$SUB.3:2380"
  for i in $NODES; do
    ip netns exec "${P}n$i" etcd --name "e$i" --data-dir "$E/e$i" \
      --listen-client-urls "http://$SUB.$i:2379" --advertise-client-urls "http://$SUB.$i:2379" \
      --listen-peer-urls "http://$SUB.$i:2380" --initial-advertise-peer-urls "http://$SUB.$i:2380" \
      --initial-cluster "$CLUSTER" --initial-cluster-token loss-bench --initial-cluster-state new \
      --listen-metrics-urls "" > "$E/e$i.log" 2>&1 &
    PIDS+=($!)
  done
  EPS="http://$SUB.1:2379,http://$SUB.2:2379,http://$SUB.3:2379"
  ready=0
  for _ in $(seq 1 100); do
    ETCDCTL_API=3 etcdctl --endpoints="$EPS" endpoint health >/dev/null 2>&1 && { ready=1; break; }
    sleep 0.3
  done
  [ $ready = 1 ] || { echo "loss.sh: etcd did not become healthy; logs in $E" >&2; exit 1; }
  etcd --version | head -1 > "$E/version"
  etcd_load() {
    "$ETCD_LOAD" --endpoints "$EPS" --target leader --conc "$CONC" --warmup 1 --duration "$PHASE"
  }
  etcd_load > "$OUT/etcd-warmup.txt" 2>&1 || true
  for pct in 0 $LOSSES; do phase etcd "$pct" etcd_load; done
  stop_all
fi

echo "== throughput under loss between nodes (dropped at $DROP_AT), as a share of the same system's quiet phase ($CONC clients, ${PHASE}s phases)"
python3 - "$RESULTS" <<'PY'
import re, sys
rows = {}
for line in open(sys.argv[1]):
    system, loss = line.split()[0], int(line.split()[1].split("=")[1])
    m = re.search(r"tput=([0-9.]+)", line)
    rows.setdefault(system, {})[loss] = float(m.group(1)) if m else 0.0
losses = sorted({l for r in rows.values() for l in r})
print("| system | " + " | ".join(f"{l} % loss" for l in losses) + " |")
print("|---|" + "---|" * len(losses))
for system, r in rows.items():
    quiet = r.get(0, 0.0)
    cells = []
    for l in losses:
        v = r.get(l)
        if v is None:
            cells.append("-")
        elif l == 0:
            cells.append(f"{v:,.0f}/s")
        else:
            cells.append(f"{v:,.0f}/s ({100 * v / quiet:.0f} %)" if quiet else f"{v:,.0f}/s")
    print(f"| {system} | " + " | ".join(cells) + " |")
PY

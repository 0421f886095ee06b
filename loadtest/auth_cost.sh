#!/usr/bin/env bash
# What API keys and TLS cost (issue 16): the same load through the gateway, in one run, in four
# modes: `plain` (no keys, no TLS: `ledger dev --insecure --no-tls`), `keys` (API keys, the admin
# key sent by the generator: `--no-tls`), `keys+tls` (keys, and mutual TLS between the lognodes
# and the gateway: plain `ledger dev`) and `keys+tls+https` (also HTTPS from the generator to the
# gateway: `ledger dev --https`, the generator trusting the data dir's CA). Each mode gets a
# fresh `ledger dev --no-projector` (3 lognodes, fsync on), then single transfers and batches of
# 100 for --duration seconds each at --concurrency clients (one keep-alive connection each).
#
#   loadtest/auth_cost.sh [--duration 20] [--concurrency 64]
#
# Needs the release binaries (built here). Data and logs: target/auth-cost/.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
DURATION=20
CONC=64
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=${2%s}; shift 2 ;;
    --concurrency) CONC=$2; shift 2 ;;
    -h|--help) sed -n 2,9p "$0"; exit 0 ;;
    *) echo "auth_cost.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$DURATION" in ''|*[!0-9]*) echo "auth_cost.sh: --duration takes whole seconds" >&2; exit 2 ;; esac

cargo build --release --locked -q -p lognode -p gateway -p projector -p ledger-cli -p loadtest
BIN=$ROOT/target/release
OUT=$ROOT/target/auth-cost
GATEWAY=http://127.0.0.1:18180
PID=
stop() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill -INT "$PID"
    for _ in $(seq 1 300); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$PID" 2>/dev/null && kill -9 "$PID"
  fi
  PID=
}
trap stop EXIT

declare -A RESULT
for mode in plain keys keys+tls keys+tls+https; do
  DATA=$OUT/$mode
  rm -rf "$DATA"
  mkdir -p "$OUT"
  flags=(--no-projector --fresh --listen 127.0.0.1:18180 --port-base 17700 --data-dir "$DATA")
  [ "$mode" = plain ] && flags+=(--insecure)
  case "$mode" in
    plain|keys) flags+=(--no-tls) ;;
    keys+tls+https) flags+=(--https) ;;
  esac
  "$BIN/ledger" dev "${flags[@]}" > "$OUT/$mode-dev.log" 2>&1 &
  PID=$!
  # The banner is printed once the cluster is ready (bounded: 120 s).
  for _ in $(seq 1 1200); do grep -q "Ctrl-C stops everything" "$OUT/$mode-dev.log" && break; sleep 0.1; done
  grep -q "Ctrl-C stops everything" "$OUT/$mode-dev.log" || { echo "ledger dev ($mode) did not start:" >&2; tail -5 "$OUT/$mode-dev.log" >&2; exit 1; }
  KEY=
  [ "$mode" = plain ] || KEY=$(cat "$DATA/admin.key")
  for scenario in transfers transfers-batch; do
    url=$GATEWAY
    [ "$mode" = keys+tls+https ] && url=${GATEWAY/http:/https:}
    line=$(LEDGER_KEY=$KEY LEDGER_CA_CERT="$DATA/tls/ca.pem" "$BIN/loadtest" --gateway "$url" --scenario "$scenario" --concurrency "$CONC" \
      --duration "${DURATION}s" | grep '^RESULT' || true)
    echo "$mode $scenario: $line"
    RESULT[$mode,$scenario]=$(echo "$line" | sed -n 's/.*tput=\([0-9.]*\).*p99_ms=\([0-9.]*\).*/\1 \2/p')
  done
  stop
done
echo
echo "| scenario | plain: transfers/s, p99 ms | keys | change | keys + mTLS | change | keys + mTLS + HTTPS | change |"
echo "|---|---|---|---|---|---|---|---|"
for scenario in transfers transfers-batch; do
  read -r t0 p0 <<< "${RESULT[plain,$scenario]:-0 0}"
  read -r t1 p1 <<< "${RESULT[keys,$scenario]:-0 0}"
  read -r t2 p2 <<< "${RESULT[keys+tls,$scenario]:-0 0}"
  read -r t3 p3 <<< "${RESULT[keys+tls+https,$scenario]:-0 0}"
  ch() { python3 -c "print(f'{($1 / $2 - 1) * 100:+.1f} %' if $2 else 'n/a')"; }
  n() { python3 -c "print(f'{$1:,.0f}')"; }
  echo "| $scenario | $(n "$t0"), $p0 | $(n "$t1"), $p1 | $(ch "$t1" "$t0") | $(n "$t2"), $p2 | $(ch "$t2" "$t0") | $(n "$t3"), $p3 | $(ch "$t3" "$t0") |"
done

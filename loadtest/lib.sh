# Helpers shared by the scripts beside this file (source it, don't run it).

PIDS=()   # processes a script started; stop_pids stops them

# stop_pids [TENTHS]: SIGTERM every process in PIDS, wait at most TENTHS tenths of a second
# (default 100) for them to exit, then SIGKILL what is left.
stop_pids() {
  local p alive
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true; done
  for _ in $(seq 1 "${1:-100}"); do
    alive=0; for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break; sleep 0.1
  done
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true; done
  PIDS=()
}

# wait_ledger_ready GATEWAY VOTERS: waits, at most 60 s, until the gateway is ready and lists
# VOTERS live voters (leader or followers); fails otherwise.
wait_ledger_ready() {
  for _ in $(seq 1 600); do
    if curl -fs "$1/readyz" >/dev/null 2>&1 &&
       [ "$(curl -fs "$1/v1/cluster" | python3 -c 'import sys,json; print(sum(1 for n in json.load(sys.stdin)["nodes"] if n["alive"] and n["role"]!="learner"))' 2>/dev/null)" = "$2" ]; then
      return 0
    fi
    sleep 0.1
  done
  return 1
}

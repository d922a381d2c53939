#!/usr/bin/env bash
# Usage: csrc/bench/txn_bench.sh        (from anywhere; needs `make` and sipp)
# Transaction-layer figures, numbers only (no assertions):
#  1. SIPp UAC sends OPTIONS over UDP (../shared/bench/sipp/options.xml) to
#     examples/uas200.lua (a Lua handler answering 200) at $RATE/s x $COUNT
#     (5000 x 30000), then a saturation run ($MAX_RATE/s x $MAX_COUNT, at most
#     $MAX_LIMIT open calls), once with transactions (the default server) and
#     once with transactions = false (stateless, for reference). For each run:
#     transactions/s (answered OPTIONS per second until the last success,
#     ../shared/bench/lib/sippstat.py rate_active), server CPU microseconds
#     per answered OPTIONS (utime+stime of the server process before/after,
#     ../shared/bench/lib/proctree.py cpu, as floor/options_cpu.sh does), and
#     for the stateful server txn_live / txn_mem_bytes right after the run
#     (non-INVITE transactions stay Completed for Timer J = 64*T1 = 32 s).
#  2. Memory per live transaction: csrc/bench/txn_mem.lua ($MEM_COUNT
#     requests held or completed in one process, srv:stats().txn_mem_bytes
#     divided by txn_live, and the process's RSS growth divided by it).
# Ports: udp 127.0.0.1:$PORT (5075) for the server, $SIPP_PORT (5086) for
# SIPp. Every process is bounded by timeout(1); the server is stopped by PID.
set -u
cd "$(dirname "$0")/../.." || exit 1
SHARED=${SHARED:-../shared}
BUILD=${BUILD:-build}
PORT=${PORT:-5075}
SIPP_PORT=${SIPP_PORT:-5086}
RATE=${RATE:-5000}
COUNT=${COUNT:-30000}
MAX_RATE=${MAX_RATE:-50000}
MAX_COUNT=${MAX_COUNT:-150000}
MAX_LIMIT=${MAX_LIMIT:-5000}
MEM_COUNT=${MEM_COUNT:-20000}
LUA=${LUA:-lua5.4}
export LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="$BUILD/lib/?.so;;"
H=$(cd "$SHARED/bench" 2>/dev/null && pwd)
if [ -z "$H" ] || [ ! -f "$H/lib/proctree.py" ] || ! command -v sipp >/dev/null; then
  echo "txn-bench: needs sipp and $SHARED/bench (lib/proctree.py, lib/sippstat.py, sipp/options.xml)"
  exit 1
fi
if [ ! -f "$BUILD/lib/luasip/core.so" ]; then
  echo "txn-bench: $BUILD/lib/luasip/core.so missing: run make first"
  exit 1
fi
work=$(mktemp -d /tmp/luasip-txn-bench.XXXXXX)
SERVER_PID=

stop_server() {
  local _
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null
    for _ in $(seq 20); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.05
    done
    kill -9 "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
    SERVER_PID=
  fi
}
trap 'stop_server; rm -rf "$work"' EXIT

start_server() { # start_server ARGS...
  timeout -k 5 600 "$LUA" examples/uas200.lua --listen "udp:127.0.0.1:$PORT" "$@" >"$work/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do
    grep -qs '^listening on ' "$work/server.log" && break
    sleep 0.1
  done
  # the Lua process under timeout(1): measure the interpreter itself
  local child
  child=$(pgrep -P "$SERVER_PID" | head -n 1)
  LUA_PID=${child:-$SERVER_PID}
  sleep 1
}

stat() {
  timeout 10 "$LUA" spec/sipp/stats.lua "$PORT" 2>/dev/null | awk -v k="$1" '$1 == k { print $2 }'
}

run() { # run LABEL RATE COUNT LIMIT
  local label=$1 rate=$2 count=$3 limit=$4 dir c0 c1
  dir=$work/$label
  mkdir -p "$dir"
  c0=$(python3 "$H/lib/proctree.py" cpu "$LUA_PID")
  (cd "$dir" && timeout -k 5 180 sipp "127.0.0.1:$PORT" -sf "$H/sipp/options.xml" -t u1 -i 127.0.0.1 \
    -p "$SIPP_PORT" -m "$count" -r "$rate" -l "$limit" -nostdin -timeout 150s -buff_size 4194304 \
    -fd 200ms -trace_stat -stf stat.csv >sipp.out 2>&1)
  c1=$(python3 "$H/lib/proctree.py" cpu "$LUA_PID")
  local s
  s=$(python3 "$H/lib/sippstat.py" "$dir/stat.csv")
  local ok failed rate_active retrans
  ok=$(echo "$s" | tr ' ' '\n' | sed -n 's/^ok=//p')
  failed=$(echo "$s" | tr ' ' '\n' | sed -n 's/^failed=//p')
  rate_active=$(echo "$s" | tr ' ' '\n' | sed -n 's/^rate_active=//p')
  retrans=$(echo "$s" | tr ' ' '\n' | sed -n 's/^retrans=//p')
  local extra=""
  if [ "$label" != "${label#stateful}" ]; then
    extra=" txn_live=$(stat txn_live) txn_mem_bytes=$(stat txn_mem_bytes)"
  fi
  python3 -c 'import sys
c=float(sys.argv[3])-float(sys.argv[2]); ok=int(sys.argv[4] or 0)
print(f"txn-bench: {sys.argv[1]}: ok={ok} failed={sys.argv[5]} tx/s={sys.argv[6]} server_cpu_s={c:.2f} us/tx={c/max(ok,1)*1e6:.1f} sipp_retrans={sys.argv[7]}{sys.argv[8]}")' \
    "$label (offered ${rate}/s x $count, limit $limit)" "$c0" "$c1" "${ok:-0}" "${failed:-?}" \
    "${rate_active:-?}" "${retrans:-?}" "$extra"
}

echo "txn-bench: $(nproc) CPUs, $(sipp -v 2>/dev/null | grep -o 'SIPp v[0-9.]*' | head -n 1), $($LUA -v)"
start_server
run stateful-fixed "$RATE" "$COUNT" 2000
stop_server
start_server
run stateful-max "$MAX_RATE" "$MAX_COUNT" "$MAX_LIMIT"
stop_server
start_server --stateless
run stateless-fixed "$RATE" "$COUNT" 2000
stop_server
start_server --stateless
run stateless-max "$MAX_RATE" "$MAX_COUNT" "$MAX_LIMIT"
stop_server
timeout -k 5 300 "$LUA" csrc/bench/txn_mem.lua "$MEM_COUNT"

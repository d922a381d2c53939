#!/usr/bin/env bash
# Usage: csrc/bench/reg_bench.sh      (from anywhere; needs `make`, sipp,
#                                      kamailio, redis-server)
# REGISTER figures, numbers only (no assertions): ../shared/bench/run.sh's
# REGISTER phase (-P reg: SIPp ../shared/bench/sipp/reg.xml, one new AOR per
# REGISTER, $REG_RATE/s offered (5000), $REG_COUNT REGISTERs (20000), at
# most $REG_LIMIT (1000) in flight) against, in the same run:
#   kamailio       ../shared/bench/kamailio/start.sh lua (usrloc in memory)
#   luasip-memory  csrc/bench/reg_server.lua --location memory
#   luasip-sqlite  ... --location sqlite:$TMP/loc.db (synchronous=full)
#   luasip-redis   ... --location redis://127.0.0.1:$REDIS_PORT/0 (a
#                  redis-server started here, stopped by PID at the end)
# Prints per server: reg/s (successful REGISTERs per second until the last
# one), us/reg (server CPU microseconds per successful REGISTER, all its
# processes; redis-server's own CPU is not counted: reported apart) and
# failed. The luasip server runs through `luasip run` when bin/luasip
# exists, else spec/support/script_host.lua. Port 5070 (run.sh's
# defaults 5079/5080 for SIPp).
set -u
cd "$(dirname "$0")/../.." || exit 1
SHARED=${SHARED:-../shared}
BUILD=${BUILD:-build}
LUA=${LUA:-lua5.4}
REDIS_PORT=${REDIS_PORT:-6391}
export REG_RATE=${REG_RATE:-5000} REG_COUNT=${REG_COUNT:-20000} REG_LIMIT=${REG_LIMIT:-1000}
export LUA_PATH="$PWD/lua/?.lua;$PWD/lua/?/init.lua;;" LUA_CPATH="$PWD/$BUILD/lib/?.so;;"
RUN=$(cd "$SHARED/bench" 2>/dev/null && pwd)/run.sh
if [ ! -x "$RUN" ] || ! command -v sipp >/dev/null; then
  echo "reg-bench: needs sipp and $SHARED/bench/run.sh"
  exit 1
fi
work=$(mktemp -d /tmp/luasip-reg-bench.XXXXXX)
REDIS_PID=
cleanup() {
  if [ -n "$REDIS_PID" ]; then
    kill "$REDIS_PID" 2>/dev/null; wait "$REDIS_PID" 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT
if [ -x bin/luasip ]; then
  srv=("$PWD/bin/luasip" run "$PWD/csrc/bench/reg_server.lua")
else
  srv=("$LUA" "$PWD/spec/support/script_host.lua" "$PWD/csrc/bench/reg_server.lua")
fi

results=()
bench() { # bench NAME CMD...
  local name=$1 line
  shift
  line=$(BENCH_RESULTS=$work/results "$RUN" -n "$name" -p 5070 -P reg -- "$@" 2>"$work/$name.err" | tail -n 1)
  echo "$line"
  results+=("$line")
}

if command -v kamailio >/dev/null; then
  bench kamailio "$SHARED/bench/kamailio/start.sh" lua
else
  echo "reg-bench: kamailio not installed (make bench installs it): no reference"
fi
bench luasip-memory "${srv[@]}" --listen udp:127.0.0.1:5070 --location memory
bench luasip-sqlite "${srv[@]}" --listen udp:127.0.0.1:5070 --location "sqlite:$work/loc.db"
if command -v redis-server >/dev/null; then
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
    >"$work/redis.log" 2>&1 &
  REDIS_PID=$!
  for _ in $(seq 50); do grep -qs 'Ready to accept' "$work/redis.log" && break; sleep 0.1; done
  r0=$(awk '{print $14 + $15}' "/proc/$REDIS_PID/stat")
  bench luasip-redis "${srv[@]}" --listen udp:127.0.0.1:5070 --location "redis://127.0.0.1:$REDIS_PORT/0"
  r1=$(awk '{print $14 + $15}' "/proc/$REDIS_PID/stat")
  echo "redis-server CPU during luasip-redis: $(( (r1 - r0) * 10 )) ms"
fi

echo "--- REGISTER (rate $REG_RATE/s offered, $REG_COUNT REGISTERs, $REG_LIMIT in flight)"
for l in "${results[@]}"; do
  set -- $l
  name=$1
  regs=$(echo "$l" | grep -o 'reg/s=[^ ]*' | cut -d= -f2)
  us=$(echo "$l" | grep -o 'us/reg=[^ ]*' | cut -d= -f2)
  fail=$(echo "$l" | grep -o 'reg_failed=[^ ]*' | cut -d= -f2)
  printf 'reg-bench %-14s reg/s=%s us/reg=%s failed=%s\n' "$name" "$regs" "$us" "$fail"
done

#!/usr/bin/env bash
# Usage: BUILD=build LUA=lua5.4 csrc/bench/ws_bench.sh
# SIP over WebSocket next to SIP over TCP, in one run: one luasip process
# (examples/stateless200.lua on tcp:127.0.0.1:5071 and ws:127.0.0.1:5072)
# answers OPTIONS with 200; csrc/bench/ws_load.c (built here into
# $BUILD/bench; SIPp has no WebSocket) sends WS_COUNT OPTIONS (default
# 100000) over WS_CONNS connections (4), WS_WINDOW outstanding on each (16),
# first over TCP, then over WS, then TCP again. For each phase: messages
# answered per second, and the server's CPU time (utime + stime of
# /proc/PID/stat) per OPTIONS. As root, all of it runs in a fresh
# loopback-only network namespace. Not a test (not in make test): it fails
# only when a measurement cannot run.
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build}
LUA=${LUA:-lua5.4}
COUNT=${WS_COUNT:-100000}
CONNS=${WS_CONNS:-4}
WINDOW=${WS_WINDOW:-16}
load=$BUILD/bench/ws_load
mkdir -p "$BUILD/bench"
if [ ! -x "$load" ] || [ csrc/bench/ws_load.c -nt "$load" ]; then
  cc -O2 -Wall -Wextra -Werror -o "$load" csrc/bench/ws_load.c || exit 2
fi
work=$(mktemp -d /tmp/luasip-ws-bench.XXXXXX)
ns='' server=''
prefix=()
# shellcheck disable=SC2317 # (run by the trap)
cleanup() {
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null
    wait "$server" 2>/dev/null
  fi
  if [ -n "$ns" ]; then
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns delete "$ns" 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$(id -u)" = 0 ] && ip netns add "luasip-wsbench-$$" 2>/dev/null; then
  ns=luasip-wsbench-$$
  ip netns exec "$ns" ip link set lo up
  prefix=(ip netns exec "$ns")
fi

"${prefix[@]}" env LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH="$BUILD/lib/?.so;;" \
  "$LUA" examples/stateless200.lua --listen tcp:127.0.0.1:5071 --listen ws:127.0.0.1:5072 \
  >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do
  [ "$(grep -c 'listening on' "$work/server.log")" -ge 2 ] && break
  kill -0 "$server" 2>/dev/null || break
  sleep 0.05
done
if [ "$(grep -c 'listening on' "$work/server.log")" -lt 2 ]; then
  echo "ws-bench: the server did not start:"
  sed 's/^/  | /' "$work/server.log"
  exit 2
fi

tck=$(getconf CLK_TCK)
cpu_ticks() { # utime + stime of the server (fields 14 and 15)
  sed 's/^.*) //' "/proc/$server/stat" | awk '{ print $12 + $13 }'
}

status=0
echo "ws-bench: OPTIONS -> 200 (stateless), $COUNT per phase, $CONNS connections, $WINDOW outstanding each"
for phase in tcp:5071 ws:5072 tcp:5071; do
  mode=${phase%%:*} port=${phase#*:}
  before=$(cpu_ticks)
  if ! out=$("${prefix[@]}" "$load" "$mode" "$port" "$COUNT" "$CONNS" "$WINDOW" 2>&1); then
    echo "ws-bench: $mode failed: $out"
    status=1
    continue
  fi
  after=$(cpu_ticks)
  # "ws sent=N answered=N seconds=X msgs/s=Y" + server CPU per OPTIONS
  awk -v line="$out" -v d=$((after - before)) -v tck="$tck" -v n="$COUNT" 'BEGIN {
    split(line, f, " "); rate = f[5]; sub("msgs/s=", "", rate)
    printf "ws-bench: %-3s %8s msgs/s  server CPU %.2f us/OPTIONS  (%s)\n",
      f[1], rate, d / tck * 1e6 / n, line }'
done
exit $status

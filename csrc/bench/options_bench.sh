#!/usr/bin/env bash
# Usage: BUILD=build LUA=lua5.4 SHARED=../shared csrc/bench/options_bench.sh
# Stateless OPTIONS -> 200 over UDP, in one run on this machine: luasip
# (examples/stateless200.lua on udp:127.0.0.1:5070), Kamailio + Lua KEMI
# answering with sl_send_reply (../shared/bench/kamailio/start.sh lua) and
# the syscall floor (../shared/bench/floor/udp_floor.c: recvfrom + sendto,
# no parsing). Each is measured by ../shared/bench/floor/options_cpu.sh
# (SIPp offers OPTIONS_COUNT OPTIONS at OPTIONS_RATE/s, default 40000 at
# 8000/s; the server's CPU time over its process tree per answered OPTIONS).
# As root, each server and its SIPp run in a fresh loopback-only network
# namespace (nothing else on the machine can hold or load 127.0.0.1:5070,
# and nothing a server leaves behind outlives its run); otherwise in the
# current one. Prints the three us/options figures and luasip/kamailio.
# Not a test: it fails only when a measurement cannot run.
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build}
LUA=${LUA:-lua5.4}
SHARED=${SHARED:-../shared}
RATE=${OPTIONS_RATE:-8000}
COUNT=${OPTIONS_COUNT:-40000}
H=$(realpath "$SHARED/bench") || exit 2
status=0
declare -A us

floor=$BUILD/bench/udp_floor
mkdir -p "$BUILD/bench"
if [ ! -x "$floor" ] || [ "$H/floor/udp_floor.c" -nt "$floor" ]; then
  gcc -O2 -o "$floor" "$H/floor/udp_floor.c" || exit 2
fi

# measure NAME CMD...: one options_cpu.sh run (in its own namespace as root)
measure() {
  local name=$1 ns="" out line
  shift
  local prefix=()
  if [ "$(id -u)" = 0 ] && ns=luasip-bench-$$-$name && ip netns add "$ns" 2>/dev/null; then
    ip netns exec "$ns" ip link set lo up
    prefix=(ip netns exec "$ns")
  else
    ns=""
  fi
  out=$("${prefix[@]}" "$H/floor/options_cpu.sh" "$name" "$RATE" "$COUNT" -- "$@" 2>&1)
  if [ -n "$ns" ]; then
    # what the server left behind in its namespace (Kamailio's workers)
    ip netns pids "$ns" | xargs -r kill -9 2>/dev/null
    ip netns delete "$ns"
  fi
  line=$(grep -E "^$name options ok=" <<<"$out" | tail -n 1)
  if [ -z "$line" ]; then
    echo "$name: no result; options_cpu.sh said:"
    sed 's/^/  | /' <<<"$out"
    status=1
    return
  fi
  echo "$line"
  # ok=N failed=N server_cpu_s=X us/options=Y
  local ok failed
  ok=$(sed -n 's/.* ok=\([0-9]*\).*/\1/p' <<<"$line")
  failed=$(sed -n 's/.* failed=\([0-9]*\).*/\1/p' <<<"$line")
  if [ "$ok" != "$COUNT" ] || [ "$failed" != 0 ]; then
    echo "$name: only $ok of $COUNT OPTIONS answered ($failed failed): its figure is suspect"
  fi
  us[$name]=$(sed -n 's/.* us\/options=\([0-9.]*\).*/\1/p' <<<"$line")
}

echo "options: stateless OPTIONS -> 200, $COUNT at $RATE/s over UDP, server CPU per reply"
measure luasip env LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH="$BUILD/lib/?.so;;" \
  "$LUA" examples/stateless200.lua --listen udp:127.0.0.1:5070
if command -v kamailio >/dev/null && [ -e /usr/lib/x86_64-linux-gnu/kamailio/modules/app_lua.so ]; then
  measure kamailio-lua "$H/kamailio/start.sh" lua
else
  echo "kamailio-lua: not installed (make bench installs kamailio kamailio-lua-modules as root)"
  status=1
fi
measure floor "$floor" 5070

printf 'options us/reply: luasip %s, kamailio-lua %s, floor %s\n' \
  "${us[luasip]:-n/a}" "${us[kamailio-lua]:-n/a}" "${us[floor]:-n/a}"
if [ -n "${us[luasip]:-}" ] && [ -n "${us[kamailio-lua]:-}" ]; then
  awk -v a="${us[luasip]}" -v b="${us[kamailio-lua]}" 'BEGIN {
    printf "options luasip/kamailio-lua: %.2fx (bar: below 1.00, %s)\n", a / b, a < b ? "met" : "NOT met" }'
fi
if [ -n "${us[luasip]:-}" ] && [ -n "${us[floor]:-}" ]; then
  awk -v a="${us[luasip]}" -v b="${us[floor]}" 'BEGIN { printf "options luasip/floor: %.1fx\n", a / b }'
fi
exit $status

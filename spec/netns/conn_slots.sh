#!/usr/bin/env bash
# Usage: spec/netns/conn_slots.sh         (as root; from anywhere)
# Issue [edge], connection slots an attacker cannot hold, in a network
# namespace with nothing but loopback: `luasip run examples/proxy.lua` on
# udp+tcp 127.0.0.1:5060 with the default max_connections (1024); bob
# registered at a SIPp UAS on udp 127.0.0.1:5071.
#   held       spec/netns/conn_hold.lua opens 1,024 TCP connections from
#              127.0.0.2 and keeps them open with CRLF keep-alives (every
#              one answered: the table is full)
#   caller     a SIPp caller over TCP from 127.0.0.1 completes 5 calls to
#              bob (before the fix its connection was closed at once)
#   evicted-1  the holder lost exactly one connection (the newcomer's
#              slot), the others stayed open with their keep-alives
# Bounded: about 25 s, every process stopped by PID. Prints
# "conn-slots: N passed, N failed". $BUILD (build), $LUA (lua5.4).
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build}
LUA=${LUA:-lua5.4}
DIR=$(pwd)/spec/sipp
NS=luasip-slots-$$
P=5060
passed=0 failed=0
work=$(mktemp -d /tmp/luasip-slots.XXXXXX)
PROXY_PID=''
HOLD_PID=''
UAS_PID=''
ns_made=''

stop_pid() { # stop_pid PID: SIGTERM, then SIGKILL
  [ -n "$1" ] || return 0
  kill "$1" 2>/dev/null
  for _ in $(seq 20); do
    kill -0 "$1" 2>/dev/null || break
    sleep 0.05
  done
  kill -9 "$1" 2>/dev/null
  wait "$1" 2>/dev/null
}

# shellcheck disable=SC2317 # (run by the trap)
cleanup() {
  stop_pid "$HOLD_PID"
  stop_pid "$UAS_PID"
  stop_pid "$PROXY_PID"
  if [ -n "$ns_made" ]; then
    ip netns pids "$NS" 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns delete "$NS" 2>/dev/null
  fi
  if [ -n "${KEEP:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

result() { # result NAME OK(0/1) [detail]
  if [ "$2" = 0 ]; then
    passed=$((passed + 1)); echo "ok   $1 ${3:-}"
  else
    failed=$((failed + 1)); echo "FAIL $1 ${3:-}"
  fi
}

if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null || ! ip netns add "$NS" 2>/dev/null; then
  echo "conn-slots: needs root and ip netns (a proxy sends where messages say: never outside a namespace)"
  echo "conn-slots: 0 passed, 1 failed"
  exit 1
fi
ns_made=1
NSX=(ip netns exec "$NS")
"${NSX[@]}" ip link set lo up
if "${NSX[@]}" ip -o link show | grep -v ': lo:' | grep -q .; then
  echo "conn-slots: namespace $NS has more than loopback"
  echo "conn-slots: 0 passed, 1 failed"
  exit 1
fi
if ! command -v sipp >/dev/null; then
  echo "conn-slots: sipp not installed"
  echo "conn-slots: 0 passed, 1 failed"
  exit 1
fi

# 1,024 connections for the holder, as many for the proxy, and some more
ulimit -n 8192
export LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH="$BUILD/lib/?.so;;"

"${NSX[@]}" env ${LUASIP_PRELOAD:+LD_PRELOAD="$LUASIP_PRELOAD"} LUASIP_BUILD="$BUILD" \
  timeout -k 5 120 "$LUA" bin/luasip run examples/proxy.lua \
  --listen "udp:127.0.0.1:$P" --listen "tcp:127.0.0.1:$P" >"$work/proxy.log" 2>&1 &
PROXY_PID=$!
for _ in $(seq 100); do
  grep -qs 'serving .*tcp' "$work/proxy.log" && break
  sleep 0.1
done
if ! grep -qs 'serving .*tcp' "$work/proxy.log"; then
  echo "conn-slots: the proxy did not start:"; sed 's/^/  | /' "$work/proxy.log"
  echo "conn-slots: 0 passed, 1 failed"
  exit 1
fi

mkdir -p "$work/reg" "$work/uas" "$work/caller"
(cd "$work/reg" && "${NSX[@]}" timeout -k 5 15 sipp "127.0.0.1:$P" -sf "$DIR/proxy_reg.xml" \
  -i 127.0.0.1 -p 5100 -s bob -key contact_host 127.0.0.1 -key contact_port 5071 \
  -key tp udp -key q 1.0 -m 1 -nostdin -timeout 10s >out.txt 2>&1) || echo "  (register bob failed)"
(cd "$work/uas" && "${NSX[@]}" timeout -k 5 60 sipp -sf "$DIR/proxy_uas_ok.xml" -i 127.0.0.1 \
  -p 5071 -m 5 -nostdin -timeout 50s >out.txt 2>&1) &
UAS_PID=$!

"${NSX[@]}" timeout -k 5 60 "$LUA" spec/netns/conn_hold.lua --from 127.0.0.2 --port "$P" \
  --count 1024 --seconds 25 >"$work/hold.out" 2>&1 &
HOLD_PID=$!
for _ in $(seq 200); do
  grep -qs '^held' "$work/hold.out" && break
  sleep 0.1
done
if grep -qs '^held 1024' "$work/hold.out"; then
  result held 0 "(1,024 connections from 127.0.0.2 answering keep-alives)"
else
  result held 1 "($(tail -n 2 "$work/hold.out" | tr '\n' ' '))"
fi
sleep 2 # a couple more rounds of keep-alives

(cd "$work/caller" && "${NSX[@]}" timeout -k 5 40 sipp "127.0.0.1:$P" -sf "$DIR/proxy_uac_call.xml" \
  -t t1 -i 127.0.0.1 -p 5081 -s bob -m 5 -r 5 -nostdin -timeout 30s \
  -trace_err -error_file err.log >out.txt 2>&1)
rc=$?
result caller "$rc" "(5 calls over TCP from 127.0.0.1 with the table full: SIPp rc $rc)"
[ "$rc" = 0 ] || tail -n 5 "$work/caller/err.log" 2>/dev/null | sed 's/^/  | /'

wait "$HOLD_PID" 2>/dev/null
HOLD_PID=''
left=$(grep '^open' "$work/hold.out")
if [ "$left" = "open 1023 closed 1" ]; then
  result evicted-1 0 "($left)"
else
  result evicted-1 1 "(${left:-$(tail -n 2 "$work/hold.out" | tr '\n' ' ')})"
fi
kill -0 "$PROXY_PID" 2>/dev/null
result proxy-alive $?

echo "conn-slots: $passed passed, $failed failed"
[ "$failed" = 0 ]

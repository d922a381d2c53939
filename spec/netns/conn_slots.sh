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
. spec/sipp/lib.sh
suite_init conn-slots slots
DIR=$(pwd)/spec/sipp
P=5060
ns_setup "a proxy sends where messages say"
need_cmds sipp

# 1,024 connections for the holder, as many for the proxy, and some more
ulimit -n 8192
export LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH="$BUILD/lib/?.so;;"

LUASIP_TIMEOUT=120 luasip_start "$work/proxy.log" 'serving .*tcp' examples/proxy.lua \
  --listen "udp:127.0.0.1:$P" --listen "tcp:127.0.0.1:$P" || suite_fail "the proxy did not start"
PROXY_PID=$STARTED

sipp_register "$P" bob 5071 5100
ns_sipp uas 60 -sf "$DIR/proxy_uas_ok.xml" -i 127.0.0.1 -p 5071 -m 5 -timeout 50s &
PIDS+=($!)

"${NSX[@]}" timeout -k 5 60 "$LUA" spec/netns/conn_hold.lua --from 127.0.0.2 --port "$P" \
  --count 1024 --seconds 25 >"$work/hold.out" 2>&1 &
HOLD_PID=$!
PIDS+=("$HOLD_PID")
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

ns_sipp caller 40 "127.0.0.1:$P" -sf "$DIR/proxy_uac_call.xml" -t t1 -i 127.0.0.1 -p 5081 \
  -s bob -m 5 -r 5 -timeout 30s -trace_err -error_file err.log
rc=$?
result caller "$rc" "(5 calls over TCP from 127.0.0.1 with the table full: SIPp rc $rc)"
[ "$rc" = 0 ] || tail -n 5 "$work/caller/err.log" 2>/dev/null | sed 's/^/  | /'

wait "$HOLD_PID" 2>/dev/null
forget_pid "$HOLD_PID"
left=$(grep '^open' "$work/hold.out")
if [ "$left" = "open 1023 closed 1" ]; then
  result evicted-1 0 "($left)"
else
  result evicted-1 1 "(${left:-$(tail -n 2 "$work/hold.out" | tr '\n' ' ')})"
fi
kill -0 "$PROXY_PID" 2>/dev/null
result proxy-alive $?

suite_end

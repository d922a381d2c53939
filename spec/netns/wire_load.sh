#!/usr/bin/env bash
# Usage: spec/netns/wire_load.sh          (as root; from anywhere)
# [wire] 7: one unroutable binding must not fail unrelated calls under load.
# In a network namespace with nothing but loopback (the proxy sends to
# 1.1.1.1, which fails there at once with ENETUNREACH and can never leave
# the machine): `luasip run spec/netns/wire_load_proxy.lua` on udp
# 127.0.0.1:5060 forks every INVITE for bob to sip:bob@1.1.1.1 and to a
# live callee (examples/stateless200.lua on udp 127.0.0.1:5071);
# spec/netns/wire_load.lua places the calls:
#   no-flood   40 calls to bob over 2 s
#   flood      100 calls to bob over 3 s while another socket sends 2,000
#              INVITE/s (6,000 in all) to a user that gets 404
# Each check passes when every call got the callee's 200 (the unroutable
# branch's failure stays its own). Bounded: a few seconds per check, every
# process stopped by PID. Prints "wire-load: N passed, N failed".
# $BUILD (build), $LUA (lua5.4), $LUASIP_PRELOAD (preloaded into the proxy).
set -u
cd "$(dirname "$0")/../.." || exit 1
. spec/netns/lib.sh
suite_init wire-load wire-load
ns_setup "the proxy sends to 1.1.1.1"
export LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH="$BUILD/lib/?.so;;"

"${NSX[@]}" timeout -k 5 120 "$LUA" examples/stateless200.lua --listen udp:127.0.0.1:5071 \
  >"$work/callee.log" 2>&1 &
PIDS+=($!)
LUASIP_TIMEOUT=120 luasip_start "$work/proxy.log" 'serving ' spec/netns/wire_load_proxy.lua \
  --listen udp:127.0.0.1:5060 --callee 5071 || suite_fail "the proxy did not start"
PROXY_PID=$STARTED
for _ in $(seq 100); do
  grep -qs '^listening on' "$work/callee.log" && break
  sleep 0.1
done

check() { # check NAME ARGS...
  local name=$1 out
  shift
  out=$("${NSX[@]}" timeout -k 5 30 "$LUA" spec/netns/wire_load.lua "$@" 2>&1)
  local rc=$?
  result "$name" "$rc" "$(echo "$out" | tail -n 1)"
}

check no-flood --rate 0 --calls 40 --seconds 2
check flood --rate 2000 --calls 100 --seconds 3
kill -0 "$PROXY_PID" 2>/dev/null
result proxy-alive $?

suite_end

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
BUILD=${BUILD:-build}
LUA=${LUA:-lua5.4}
NS=luasip-wire-$$
passed=0 failed=0
work=$(mktemp -d /tmp/luasip-wire-load.XXXXXX)
PROXY_PID=''
CALLEE_PID=''
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
  stop_pid "$PROXY_PID"
  stop_pid "$CALLEE_PID"
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
  echo "wire-load: needs root and ip netns (the proxy sends to 1.1.1.1: never outside a namespace)"
  echo "wire-load: 0 passed, 1 failed"
  exit 1
fi
ns_made=1
NSX=(ip netns exec "$NS")
"${NSX[@]}" ip link set lo up
if "${NSX[@]}" ip -o link show | grep -v ': lo:' | grep -q .; then
  echo "wire-load: namespace $NS has more than loopback"
  echo "wire-load: 0 passed, 1 failed"
  exit 1
fi
export LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH="$BUILD/lib/?.so;;"

"${NSX[@]}" timeout -k 5 120 "$LUA" examples/stateless200.lua --listen udp:127.0.0.1:5071 \
  >"$work/callee.log" 2>&1 &
CALLEE_PID=$!
"${NSX[@]}" env ${LUASIP_PRELOAD:+LD_PRELOAD="$LUASIP_PRELOAD"} LUASIP_BUILD="$BUILD" \
  timeout -k 5 120 "$LUA" bin/luasip run spec/netns/wire_load_proxy.lua \
  --listen udp:127.0.0.1:5060 --callee 5071 >"$work/proxy.log" 2>&1 &
PROXY_PID=$!
for _ in $(seq 100); do
  grep -qs 'serving ' "$work/proxy.log" && grep -qs '^listening on' "$work/callee.log" && break
  sleep 0.1
done
if ! grep -qs 'serving ' "$work/proxy.log"; then
  echo "the proxy did not start:"; sed 's/^/  | /' "$work/proxy.log"
  echo "wire-load: 0 passed, 1 failed"
  exit 1
fi

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

echo "wire-load: $passed passed, $failed failed"
[ "$failed" = 0 ]

#!/usr/bin/env bash
# Usage: spec/netns/gruu.sh   (as root)
# Issue [wire] item 3, GRUU routing (spec/netns/gruu_route.lua, busted):
# the proxy sends requests where registrations say, so it runs in a network
# namespace with nothing but loopback (luasip-gruu-$$, deleted on exit).
# Prints "gruu-net: N passed, N failed". $BUILD selects the build (default
# build/), $LUA the interpreter, $BUSTED busted, $LUASIP_PRELOAD is
# preloaded (make test-asan: the ASan runtime). Without root or `ip netns`
# it is one failure: the test is never run outside a namespace.
set -u
cd "$(dirname "$0")/../.." || exit 1
NS=luasip-gruu-$$
BUILD=${BUILD:-build}
ns_made=
# shellcheck disable=SC2317 # (run by the trap)
cleanup() {
  if [ -n "$ns_made" ]; then
    ip netns pids "$NS" 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns delete "$NS" 2>/dev/null
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
  echo "gruu-net: $1"
  echo "gruu-net: 0 passed, 1 failed"
  exit 1
}
[ "$(id -u)" = 0 ] || fail "not root: the test runs only in a network namespace"
command -v ip >/dev/null || fail "ip (iproute2) not installed"
ip netns add "$NS" 2>/dev/null || fail "ip netns add failed"
ns_made=1
ip netns exec "$NS" ip link set lo up || fail "ip link set lo up failed"
if ip netns exec "$NS" ip -o link show | grep -v ': lo:' | grep -q .; then
  fail "namespace $NS has more than loopback"
fi
ip netns exec "$NS" env ${LUASIP_PRELOAD:+LD_PRELOAD="$LUASIP_PRELOAD"} \
  LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH="$BUILD/lib/?.so;;" \
  timeout -k 5 120 spec/support/busted.sh "${LUA:-lua5.4}" "${BUSTED:-/usr/bin/busted}" \
  --ignore-lua -o plainTerminal --lpath='lua/?.lua;lua/?/init.lua' --cpath="$BUILD/lib/?.so" \
  spec/netns/gruu_route.lua 2>&1 | sed 's/^busted:/gruu-net:/'
exit "${PIPESTATUS[0]}"

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
. spec/netns/lib.sh
suite_init gruu-net gruu
ns_setup "the proxy sends where registrations say"
ip netns exec "$NS" env ${LUASIP_PRELOAD:+LD_PRELOAD="$LUASIP_PRELOAD"} \
  LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH="$BUILD/lib/?.so;;" \
  timeout -k 5 120 spec/support/busted.sh "$LUA" "${BUSTED:-/usr/bin/busted}" \
  --ignore-lua -o plainTerminal --lpath='lua/?.lua;lua/?/init.lua' --cpath="$BUILD/lib/?.so" \
  spec/netns/gruu_route.lua 2>&1 | sed 's/^busted:/gruu-net:/'
exit "${PIPESTATUS[0]}"

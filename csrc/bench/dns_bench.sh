#!/usr/bin/env bash
# Usage: csrc/bench/dns_bench.sh     (as root; not part of make test)
# The resolver's lookups per second from the cache and its latency against
# dnsmasq (csrc/bench/dns_bench.lua), in a loopback-only network namespace
# with dnsmasq on 127.0.0.1:5353 serving w.test (NAPTR-less: SRV with three
# weighted targets, A records). $BUILD (build), $LUA (lua5.4),
# $BENCH_SECONDS (2 per measurement).
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build}
LUA=${LUA:-lua5.4}
NS=luasip-dnsbench-$$
work=$(mktemp -d /tmp/luasip-dnsbench.XXXXXX)
DPID=
cleanup() {
  [ -n "$DPID" ] && kill "$DPID" 2>/dev/null
  ip netns delete "$NS" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
if [ "$(id -u)" != 0 ] || ! command -v dnsmasq >/dev/null || ! ip netns add "$NS" 2>/dev/null; then
  echo "dns-bench: needs root, ip netns and dnsmasq; skipped"
  exit 0
fi
ip netns exec "$NS" ip link set lo up
cat >"$work/dnsmasq.conf" <<'CONF'
auth-zone=test
auth-server=ns.test,127.0.0.1
auth-ttl=300
srv-host=_sip._udp.w.test,w1.w.test,5081,10,60
srv-host=_sip._udp.w.test,w2.w.test,5082,10,30
srv-host=_sip._udp.w.test,w3.w.test,5083,10,10
host-record=w1.w.test,127.0.0.1
host-record=w2.w.test,127.0.0.1
host-record=w3.w.test,127.0.0.1
CONF
ip netns exec "$NS" dnsmasq --no-daemon --port=5353 --listen-address=127.0.0.1 \
  --bind-interfaces --no-resolv --no-hosts --pid-file= --conf-file="$work/dnsmasq.conf" \
  >"$work/dnsmasq.log" 2>&1 &
DPID=$!
sleep 0.3
ip netns exec "$NS" env LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH="$BUILD/lib/?.so;;" \
  timeout 120 "$LUA" csrc/bench/dns_bench.lua 5353 "${BENCH_SECONDS:-2}"

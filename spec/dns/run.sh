#!/usr/bin/env bash
# Usage: spec/dns/run.sh            (as root; from anywhere)
# RFC 3263 against dnsmasq, in a network namespace that has nothing but
# loopback (the resolver sends where DNS answers say; so do the proxy and
# srv:send):
#   1. spec/dns/dns_cases.lua under busted: dnsmasq (started by the spec on
#      127.0.0.1:5353) with NAPTR, SRV, A and AAAA records pointing at
#      luasip UASes on 127.0.0.1 and ::1: NAPTR choosing TCP, SRV only, A
#      only, weighted SRV over 1,000 lookups, failover (TCP refused, UDP
#      timeout, 503), NXDOMAIN, IPv6, a stopped DNS server, TTL expiry
#      ("dns: N passed, N failed");
#   2. examples/proxy.lua --domain local.test --dns 127.0.0.1:5353 relays a
#      SIPp call to sip:bob@example.test, whose domain has only SRV
#      records, to a SIPp UAS ("dns-sipp: N passed, N failed").
# $BUILD (build), $LUA (lua5.4), $LUASIP_PRELOAD (preloaded into the
# processes that load luasip: the ASan runtime under make test-asan).
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build}
LUA=${LUA:-lua5.4}
NS=luasip-dns-$$
work=$(mktemp -d /tmp/luasip-dns.XXXXXX)
ns_made=
PIDS=()

cleanup() {
  local p
  for p in "${PIDS[@]}"; do
    kill "$p" 2>/dev/null
  done
  for p in "${PIDS[@]}"; do
    wait "$p" 2>/dev/null
  done
  if [ -n "$ns_made" ]; then
    ip netns pids "$NS" 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns delete "$NS" 2>/dev/null
  fi
  [ -n "${KEEP:-}" ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail_both() {
  echo "dns: $1"
  echo "dns: 0 passed, 1 failed"
  echo "dns-sipp: 0 passed, 1 failed"
  exit 1
}

[ "$(id -u)" = 0 ] || fail_both "needs root (a loopback-only network namespace)"
command -v ip >/dev/null || fail_both "ip (iproute2) not installed"
command -v dnsmasq >/dev/null || fail_both "dnsmasq not installed (apt-get install dnsmasq)"
ip netns add "$NS" 2>"$work/err" || fail_both "ip netns add failed: $(cat "$work/err")"
ns_made=1
ip netns exec "$NS" ip link set lo up || fail_both "ip link set lo up failed"
if ip netns exec "$NS" ip -o link show | grep -v ': lo:' | grep -q .; then
  fail_both "namespace $NS has more than loopback"
fi
NSX=(ip netns exec "$NS")

# 1. the busted cases
"${NSX[@]}" env ${LUASIP_PRELOAD:+LD_PRELOAD="$LUASIP_PRELOAD"} \
  LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH="$BUILD/lib/?.so;;" \
  timeout -k 5 180 spec/support/busted.sh "$LUA" /usr/bin/busted --ignore-lua -o plainTerminal \
  --lpath='lua/?.lua;lua/?/init.lua' --cpath="$BUILD/lib/?.so" \
  --pattern=dns_cases spec/dns >"$work/busted.out" 2>&1
grep -v '^busted: [0-9]* passed' "$work/busted.out"
line=$(grep -E '^busted: [0-9]+ passed, [0-9]+ failed$' "$work/busted.out" | tail -n 1)
[ -n "$line" ] || line="busted: 0 passed, 1 failed"
echo "dns: ${line#busted: }"

# 2. examples/proxy.lua relays to a domain with SRV records only (SIPp)
passed=0 failed=0
result() {
  if [ "$2" = 0 ]; then passed=$((passed + 1)); echo "ok   $1"
  else failed=$((failed + 1)); echo "FAIL $1 ${3:-}"; fi
}
if ! command -v sipp >/dev/null; then
  echo "dns-sipp: sipp not installed"
  echo "dns-sipp: 0 passed, 1 failed"
  exit 1
fi
cat >"$work/dnsmasq.conf" <<'CONF'
auth-zone=example.test
auth-server=ns.example.test,127.0.0.1
auth-ttl=60
srv-host=_sip._udp.example.test,uas.example.test,5090,0,0
host-record=uas.example.test,127.0.0.1
CONF
"${NSX[@]}" env -u LD_PRELOAD dnsmasq --no-daemon --port=5353 --listen-address=127.0.0.1 --bind-interfaces \
  --no-resolv --no-hosts --pid-file= --conf-file="$work/dnsmasq.conf" >"$work/dnsmasq.log" 2>&1 &
PIDS+=($!)
"${NSX[@]}" env ${LUASIP_PRELOAD:+LD_PRELOAD="$LUASIP_PRELOAD"} LUASIP_BUILD="$BUILD" \
  timeout -k 5 120 "$LUA" bin/luasip run examples/proxy.lua --listen udp:127.0.0.1:5060 \
  --domain local.test --dns 127.0.0.1:5353 --dns-timeout 2 >"$work/proxy.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
  grep -qs 'serving ' "$work/proxy.log" && break
  sleep 0.1
done
mkdir -p "$work/uas" "$work/uac"
DIR=$(pwd)/spec
(cd "$work/uas" && "${NSX[@]}" timeout -k 5 40 sipp -sf "$DIR/sipp/proxy_uas_ok.xml" -i 127.0.0.1 \
  -p 5090 -m 1 -d 100 -nostdin -timeout 30s -trace_err -error_file err.log >out.txt 2>&1
 echo $? >"$work/uas.rc") &
PIDS+=($!)
sleep 0.3
(cd "$work/uac" && "${NSX[@]}" timeout -k 5 40 sipp 127.0.0.1:5060 -sf "$DIR/dns/dns_uac_call.xml" \
  -i 127.0.0.1 -p 5081 -s bob -m 1 -nostdin -timeout 30s -trace_err -error_file err.log \
  >out.txt 2>&1
 echo $? >"$work/uac.rc")
wait "${PIDS[2]}" 2>/dev/null
uac=$(cat "$work/uac.rc" 2>/dev/null || echo none)
uas=$(cat "$work/uas.rc" 2>/dev/null || echo none)
if [ "$uac" = 0 ] && [ "$uas" = 0 ]; then
  result call-srv-only 0
else
  result call-srv-only 1 "(uac rc $uac, uas rc $uas)"
  tail -n 5 "$work/uac/err.log" "$work/uas/err.log" 2>/dev/null | sed 's/^/  | /'
  sed 's/^/  | /' "$work/proxy.log" | tail -n 20
fi
echo "dns-sipp: $passed passed, $failed failed"
[ "$failed" = 0 ] && grep -q ' 0 failed$' <<<"dns: ${line#busted: }"

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
. spec/sipp/lib.sh
suite_init dns dns

# this script reports two suites: a precondition that fails fails both
fail_both() {
  echo "dns: $1"
  echo "dns: 0 passed, 1 failed"
  echo "dns-sipp: 0 passed, 1 failed"
  exit 1
}
suite_fail() { fail_both "$1"; }

command -v dnsmasq >/dev/null || fail_both "dnsmasq not installed (apt-get install dnsmasq)"
ns_setup "the resolver sends where DNS answers say"

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
SUITE=dns-sipp
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
LUASIP_TIMEOUT=120 luasip_start "$work/proxy.log" 'serving ' examples/proxy.lua \
  --listen udp:127.0.0.1:5060 --domain local.test --dns 127.0.0.1:5353 --dns-timeout 2 || :
DIR=$(pwd)/spec
ns_sipp_bg uas 40 -sf "$DIR/sipp/proxy_uas_ok.xml" -i 127.0.0.1 -p 5090 -m 1 -d 100 -timeout 30s \
  -trace_err -error_file err.log
uas_pid=$!
sleep 0.3
ns_sipp uac 40 127.0.0.1:5060 -sf "$DIR/dns/dns_uac_call.xml" -i 127.0.0.1 -p 5081 -s bob -m 1 \
  -timeout 30s -trace_err -error_file err.log
echo $? >"$work/uac.rc"
wait "$uas_pid" 2>/dev/null
uac=$(cat "$work/uac.rc" 2>/dev/null || echo none)
uas=$(cat "$work/uas.rc" 2>/dev/null || echo none)
if [ "$uac" = 0 ] && [ "$uas" = 0 ]; then
  result call-srv-only 0
else
  result call-srv-only 1 "(uac rc $uac, uas rc $uas)"
  tail -n 5 "$work/uac/err.log" "$work/uas/err.log" 2>/dev/null | sed 's/^/  | /'
  sed 's/^/  | /' "$work/proxy.log" | tail -n 20
fi
suite_end && grep -q ' 0 failed$' <<<"dns: ${line#busted: }"

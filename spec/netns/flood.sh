#!/usr/bin/env bash
# Usage: spec/netns/flood.sh              (as root; from anywhere)
# Issue [edge], flood protection, in a network namespace with nothing but
# loopback: `luasip run examples/proxy.lua --flood 100` (through
# spec/netns/flood_proxy.lua, which prints its counters every 50 ms) on
# udp 127.0.0.1:5060; bob registered at a SIPp UAS on 127.0.0.1:5071.
#   legit      a SIPp caller on 127.0.0.1 makes 20 calls/s to bob (200
#              calls, INVITE/200/ACK/BYE) while SIPp floods from 127.0.0.2
#              at 5,000 INVITE/s for 6 s: every legitimate call succeeds
#   blocked    the flooder is blocked within 1 s of its first INVITE
#   one-503    the flooder got exactly one 503 (then silence)
#   cpu        the proxy's CPU per dropped flood packet after the block is
#              printed (a figure for the notes, not a pass/fail check)
# Bounded: about 15 s, every process stopped by PID. Prints
# "flood: N passed, N failed". $BUILD (build), $LUA (lua5.4).
set -u
cd "$(dirname "$0")/../.." || exit 1
. spec/sipp/lib.sh
suite_init flood flood
DIR=$(pwd)/spec/sipp
P=5060
ns_setup "a proxy sends where messages say"
need_cmds sipp

LUASIP_TIMEOUT=120 luasip_start "$work/proxy.log" 'serving ' spec/netns/flood_proxy.lua \
  --listen "udp:127.0.0.1:$P" --flood 100 --flood-block 60 || suite_fail "the proxy did not start"
PROXY_PID=$STARTED

# sipp_bg TAG SECONDS ARGS...: bounded, in the namespace, in $work/TAG/
sipp_bg() {
  local tag=$1 secs=$2; shift 2
  ns_sipp_bg "$tag" "$secs" "$@" -trace_err -error_file err.log -trace_stat -stf stat.csv
}

sipp_register "$P" bob 5071 5100

sipp_bg uas 40 -sf "$DIR/proxy_uas_ok.xml" -i 127.0.0.1 -p 5071 -m 200 -timeout 30s
sleep 0.3
# the flood: SIPp's own UAC scenario, INVITEs to a user that does not
# exist, 5,000 per second for 6 s (retransmissions add to it)
flood_t0=$(date +%s.%N)
sipp_bg flooder 20 "127.0.0.1:$P" -sn uac -i 127.0.0.2 -p 5090 -s nobody -r 5000 -l 40000 \
  -m 30000 -timeout 8s -max_recv_loops 100000
sleep 0.5
sipp_bg legit 40 "127.0.0.1:$P" -sf "$DIR/proxy_uac_call.xml" -i 127.0.0.1 -p 5081 -s bob \
  -r 20 -m 200 -timeout 30s
wait "$(jobs -p | grep -v "^$PROXY_PID\$")" 2>/dev/null
for _ in $(seq 400); do
  [ "$(rc_of legit)" != none ] && [ "$(rc_of flooder)" != none ] && [ "$(rc_of uas)" != none ] && break
  sleep 0.1
done

# legit: SIPp exits 0 when every call passed; its stats say how many failed
legit_rc=$(rc_of legit)
legit_ok=$(grep -o 'Successful call *| *[0-9]* *| *[0-9]*' "$work/legit/out.txt" | tail -n 1 | awk '{print $NF}')
legit_failed=$(grep -o 'Failed call *| *[0-9]* *| *[0-9]*' "$work/legit/out.txt" | tail -n 1 | awk '{print $NF}')
if [ "$legit_rc" = 0 ] && [ "${legit_failed:-x}" = 0 ]; then
  result legit 0 "(200 calls at 20/s under the flood: ${legit_ok:-?} successful, 0 failed)"
else
  result legit 1 "(rc $legit_rc, successful ${legit_ok:-?}, failed ${legit_failed:-?})"
  tail -n 5 "$work/legit/err.log" 2>/dev/null | sed 's/^/  | /'
fi

# blocked: the first stats line with blocks >= 1, against the flood's start
first=$(grep -m 1 -E '^flood-stats .* blocks=[1-9]' "$work/proxy.log")
if [ -n "$first" ]; then
  t_block=$(echo "$first" | sed -E 's/.* t=([0-9.]+) .*/\1/')
  # both in ms: t=S.mmm -> S mmm, date S.NNNNNNNNN -> first 3 decimals
  t_ms=$(echo "$t_block" | awk -F. '{printf "%s%s", $1, substr($2"000", 1, 3)}')
  f_ms=$(echo "$flood_t0" | awk -F. '{printf "%s%s", $1, substr($2"000", 1, 3)}')
  ms=$((t_ms - f_ms))
  if [ "$ms" -le 1000 ]; then
    result blocked 0 "(blocked ${ms} ms after the flood started, 50 ms resolution)"
  else
    result blocked 1 "(blocked ${ms} ms after the flood started)"
  fi
else
  result blocked 1 "(never blocked)"
fi

last=$(grep -E '^flood-stats ' "$work/proxy.log" | tail -n 1)
replied=$(echo "$last" | sed -E 's/.* replied=([0-9]+).*/\1/')
dropped=$(echo "$last" | sed -E 's/.* dropped=([0-9]+).*/\1/')
if [ "$replied" = 1 ]; then
  result one-503 0 "(flood_replied=1, flood_dropped=$dropped)"
else
  result one-503 1 "(flood_replied=$replied)"
fi

# cpu per dropped packet after the block: from the first line with a
# block to the last one
c0=$(echo "$first" | sed -E 's/.* cpu=([0-9.]+).*/\1/')
d0=$(echo "$first" | sed -E 's/.* dropped=([0-9]+).*/\1/')
c1=$(echo "$last" | sed -E 's/.* cpu=([0-9.]+).*/\1/')
if [ -n "$first" ] && [ "${dropped:-0}" -gt "${d0:-0}" ]; then
  us=$(awk -v a="$c0" -v b="$c1" -v n=$((dropped - d0)) 'BEGIN { printf "%.2f", (b - a) * 1e6 / n }')
  echo "note flood-cpu: ${us} us of proxy CPU per flood packet after the block" \
    "($((dropped - d0)) packets dropped; includes the legitimate calls served meanwhile)"
fi
kill -0 "$PROXY_PID" 2>/dev/null
result proxy-alive $?

suite_end

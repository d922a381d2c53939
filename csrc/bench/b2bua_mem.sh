#!/usr/bin/env bash
# Usage: csrc/bench/b2bua_mem.sh          (as root; from anywhere; needs sipp)
# Memory per call in flight through examples/b2bua.lua: SIPp A places
# $COUNT calls (10000) at $RATE calls/s (500; at most $LIMIT in flight,
# 2000), each INVITE/200/ACK then BYE at once, to SIPp B registered as
# "bob"; the calls end within seconds while their transactions wait out
# 64*T1 (32 s). The server is csrc/bench/b2bua_mem.lua (the example plus
# one line a second: RSS, Lua heap after a full collection, live
# transactions). Prints the figures before the calls, at the peak (the
# most live transactions) and once every transaction has ended:
#
#   b2bua-mem: N calls ...: rss_kb base/peak/end, heap_kb base/peak/end;
#     per call in flight at the peak (its live INVITE client transactions,
#     one a B leg): rss B, heap B, txn_mem B (live txns T)
#
# UAS=FILE: B's scenario in spec/sipp/ (b2bua_uas_call.xml; e.g.
# b2bua_uas_busy.xml: every call fails, its INVITE transaction waits out
# Timer D). B2BUA_CENSUS_AT=S: the server also writes a census of its Lua heap at
# second S (csrc/bench/heap_census.lua) into its log (kept with KEEP=1).
# Numbers only (no assertions). Loopback only, in a network namespace (a
# UA sends where the messages say); bounded (timeouts, PIDs stopped).
set -u
cd "$(dirname "$0")/../.." || exit 1
. spec/sipp/lib.sh
suite_init b2bua-mem b2bua-mem
COUNT=${COUNT:-10000}
RATE=${RATE:-500}
LIMIT=${LIMIT:-2000}
DIR=$(pwd)/spec/sipp
ns_setup "a UA sends where messages say"
need_sipp_and_build

LUASIP_TIMEOUT=300 luasip_start "$work/server.log" serving csrc/bench/b2bua_mem.lua --ctl off \
  --listen udp:127.0.0.1:5060 || exit 1
sleep 1.5
base=$(grep '^mem: ' "$work/server.log" | tail -n 1)
ns_sipp_bg b 200 -sf "$DIR/${UAS:-b2bua_uas_call.xml}" -i 127.0.0.1 -p 5090 -m "$COUNT" -timeout 150s
sleep 0.3
sipp_register 5060 bob 5090 5091
sipp_stat a 200 127.0.0.1:5060 -sf "$DIR/b2bua_uac_call.xml" -s bob -i 127.0.0.1 -p 5092 \
  -m "$COUNT" -r "$RATE" -l "$LIMIT" -d 0 -cid_str "aside-%u-%p@%s" -timeout 150s
read -r ok bad < <(counts "$work/a/stat.csv")
# until every transaction has ended (64*T1 after the last), at most 60 s
for _ in $(seq 120); do
  sleep 0.5
  last=$(grep '^mem: ' "$work/server.log" | tail -n 1)
  case $last in *" txn_live=0 "*) break ;; esac
done
sleep 1.2
last=$(grep '^mem: ' "$work/server.log" | tail -n 1)
peak=$(grep '^mem: ' "$work/server.log" | awk '{ for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
  if (v["txn_live"] + 0 >= best) { best = v["txn_live"] + 0; line = $0 } } END { print line }')
kv() { awk -v k="$1=" '{ for (i = 1; i <= NF; i++) if (index($i, k) == 1) { print substr($i, length(k) + 1); exit } }' <<<"$2"; }
per() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { if (n > 0) printf "%d", (a - b) * 1024 / n; else print "na" }'; }
n=$(kv ict "$peak")
echo "base: $base"
echo "peak: $peak"
echo "end:  $last"
echo "b2bua-mem: $COUNT calls at $RATE/s (A: $ok ok, $bad failed):" \
  "rss_kb $(kv rss_kb "$base")/$(kv rss_kb "$peak")/$(kv rss_kb "$last")," \
  "heap_kb $(kv heap_kb "$base")/$(kv heap_kb "$peak")/$(kv heap_kb "$last");" \
  "per call in flight at the peak ($n INVITE transactions): rss $(per "$(kv rss_kb "$peak")" "$(kv rss_kb "$base")" "$n") B," \
  "heap $(per "$(kv heap_kb "$peak")" "$(kv heap_kb "$base")" "$n") B," \
  "txn_mem $(per "$(kv txn_mem_kb "$peak")" 0 "$n") B (live txns $(kv txn_live "$peak"))"

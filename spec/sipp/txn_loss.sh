#!/usr/bin/env bash
# Usage: spec/sipp/txn_loss.sh
# SIPp end to end over UDP on 127.0.0.1 with simulated loss (-lost $LOST,
# default 10: SIPp drops that percentage of what it sends and receives), so
# every transaction must complete through retransmission:
#  (a) non-INVITE: SIPp UAC (spec/sipp/nict_uac.xml: OPTIONS then REGISTER
#      per call) -> examples/uas200.lua; $NICT_CALLS calls (200) at 50/s;
#  (b) calls: SIPp UAC (spec/sipp/invite_uac.xml: INVITE/180/200/ACK/BYE/200)
#      -> uas200.lua; $CALLS calls (100) at 20/s;
#  (c) INVITE/486/ACK (spec/sipp/busy_uac.xml), owned by the server's
#      INVITE transaction (Timer G until the ACK); $CALLS calls;
#  (d) the reverse for non-INVITE: a luasip UAC (spec/sipp/uac_options.lua,
#      $UAC_COUNT OPTIONS (200), 10 in parallel) -> SIPp UAS
#      (spec/sipp/options_uas.xml) under the same loss.
# Checks SuccessfulCall = calls and FailedCall = 0 in SIPp's -trace_stat file
# for (a), (b), (c); for (c) also that the server saw no Timer H (every 486
# was acknowledged); for (d) that every OPTIONS got 200 and the SIPp UAS had
# no failed call; and that the server survived. Prints "sipp-txn: N passed,
# N failed". Ports: $PORT (5072, the luasip UAS), $SIPP_PORT (5083, SIPp UAC),
# $SIPP_UAS_PORT (5084), in a loopback-only network namespace of its own
# (as root). Every process is bounded by timeout(1); the server
# is stopped by PID. Needs `make` first (uses $BUILD, default build/).
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build}
PORT=${PORT:-5072}
SIPP_PORT=${SIPP_PORT:-5083}
SIPP_UAS_PORT=${SIPP_UAS_PORT:-5084}
LOST=${LOST:-10}
NICT_CALLS=${NICT_CALLS:-200}
CALLS=${CALLS:-100}
UAC_COUNT=${UAC_COUNT:-200}
export LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="$BUILD/lib/?.so;;"
LUA=${LUA:-lua5.4}
SUITE=sipp-txn
. spec/sipp/lib.sh

work=$(mktemp -d /tmp/luasip-txn-loss.XXXXXX)
# its own loopback-only namespace: the ports above are fixed, and another
# run of a suite on the machine (a second checkout's) must not hold them
NS=luasip-txn-loss-$$
ns_made=
trap 'stop_server; if [ -n "$ns_made" ]; then ip netns pids "$NS" 2>/dev/null | xargs -r kill -9 2>/dev/null; ip netns delete "$NS" 2>/dev/null; fi; rm -rf "$work"' EXIT

need_sipp_and_build
ns_setup "fixed ports, apart from other runs on the machine"

# SuccessfulCall FailedCall Retransmissions from a -trace_stat file
sipp_counts() {
  awk -F';' '
    NR == 1 { for (i = 1; i <= NF; i++) { if ($i == "SuccessfulCall(C)") s = i; if ($i == "FailedCall(C)") f = i;
              if ($i == "Retransmissions(C)") r = i } next }
    { ok = $s; bad = $f; re = $r }
    END { if (s && f && NR > 1) print ok + 0, bad + 0, re + 0; else print "none", "none", "none" }' "$1" 2>/dev/null
}

# stat NAME: one counter of the running server
stat() {
  "${NSX[@]}" timeout 10 "$LUA" spec/sipp/stats.lua "$PORT" 2>/dev/null | awk -v k="$1" '$1 == k { print $2 }'
}

"${NSX[@]}" "$LUA" examples/uas200.lua --listen "udp:127.0.0.1:$PORT" --t1 100 --t2 1000 >"$work/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do
  grep -qs '^listening on ' "$work/server.log" && break
  kill -0 "$SERVER_PID" 2>/dev/null || break
  sleep 0.1
done
if ! grep -q '^listening on ' "$work/server.log"; then
  echo "server did not start; its output:"
  sed 's/^/  | /' "$work/server.log"
  echo "sipp-txn: 0 passed, 1 failed"
  exit 1
fi

run_uac() { # run_uac NAME SCENARIO CALLS RATE SERVICE
  local name=$1 sf=$2 calls=$3 rate=$4 service=$5 dir=$work/$1
  mkdir -p "$dir"
  local t0 rc
  t0=$(date +%s.%N)
  (cd "$dir" && "${NSX[@]}" timeout -k 5 90 sipp "127.0.0.1:$PORT" -sf "$OLDPWD/$sf" -t u1 -s "$service" \
    -i 127.0.0.1 -p "$SIPP_PORT" -m "$calls" -r "$rate" -lost "$LOST" -max_retrans 12 \
    -timeout 80s -nostdin -trace_stat -stf stat.csv -trace_err -error_file err.log >sipp.out 2>&1)
  rc=$?
  read -r ok bad re < <(sipp_counts "$dir/stat.csv")
  printf 'sipp %s: exit %s, %.1f s, SuccessfulCall %s, FailedCall %s, Retransmissions %s\n' "$name" "$rc" \
    "$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { print a - b }')" "$ok" "$bad" "$re"
  check "$name SuccessfulCall" "$ok" "$calls"
  check "$name FailedCall" "$bad" 0
  if [ "$bad" != 0 ] || [ "$ok" != "$calls" ]; then
    grep -v '^$' "$dir/err.log" 2>/dev/null | sort | uniq -c | sort -rn | head -n 8 | sed 's/^/  | /'
  fi
}

t0=$(stat txn_timeouts)
r0=$(stat txn_retransmissions)
run_uac nict spec/sipp/nict_uac.xml "$NICT_CALLS" 50 uas
echo "server: txn_absorbed $(stat txn_absorbed), txn_retransmissions $(stat txn_retransmissions)"
run_uac invite spec/sipp/invite_uac.xml "$CALLS" 20 uas
if [ "$ok" != "$CALLS" ]; then
  echo "  note: a 200 to an INVITE is sent once: nothing in luasip retransmits it until the ACK"
  echo "  (the UAS core's job, RFC 3261 §13.3.1.4; req:reply raises on a second final), so each"
  echo "  200 that SIPp drops is a failed call; INVITE retransmissions are absorbed in Accepted"
  echo "  (RFC 6026 §7.1) and SIPp stops retransmitting once the 180 came."
fi
h0=$(stat txn_timeouts)
run_uac busy spec/sipp/busy_uac.xml "$CALLS" 20 busy
h1=$(stat txn_timeouts)
# Timer H may still run for the last calls if their ACK was lost: wait
# for it (64*T1 = 6.4 s), then count
sleep 7
h1=$(stat txn_timeouts)
echo "server: txn_timeouts ${t0:-?} at start, ${h0:-?} before busy, ${h1:-?} after; txn_retransmissions ${r0:-?} -> $(stat txn_retransmissions)"
check "busy Timer H expiries (unacknowledged 486)" "$((${h1:-0} - ${h0:-0}))" 0

# (d) luasip UAC -> SIPp UAS
dir=$work/uac
mkdir -p "$dir"
(cd "$dir" && exec "${NSX[@]}" timeout -k 5 90 sipp -sf "$OLDPWD/spec/sipp/options_uas.xml" -t u1 -i 127.0.0.1 \
  -p "$SIPP_UAS_PORT" -m "$UAC_COUNT" -lost "$LOST" -timeout 80s -nostdin -trace_stat -stf stat.csv \
  -trace_err -error_file err.log >sipp.out 2>&1) &
uas_pid=$!
wait_bound "$SIPP_UAS_PORT"
out=$("${NSX[@]}" timeout -k 5 60 "$LUA" spec/sipp/uac_options.lua "$SIPP_UAS_PORT" "$UAC_COUNT" 10 2>&1)
echo "$out" | tail -n 5
got=$(echo "$out" | sed -n 's/^uac-options: [0-9]* sent, \([0-9]*\) got 200.*/\1/p' | tail -n 1)
check "luasip UAC OPTIONS answered 200" "${got:-none}" "$UAC_COUNT"
wait "$uas_pid"
read -r ok bad re < <(sipp_counts "$dir/stat.csv")
echo "sipp uas: SuccessfulCall $ok, FailedCall $bad, Retransmissions $re"
check "sipp UAS FailedCall" "$bad" 0

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
  failed=$((failed + 1))
  echo "FAIL the server died; its output:"
  sed 's/^/  | /' "$work/server.log"
elif [ -s "$work/server.log" ] && grep -qv '^listening on ' "$work/server.log"; then
  echo "server log:"
  grep -v '^listening on ' "$work/server.log" | head -n 20 | sed 's/^/  | /'
fi
echo "sipp-txn: $passed passed, $failed failed"
[ "$failed" = 0 ]

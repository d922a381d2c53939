#!/usr/bin/env bash
# Usage: spec/sipp/ua_sipp.sh            (as root; from anywhere)
# The user agent (luasip.ua, csrc/dialog) against SIPp, in a loopback-only
# network namespace (a UA sends to the Contact of what it receives):
# examples/echo_ua.lua answers SIPp UACs, examples/call.lua calls SIPp UASes,
# and call.lua calls echo_ua through examples/proxy.lua.
#   uac-call-udp/tcp       INVITE+SDP / 180 / 200 with an SDP answer (the
#                          common codec only) / ACK / BYE from SIPp / 200
#   uac-bye-udp/tcp        echo_ua hangs up (--hold-time): its BYE, CSeq 1,
#                          tags swapped
#   uac-reinvite-udp/tcp   re-INVITE to hold (answer recvonly), INFO, BYE
#   uac-cancel-udp/tcp     CANCEL during ringing: 200, 487, ACK
#   uac-update-udp/tcp     UPDATE with an offer (hold) in the call: 200 with
#                          the answer (recvonly)
#   uac-timer-udp/tcp      session timer (RFC 4028) asked with refresher=uas:
#                          echo_ua's 200 (Session-Expires, Require: timer),
#                          its refresh re-INVITE at half the interval
#   uac-prack-udp/tcp      100rel required: the answer in a reliable 183
#                          (RSeq), PRACK / 200, 200 / ACK, BYE
#   uac-lost               $CALLS calls at 10/s under -lost 10: 0 failed
#   uas-call-udp/tcp       call.lua -> a SIPp UAS: 200, ACK, BYE
#   uas-prack-udp/tcp      call.lua -> a SIPp UAS sending a reliable 183
#                          with the answer: PRACK (RAck checked), 200 for
#                          it, 200, ACK, BYE
#   uas-midcall-udp/tcp    call.lua --update --info -> a SIPp UAS: UPDATE
#                          with an offer, INFO (dtmf-relay), both 200
#   uas-glare              call.lua --reinvite -> a SIPp UAS that answers
#                          the re-INVITE 491 (glare) and sends its own,
#                          which call.lua answers; call.lua retries after
#                          the §14.1 back-off: 200
#   uas-race-udp/tcp       the CANCEL/200 race: call.lua --timeout cancels,
#                          the 200 crosses the CANCEL: ACK, then BYE
#   uas-timer              call.lua --session-expires 2 -> a SIPp UAS: the
#                          INVITE asks it, call.lua's refresh at 1 s
#   uas-bye                call.lua -> a SIPp UAS that hangs up: call.lua's
#                          wait sees the BYE ("ended by the callee")
#   proxy-call             call.lua -> proxy.lua -> echo_ua (registered):
#                          answered, re-INVITEs and BYE through the
#                          proxy's Record-Route
#   fork-early-dialogs     call.lua -> proxy.lua -> two SIPp UASes (one AOR,
#                          parallel fork): two 180s with different To tags,
#                          one 200, the other cancelled (487); one call
#   late-2xx-ua, -txn      (no luasip) ua_uac_call.xml, invite_uac.xml
#                          against late_2xx_uas.xml: the INVITE's 2xx sent
#                          again after the BYE gets the ACK again, the
#                          BYE waits for its own 200 (each side 1 call)
#   late-2xx-reinvite      (no luasip) ua_uac_reinvite.xml, the same 2xx
#                          after the re-INVITE (late_2xx_reinvite_uas.xml)
# Checks: SIPp's SuccessfulCall / FailedCall (-trace_stat), call.lua's
# outcome line. Prints "sipp-ua: N passed, N failed".
# $BUILD (build), $LUA (lua5.4), $LUASIP_PRELOAD (preloaded into luasip).
set -u
cd "$(dirname "$0")/../.." || exit 1
. spec/sipp/lib.sh
suite_init sipp-ua ua-sipp
CALLS=${CALLS:-50}
DIR=$(pwd)/spec/sipp
ns_setup "a UA sends where messages say"
need_sipp_and_build
luasip_cmd 300

# start NAME SCRIPT ARGS...: a luasip process in the namespace, up when it
# logs "serving"
start() {
  local name=$1; shift
  luasip_start "$work/$name.log" serving "$@" --ctl off || echo "  ($name did not start)"
}

# sipp_run TAG ARGS...: bounded, in the namespace, in $work/TAG/
sipp_run() {
  sipp_stat "$1" 90 "${@:2}"
}

# expect_calls NAME TAG N: SIPp counted N successful calls and 0 failed
expect_calls() {
  local ok bad
  read -r ok bad < <(counts "$work/$2/stat.csv")
  if [ "$ok" = "$3" ] && [ "$bad" = 0 ]; then
    result "$1" 0
  else
    result "$1" 1 "(SuccessfulCall $ok, FailedCall $bad, want $3 and 0)"
    tail -n 5 "$work/$2/err.log" 2>/dev/null | cut -c1-300 | sed 's/^/  | /'
  fi
}

# --- SIPp UACs against echo_ua ---------------------------------------------------
start echo examples/echo_ua.lua --listen udp:127.0.0.1:5070 --listen tcp:127.0.0.1:5070 --hold-time 0
start hangup examples/echo_ua.lua --listen udp:127.0.0.1:5071 --listen tcp:127.0.0.1:5071 --hold-time 0.3
start ring examples/echo_ua.lua --listen udp:127.0.0.1:5072 --listen tcp:127.0.0.1:5072 --ring 5
start timer examples/echo_ua.lua --listen udp:127.0.0.1:5073 --listen tcp:127.0.0.1:5073 --hold-time 0 --min-se 1

for tp in udp tcp; do
  t=u1; [ "$tp" = tcp ] && t=t1
  sipp_run "call-$tp" 127.0.0.1:5070 -sf "$DIR/ua_uac_call.xml" -s echo -t $t -i 127.0.0.1 -p 5081 -m 5 -timeout 30s
  expect_calls "uac-call-$tp" "call-$tp" 5
  sipp_run "bye-$tp" 127.0.0.1:5071 -sf "$DIR/ua_uac_wait_bye.xml" -s echo -t $t -i 127.0.0.1 -p 5082 -m 3 -timeout 30s
  expect_calls "uac-bye-$tp" "bye-$tp" 3
  sipp_run "reinvite-$tp" 127.0.0.1:5070 -sf "$DIR/ua_uac_reinvite.xml" -s echo -t $t -i 127.0.0.1 -p 5083 -m 3 -timeout 30s
  expect_calls "uac-reinvite-$tp" "reinvite-$tp" 3
  sipp_run "cancel-$tp" 127.0.0.1:5072 -sf "$DIR/proxy_uac_cancel.xml" -s echo -t $t -i 127.0.0.1 -p 5084 -m 3 -timeout 30s
  expect_calls "uac-cancel-$tp" "cancel-$tp" 3
  sipp_run "update-$tp" 127.0.0.1:5070 -sf "$DIR/ua_uac_update.xml" -s echo -t $t -i 127.0.0.1 -p 5087 -m 3 -timeout 30s
  expect_calls "uac-update-$tp" "update-$tp" 3
  sipp_run "timer-$tp" 127.0.0.1:5073 -sf "$DIR/ua_uac_timer.xml" -s echo -t $t -i 127.0.0.1 -p 5088 -m 2 -timeout 30s
  expect_calls "uac-timer-$tp" "timer-$tp" 2
  sipp_run "prack-$tp" 127.0.0.1:5070 -sf "$DIR/ua_uac_prack.xml" -s echo -t $t -i 127.0.0.1 -p 5086 -m 3 -timeout 30s
  expect_calls "uac-prack-$tp" "prack-$tp" 3
done
sipp_run lost 127.0.0.1:5070 -sf "$DIR/ua_uac_call.xml" -s echo -i 127.0.0.1 -p 5085 -m "$CALLS" -r 10 \
  -lost 10 -max_retrans 12 -timeout 80s
expect_calls uac-lost lost "$CALLS"

# --- call.lua against SIPp UASes ------------------------------------------------
# uas_call NAME TAG OUTCOME SIPP-ARGS... -- CALL-ARGS...
uas_call() {
  local name=$1 tag=$2 want=$3; shift 3
  local sargs=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do sargs+=("$1"); shift; done
  shift
  sipp_stat "$tag" 30 "${sargs[@]}" -m 1 -timeout 20s &
  local spid=$!
  local i
  for ((i = 0; i < ${#sargs[@]} - 1; i++)); do
    [ "${sargs[i]}" = -p ] && wait_bound "${sargs[i + 1]}"
  done
  "${LUASIP[@]}" examples/call.lua --ctl off "$@" >"$work/$tag/call.out" 2>"$work/$tag/call.log"
  wait "$spid"
  local got
  got=$(grep '^call:' "$work/$tag/call.out" | sed 's/^call: //' | paste -sd'|')
  if [ "$got" = "$want" ]; then
    expect_calls "$name" "$tag" 1
  else
    result "$name" 1 "(call.lua said '$got', want '$want')"
    tail -n 5 "$work/$tag/call.log" | sed 's/^/  | /'
  fi
}

uas_call uas-call-udp uas-udp "answered 200; BYE 200" -sf "$DIR/ua_uas_call.xml" -i 127.0.0.1 -p 5090 -- \
  --listen udp:127.0.0.1:5091 --to sip:x@127.0.0.1:5090 --hold-time 0.2
uas_call uas-call-tcp uas-tcp "answered 200; BYE 200" -sf "$DIR/ua_uas_call.xml" -t t1 -i 127.0.0.1 -p 5092 -- \
  --listen tcp:127.0.0.1:5093 --to "sip:x@127.0.0.1:5092;transport=tcp" --hold-time 0.2
uas_call uas-prack-udp uas-prack-udp "answered 200; BYE 200" -sf "$DIR/ua_uas_prack.xml" -i 127.0.0.1 -p 5100 -- \
  --listen udp:127.0.0.1:5101 --to sip:x@127.0.0.1:5100 --hold-time 0.2
uas_call uas-prack-tcp uas-prack-tcp "answered 200; BYE 200" -sf "$DIR/ua_uas_prack.xml" -t t1 -i 127.0.0.1 -p 5102 -- \
  --listen tcp:127.0.0.1:5103 --to "sip:x@127.0.0.1:5102;transport=tcp" --hold-time 0.2
uas_call uas-midcall-udp uas-mid-udp "UPDATE 200, INFO 200|answered 200; BYE 200" -sf "$DIR/ua_uas_midcall.xml" \
  -i 127.0.0.1 -p 5104 -- --listen udp:127.0.0.1:5105 --to sip:x@127.0.0.1:5104 --hold-time 0.2 --update --info
uas_call uas-midcall-tcp uas-mid-tcp "UPDATE 200, INFO 200|answered 200; BYE 200" -sf "$DIR/ua_uas_midcall.xml" \
  -t t1 -i 127.0.0.1 -p 5106 -- --listen tcp:127.0.0.1:5107 --to "sip:x@127.0.0.1:5106;transport=tcp" --hold-time 0.2 \
  --update --info
uas_call uas-glare uas-glare "re-INVITE hold 200, resume 200|answered 200; BYE 200" -sf "$DIR/ua_uas_glare.xml" \
  -i 127.0.0.1 -p 5108 -- --listen udp:127.0.0.1:5109 --to sip:x@127.0.0.1:5108 --hold-time 0.2 --reinvite
uas_call uas-race-udp uas-race-udp "failed 200 OK (timeout)" -sf "$DIR/ua_uas_race.xml" -i 127.0.0.1 -p 5110 -- \
  --listen udp:127.0.0.1:5111 --to sip:x@127.0.0.1:5110 --timeout 0.3
uas_call uas-race-tcp uas-race-tcp "failed 200 OK (timeout)" -sf "$DIR/ua_uas_race.xml" -t t1 -i 127.0.0.1 -p 5112 -- \
  --listen tcp:127.0.0.1:5113 --to "sip:x@127.0.0.1:5112;transport=tcp" --timeout 0.3
uas_call uas-timer uas-timer "answered 200; BYE 200" -sf "$DIR/ua_uas_timer.xml" -i 127.0.0.1 -p 5114 -- \
  --listen udp:127.0.0.1:5115 --to sip:x@127.0.0.1:5114 --hold-time 1.5 --session-expires 2
uas_call uas-bye uas-bye "answered 200; ended by the callee" -sf "$DIR/ua_uas_bye.xml" -i 127.0.0.1 -p 5094 -- \
  --listen udp:127.0.0.1:5095 --to sip:x@127.0.0.1:5094 --hold-time 5

# --- luasip UA to luasip UA through the proxy ----------------------------------
start proxy examples/proxy.lua --listen udp:127.0.0.1:5060 --listen tcp:127.0.0.1:5060
sipp_register 5060 echo 5070 5096
"${LUASIP[@]}" examples/call.lua --ctl off --trace --listen udp:127.0.0.1:5097 --to sip:echo@127.0.0.1:5060 \
  --hold-time 0.2 --reinvite >"$work/proxy-call.out" 2>"$work/proxy-call.log"
got=$(grep '^call:' "$work/proxy-call.out" | tr '\n' '|')
# in-dialog requests follow the proxy's Record-Route: the BYE goes to it
via_proxy=$(awk 'prev && /^BYE / { n++ } { prev = ($0 ~ /-> 127\.0\.0\.1:5060 /) } END { print n + 0 }' \
  "$work/proxy-call.log")
if [ "$got" = "call: re-INVITE hold 200, resume 200|call: answered 200; BYE 200|" ] && [ "$via_proxy" -ge 1 ]; then
  result proxy-call 0
else
  result proxy-call 1 "(call.lua said '$got'; BYEs to the proxy: $via_proxy)"
  tail -n 5 "$work/proxy-call.log" | sed 's/^/  | /'
fi

# a forked INVITE: two SIPp UASes registered for sip:fork@ at the proxy
# (equal q: in parallel) answer 180 with their own To tags (two early
# dialogs at call.lua); one answers 200, the proxy CANCELs the other (487):
# call.lua ends with one confirmed dialog (ACK, BYE through the proxy)
for p in 5116 5117; do
  sipp_register 5060 fork $p 5098
done
mkdir -p "$work/fork"
(cd "$work/fork" && "${NSX[@]}" timeout -k 5 30 sipp -sf "$DIR/proxy_uas_ok.xml" -i 127.0.0.1 -p 5116 -d 500 -m 1 \
  -nostdin -timeout 20s -trace_err -error_file err-ok.log >out-ok.txt 2>&1; echo $? >rc-ok) &
PIDS+=($!)
(cd "$work/fork" && "${NSX[@]}" timeout -k 5 30 sipp -sf "$DIR/proxy_uas_ring_cancel.xml" -i 127.0.0.1 -p 5117 -m 1 \
  -nostdin -timeout 20s -trace_err -error_file err-cancel.log >out-cancel.txt 2>&1; echo $? >rc-cancel) &
PIDS+=($!)
wait_bound 5116 5117
"${LUASIP[@]}" examples/call.lua --ctl off --trace --listen udp:127.0.0.1:5099 --to sip:fork@127.0.0.1:5060 \
  --hold-time 0.2 >"$work/fork/call.out" 2>"$work/fork/call.log"
for _ in $(seq 100); do
  [ -s "$work/fork/rc-ok" ] && [ -s "$work/fork/rc-cancel" ] && break
  sleep 0.1
done
got=$(grep '^call:' "$work/fork/call.out" | tr '\n' '|')
# two 180s with different To tags reached call.lua
tags=$(awk '/^SIP\/2.0 180 / { r = 1 } r && /^To:/ { sub(/.*tag=/, ""); print; r = 0 }' "$work/fork/call.log" | sort -u | wc -l)
rc_ok=$(cat "$work/fork/rc-ok" 2>/dev/null) rc_cancel=$(cat "$work/fork/rc-cancel" 2>/dev/null)
if [ "$got" = "call: answered 200; BYE 200|" ] && [ "$tags" -ge 2 ] && [ "$rc_ok" = 0 ] && [ "$rc_cancel" = 0 ]; then
  result fork-early-dialogs 0
else
  result fork-early-dialogs 1 "(call.lua said '$got'; 180 To tags $tags; SIPp rc $rc_ok/$rc_cancel)"
  tail -n 5 "$work/fork/"err-*.log 2>/dev/null | sed 's/^/  | /'
fi

# --- the caller scenarios themselves: a late INVITE 2xx ----------------------------
# late_2xx NAME UAC.xml PORT [PEER.xml]: the peer (late_2xx_uas.xml, on
# PORT) sends the INVITE's 2xx again after the BYE (late_2xx_reinvite_uas:
# after the re-INVITE) and wants the ACK again before it answers; the
# caller (UAC.xml, on PORT+1) matches the answer by transaction, ACKs
# that 2xx again and waits. No luasip here: what SIPp
# does with a retransmitted 2xx that a stalled or lossy server sends.
late_2xx() {
  local name=$1 uac=$2 pp=$3 peer=${4:-late_2xx_uas.xml} bg
  sipp_stat "$name-peer" 30 -sf "$DIR/$peer" -i 127.0.0.1 -p "$pp" -m 1 -timeout 15s &
  bg=$!
  wait_bound "$pp"
  sipp_run "$name" "127.0.0.1:$pp" -sf "$DIR/$uac" -s peer -i 127.0.0.1 -p $((pp + 1)) -m 1 -timeout 15s
  wait "$bg"
  expect_calls "$name" "$name" 1
  expect_calls "$name-peer" "$name-peer" 1
}
late_2xx late-2xx-ua ua_uac_call.xml 5190
late_2xx late-2xx-txn invite_uac.xml 5192
late_2xx late-2xx-reinvite ua_uac_reinvite.xml 5194 late_2xx_reinvite_uas.xml

suite_end

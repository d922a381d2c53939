#!/usr/bin/env bash
# Usage: spec/sipp/b2bua_sipp.sh            (as root; from anywhere)
# examples/b2bua.lua (luasip.b2bua) bridging two SIPp instances, in a
# loopback-only network namespace (a UA sends where the messages say):
# SIPp B (the callee) registers at b2bua.lua, SIPp A calls it.
#   call-T         call, BYE from A                      (T: udp, tcp, x)
#   bye-T          call, BYE from B, relayed to A
#   cancel-T       CANCEL from A during ringing: B gets CANCEL, A 487
#   early-T        183 with SDP then 200 with SDP: A receives both SDPs
#   reinvite-T     re-INVITE hold/resume from A, then from B
#   failover-T     (udp, tcp) B's first binding (q=1.0) 486, the next one (q=0.5) answers
#   auth-udp       --users: REGISTER 401/200, INVITE 407 then the call, no
#                  credentials on the B leg
#   lost           $CALLS calls, A under -lost 10, B losing 10% of its 200s,
#                  ACKs and BYEs: 0 failed
#   stalled-b      B stopped 1.2 s while 2 INVITEs reach it (their Timer A
#                  retransmissions read after B's 200): 2 calls, 0 failed
#   stalled-b-ring the same with B answering 180 then 200
# x: A on UDP, B on TCP. In every scenario the side that receives checks
# that nothing of the other side's Via, Contact, Call-ID, tags or
# Record-Route reaches it (A marks its headers "aside", B "bside"; ereg
# check_it_inverse). Checks: SIPp's SuccessfulCall / FailedCall of both
# sides. Prints "b2bua-sipp: N passed, N failed".
# $BUILD (build), $LUA (lua5.4), $CALLS (50), $LUASIP_PRELOAD; $TPS (the
# transports of the first group, "udp tcp x"; " ": none, and no auth-udp).
set -u
cd "$(dirname "$0")/../.." || exit 1
. spec/sipp/lib.sh
suite_init b2bua-sipp b2bua-sipp
CALLS=${CALLS:-50}
DIR=$(pwd)/spec/sipp
ns_setup "a UA sends where messages say"
need_sipp_and_build

LUASIP_TIMEOUT=600 luasip_start "$work/b2bua.log" serving examples/b2bua.lua --ctl off --cdr \
  --listen udp:127.0.0.1:5060 --listen tcp:127.0.0.1:5060

# register AOR PORT TP Q: a binding of AOR at SIPp B's address
register() {
  sipp_register 5060 "$1" "$2" $((20000 + $2 % 10000)) "$3" "$4"
}

# sipp_bg TAG ARGS...: a SIPp in the background (B), in $work/TAG/
sipp_bg() {
  sipp_stat "$1" 120 "${@:2}" &
  BG=$!
}

# expect TAG N: SIPp of TAG counted N successful calls and 0 failed
expect() {
  local ok bad
  read -r ok bad < <(counts "$work/$1/stat.csv")
  if [ "$ok" = "$2" ] && [ "$bad" = 0 ]; then
    return 0
  fi
  echo "  ($1: SuccessfulCall $ok, FailedCall $bad, want $2 and 0)"
  tail -n 4 "$work/$1/err.log" 2>/dev/null | cut -c1-300 | sed 's/^/  | /'
  return 1
}

port=5100
# bridged NAME TP-A TP-B UAC.xml UAS.xml N [A-ARGS...]: B registers as NAME
# and waits for N calls; A places them; both must count N successful calls
bridged() {
  local name=$1 ta=$2 tb=$3 uac=$4 uas=$5 n=$6; shift 6
  local pa=$((port + 1)) pb=$((port + 2)) rc=0 bpid
  port=$((port + 10))
  local tpa=u1 tpb=u1
  [ "$ta" = tcp ] && tpa=t1
  [ "$tb" = tcp ] && tpb=t1
  sipp_bg "$name-b" -sf "$DIR/$uas" -t $tpb -i 127.0.0.1 -p $pb -m "$n" -timeout 60s "${B_ARGS[@]}"
  bpid=$BG
  wait_bound $pb
  register "$name" $pb "$tb" 1.0
  sipp_stat "$name-a" 90 127.0.0.1:5060 -sf "$DIR/$uac" -s "$name" -t $tpa \
    -i 127.0.0.1 -p $pa -m "$n" -cid_str "aside-%u-%p@%s" -timeout 60s "$@"
  wait "$bpid"
  expect "$name-a" "$n" || rc=1
  expect "$name-b" "$n" || rc=1
  result "$name" $rc
}

# failover NAME TP: two bindings of NAME, q=1.0 answering 486, q=0.5 answering;
# A places 2 calls: each goes to the first, then the second
failover() {
  local name=$1 tp=$2 rc=0 p1 p2 t=u1
  local pa=$((port + 1)) pb=$((port + 2)) pc=$((port + 3))
  port=$((port + 10))
  [ "$tp" = tcp ] && t=t1
  sipp_bg "$name-busy" -sf "$DIR/b2bua_uas_busy.xml" -t $t -i 127.0.0.1 -p $pb -m 2 -timeout 60s
  p1=$BG
  sipp_bg "$name-b" -sf "$DIR/b2bua_uas_call.xml" -t $t -i 127.0.0.1 -p $pc -m 2 -timeout 60s
  p2=$BG
  wait_bound $pb $pc
  register "$name" $pb "$tp" 1.0
  register "$name" $pc "$tp" 0.5
  sipp_stat "$name-a" 90 127.0.0.1:5060 -sf "$DIR/b2bua_uac_call.xml" -s "$name" \
    -t $t -i 127.0.0.1 -p $pa -m 2 -cid_str "aside-%u-%p@%s" -timeout 60s
  wait "$p1" "$p2"
  expect "$name-a" 2 || rc=1
  expect "$name-busy" 2 || rc=1
  expect "$name-b" 2 || rc=1
  result "$name" $rc
}

B_ARGS=()
for tp in ${TPS:-udp tcp x}; do
  ta=$tp tb=$tp
  [ "$tp" = x ] && ta=udp tb=tcp
  bridged "call-$tp" $ta $tb b2bua_uac_call.xml b2bua_uas_call.xml 3 -d 100
  bridged "bye-$tp" $ta $tb b2bua_uac_wait_bye.xml b2bua_uas_bye.xml 2
  bridged "cancel-$tp" $ta $tb b2bua_uac_cancel.xml b2bua_uas_ring.xml 2
  bridged "early-$tp" $ta $tb b2bua_uac_early.xml b2bua_uas_early.xml 2
  bridged "reinvite-$tp" $ta $tb b2bua_uac_reinvite.xml b2bua_uas_reinvite.xml 2
  [ "$tp" != x ] && failover "failover-$tp" $tp
done

# --users: REGISTER 401 then 200, INVITE 407 then the call; the credentials
# stay on the A leg (B checks that no Authorization header reaches it)
auth_call() {
  local rc=0 bpid
  printf 'alice:secret\nauthb:bobpw\n' >"$work/users.txt"
  LUASIP_TIMEOUT=120 luasip_start "$work/b2bua-auth.log" serving examples/b2bua.lua --ctl off \
    --users "$work/users.txt" --algorithms MD5 --listen udp:127.0.0.1:5062
  sipp_bg auth-b -sf "$DIR/b2bua_uas_call.xml" -i 127.0.0.1 -p 5302 -m 1 -timeout 30s
  bpid=$BG
  wait_bound 5302
  sipp_stat auth-reg 15 127.0.0.1:5062 -sf "$DIR/b2bua_reg_auth.xml" \
    -i 127.0.0.1 -p 5303 -s authb -au authb -ap bobpw -key contact_port 5302 -key tp udp -m 1 -timeout 10s
  expect auth-reg 1 || rc=1
  sipp_stat auth-a 30 127.0.0.1:5062 -sf "$DIR/b2bua_uac_auth.xml" -s authb -au alice -ap secret \
    -auth_uri authb@127.0.0.1:5062 -i 127.0.0.1 -p 5301 -m 1 -cid_str "aside-%u-%p@%s" -timeout 20s
  wait "$bpid"
  expect auth-a 1 || rc=1
  expect auth-b 1 || rc=1
  result auth-udp $rc
}
if [ -z "${TPS+x}" ] || [ -n "${TPS// /}" ]; then auth_call; fi

# loss on both legs (A: -lost 10 both ways; B: 10% on its 200s, the ACK and
# the BYE, see b2bua_uas_lossy.xml): retransmissions of every leg recover.
# B ignores what comes in its final pause (-pause_msg_ign): our ACK for a
# retransmitted 200 can cross the BYE (B sent the 200 again as its ACKs
# were lost, and we read it just after A's BYE), and SIPp aborted the call
# on that ACK "while pausing" (B: 49 successful, 1 failed)
B_ARGS=(-max_retrans 12 -pause_msg_ign)
bridged lost udp udp b2bua_uac_call.xml b2bua_uas_lossy.xml "$CALLS" -r 10 -lost 10 -max_retrans 12 -d 3000

# sipp_of PID: the sipp process under the background job PID (through its
# subshells and timeout), by /proc's children lists
sipp_of() {
  local p=$1 c _
  for _ in 1 2 3 4 5 6; do
    if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = sipp ]; then
      echo "$p"
      return 0
    fi
    c=$(cat /proc/"$p"/task/*/children 2>/dev/null | awk '{ print $1; exit }')
    [ -n "$c" ] || return 1
    p=$c
  done
  return 1
}

# stalled NAME UAS.xml: B stopped (SIGSTOP, by PID) for 1.2 s while 2
# INVITEs reach it: each one's Timer A retransmission (0.5 s) waits in B's
# socket behind it, and B reads it after sending its answer (what a loaded
# machine does to the lost case now and then); a UAS absorbs it and the
# calls go on. stalled-b: B answers 200 alone; stalled-b-ring: 180 then 200
# (SIPp knows a retransmission only up to its second send: the scenario
# absorbs the INVITE with an optional="global" recv).
stalled() {
  local name=$1 uas=$2 pa=$((port + 1)) pb=$((port + 2)) rc=0 bpid sp
  port=$((port + 10))
  sipp_bg "$name-b" -sf "$DIR/$uas" -i 127.0.0.1 -p $pb -m 2 -timeout 80s
  bpid=$BG
  sleep 0.3
  register "$name" $pb udp 1.0
  sp=$(sipp_of "$bpid") || { echo "  (no sipp under $bpid)"; result "$name" 1; return; }
  kill -STOP "$sp"
  (sleep 1.2; kill -CONT "$sp") &
  sipp_stat "$name-a" 90 127.0.0.1:5060 -sf "$DIR/b2bua_uac_call.xml" -s "$name" \
    -i 127.0.0.1 -p $pa -m 2 -cid_str "aside-%u-%p@%s" -timeout 60s -d 500
  wait "$bpid"
  expect "$name-a" 2 || rc=1
  expect "$name-b" 2 || rc=1
  result "$name" $rc
}
stalled stalled-b b2bua_uas_lossy.xml
stalled stalled-b-ring b2bua_uas_call.xml

suite_end

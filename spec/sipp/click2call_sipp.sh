#!/usr/bin/env bash
# Usage: spec/sipp/click2call_sipp.sh       (as root; from anywhere)
# examples/click2call.lua (RFC 3725 flow I) between two SIPp UASes, in a
# loopback-only network namespace (the controller sends where Contacts
# say):
#   bridge-udp/tcp   A's INVITE has no SDP (check_it on Content-Length),
#                    B's INVITE carries A's offer and A's ACK B's answer
#                    (SIPp <ereg check_it>: a miss fails the call); the
#                    controller hangs up both after --hold-time (BYE 200
#                    from each)
#   b-busy           B answers 486: A gets its ACK and a BYE
#   a-hangs-up       A hangs up first: B gets BYE from the controller
# Checks: SIPp's SuccessfulCall / FailedCall (-trace_stat) for each party,
# click2call.lua's outcome line. Prints "click2call-sipp: N passed, M failed".
# $BUILD (build), $LUA (lua5.4), $LUASIP_PRELOAD (preloaded into luasip).
set -u
cd "$(dirname "$0")/../.." || exit 1
. spec/sipp/lib.sh
suite_init click2call-sipp c2c-sipp
DIR=$(pwd)/spec/sipp
ns_setup "a UA sends where messages say"
need_sipp_and_build
luasip_cmd 60

# uas TAG PORT SCENARIO [SIPP-ARGS...]: a SIPp UAS for one call, in the background
uas() {
  local tag=$1 port=$2 sf=$3; shift 3
  sipp_stat "$tag" 40 -sf "$DIR/$sf" -i 127.0.0.1 -p "$port" -m 1 "$@" -timeout 30s \
    -trace_msg -message_file msg.log &
  SPIDS+=($!)
}

# case NAME WANT A-SCENARIO B-SCENARIO TRANSPORT [C2C-ARGS...]: both parties
# end with 1 successful call, and click2call says "click2call: WANT"
case_() {
  local name=$1 want=$2 sa=$3 sb=$4 tp=$5; shift 5
  local t=u1 suffix=
  [ "$tp" = tcp ] && t=t1 && suffix=";transport=tcp"
  SPIDS=()
  uas "$name-a" 5101 "$sa" -t $t
  uas "$name-b" 5102 "$sb" -t $t
  wait_bound 5101 5102
  "${LUASIP[@]}" examples/click2call.lua --ctl off --listen "$tp:127.0.0.1:5100" \
    --a "sip:a@127.0.0.1:5101$suffix" --b "sip:b@127.0.0.1:5102$suffix" --hold-time 0.3 "$@" \
    >"$work/$name.out" 2>"$work/$name.log"
  local p
  for p in "${SPIDS[@]}"; do
    wait "$p"
  done
  local got oka bada okb badb
  got=$(grep '^click2call:' "$work/$name.out" | tail -n 1)
  read -r oka bada < <(counts "$work/$name-a/stat.csv")
  read -r okb badb < <(counts "$work/$name-b/stat.csv")
  if [ "$got" = "click2call: $want" ] && [ "$oka/$bada" = 1/0 ] && [ "$okb/$badb" = 1/0 ]; then
    result "$name" 0
  else
    result "$name" 1 "(click2call said '$got', want 'click2call: $want'; A $oka/$bada, B $okb/$badb ok/failed)"
    tail -n 5 "$work/$name.log" | sed 's/^/  | /'
    tail -n 3 "$work/$name-a/err.log" "$work/$name-b/err.log" 2>/dev/null | cut -c1-300 | sed 's/^/  | /'
  fi
}

case_ bridge-udp "bridged A 200 B 200; BYE A 200 B 200" c2c_uas_a.xml c2c_uas_b.xml udp
case_ bridge-tcp "bridged A 200 B 200; BYE A 200 B 200" c2c_uas_a.xml c2c_uas_b.xml tcp
case_ b-busy "B failed 486 Busy Here; BYE A 200" c2c_uas_a_nob.xml c2c_uas_busy.xml udp
case_ a-hangs-up "bridged A 200 B 200; ended by A" c2c_uas_a_bye.xml c2c_uas_b.xml udp --hold-time 5

suite_end

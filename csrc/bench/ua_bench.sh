#!/usr/bin/env bash
# Usage: csrc/bench/ua_bench.sh      (from anywhere; needs `make` and sipp)
# The user-agent benchmark: SIPp's built-in caller (`sipp -sn uac`:
# INVITE with SDP, 200, ACK, -d ms, BYE, 200) at a fixed rate against
#   luasip:  bin/luasip run examples/echo_ua.lua --hold-time 0 (it answers
#            with an SDP answer and waits for the BYE)
#   sipp:    SIPp's own callee (`sipp -sn uas`)
# on udp:127.0.0.1:5070, one after the other in the same run, each for
# $COUNT calls at $RATE/s, then prints the server CPU per call (utime +
# stime of the server process, from /proc, over the phase, divided by the
# successful calls) of each and the ratio luasip/sipp (goal <= 1.5), and
# the failed calls (goal 0).
# Memory per established dialog: echo_ua again, $HOLD calls at $HOLD_RATE/s
# held $HOLD_MS ms between ACK and BYE; (RSS and PSS once all of them are
# up and their INVITE transactions are over (Timer L, 64*T1 = 32 s, after
# the last 2xx) - before the calls) / $HOLD (goal <= 2 KB).
# Numbers only (no assertions); bounded (-m, -timeout, timeout(1); the
# servers stopped by PID). Loopback only.
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build}
LUA=${LUA:-lua5.4}
RATE=${RATE:-300}
COUNT=${COUNT:-6000}
HOLD=${HOLD:-3000}
HOLD_RATE=${HOLD_RATE:-500}
HOLD_MS=${HOLD_MS:-45000}
PORT=${PORT:-5270}
CPORT=${CPORT:-5281}
if ! command -v sipp >/dev/null; then
  echo "ua-bench: needs sipp"
  exit 1
fi
if [ ! -f "$BUILD/lib/luasip/core.so" ]; then
  echo "ua-bench: $BUILD/lib/luasip/core.so missing: run make first"
  exit 1
fi
work=$(mktemp -d /tmp/luasip-ua-bench.XXXXXX)
SPID=
cleanup() {
  if [ -n "$SPID" ]; then
    kill "$SPID" 2>/dev/null
    wait "$SPID" 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
kb() { # PID FIELD (VmRSS from status, Pss from smaps_rollup) -> kB
  if [ "$2" = Pss ]; then
    awk '/^Pss:/ { print $2; exit }' "/proc/$1/smaps_rollup" 2>/dev/null
  else
    awk -v f="$2:" '$1 == f { print $2; exit }' "/proc/$1/status" 2>/dev/null
  fi
}

# start_server NAME CMD...: in the background; luasip is up when it logs
# "serving", anything else after a second
start_server() {
  local name=$1; shift
  "$@" >"$work/$name.log" 2>&1 &
  SPID=$!
  if [ "$name" = "${name#luasip}" ]; then
    sleep 1
  else
    for _ in $(seq 100); do
      grep -qs 'serving' "$work/$name.log" && break
      sleep 0.1
    done
  fi
  if ! kill -0 "$SPID" 2>/dev/null; then
    echo "ua-bench: $name did not start" >&2
    sed 's/^/  | /' "$work/$name.log" >&2
    SPID=
    return 1
  fi
}
stop_server() {
  kill "$SPID" 2>/dev/null
  wait "$SPID" 2>/dev/null
  SPID=
}

# calls NAME RATE COUNT HOLD_MS: SIPp uac against the server; prints
# "ok failed"
calls() {
  local name=$1 rate=$2 count=$3 hold=$4
  mkdir -p "$work/$name"
  (cd "$work/$name" && timeout -k 5 $((count / rate + hold / 1000 + 60)) sipp 127.0.0.1:$PORT -sn uac \
    -i 127.0.0.1 -p "$CPORT" -r "$rate" -m "$count" -d "$hold" -l $((count + 10)) -nostdin \
    -timeout $((count / rate + hold / 1000 + 40))s -trace_stat -stf stat.csv >out.txt 2>&1)
  awk -F';' '
    NR == 1 { for (i = 1; i <= NF; i++) { if ($i == "SuccessfulCall(C)") s = i; if ($i == "FailedCall(C)") f = i } next }
    { ok = $s; bad = $f }
    END { print ok + 0, bad + 0 }' "$work/$name/stat.csv" 2>/dev/null || echo "0 0"
}

# cpu_run NAME CMD...: the fixed-rate phase; prints "us_per_call ok failed"
cpu_run() {
  local name=$1; shift
  start_server "$name" "$@" || { echo "na 0 $COUNT"; return; }
  local c0 c1 ok bad
  c0=$(cpu_ticks "$SPID")
  read -r ok bad < <(calls "$name" "$RATE" "$COUNT" 0)
  c1=$(cpu_ticks "$SPID")
  stop_server
  awk -v a="$c0" -v b="$c1" -v t="$ticks" -v n="$ok" -v bad="$bad" \
    'BEGIN { if (n > 0) printf "%.1f %d %d\n", (b - a) * 1e6 / t / n, n, bad; else print "na", n, bad }'
}

echo "ua-bench: $COUNT calls at $RATE/s (sipp -sn uac) per server, udp:127.0.0.1:$PORT"
LUASIP=(env LUASIP_BUILD="$BUILD" "$LUA" bin/luasip run examples/echo_ua.lua --listen udp:127.0.0.1:$PORT
  --hold-time 0 --ctl off --log-level warn)
read -r us_l ok_l bad_l < <(cpu_run luasip "${LUASIP[@]}")
read -r us_s ok_s bad_s < <(cpu_run sipp-uas sipp -sn uas -i 127.0.0.1 -p $PORT -nostdin)
ratio=$(awk -v a="$us_l" -v b="$us_s" 'BEGIN { if (b + 0 > 0 && a + 0 > 0) printf "%.2f", a / b; else print "na" }')
echo "ua-bench cpu: luasip echo_ua ${us_l} us/call ($ok_l ok, $bad_l failed); sipp uas ${us_s} us/call" \
  "($ok_s ok, $bad_s failed); ratio luasip/sipp = $ratio (goal <= 1.5)"

# memory per established dialog
start_server luasip-hold "${LUASIP[@]}" || exit 1
rss0=$(kb "$SPID" VmRSS) pss0=$(kb "$SPID" Pss)
calls luasip-hold "$HOLD_RATE" "$HOLD" "$HOLD_MS" >"$work/hold.res" &
cpid=$!
# all of them up (HOLD / HOLD_RATE s) and Timer L over (32 s), inside HOLD_MS
sleep "$(awk -v n="$HOLD" -v r="$HOLD_RATE" -v h="$HOLD_MS" 'BEGIN { t = n / r + 34; if (t > h / 1000 - 1) t = h / 1000 - 1; print t }')"
rss1=$(kb "$SPID" VmRSS) pss1=$(kb "$SPID" Pss)
wait "$cpid"
read -r ok_h bad_h <"$work/hold.res"
stop_server
awk -v r0="$rss0" -v r1="$rss1" -v p0="$pss0" -v p1="$pss1" -v n="$HOLD" -v ok="$ok_h" -v bad="$bad_h" \
  'BEGIN { printf "ua-bench memory: %d dialogs held: RSS %.1f -> %.1f MB, PSS %.1f -> %.1f MB: %.2f KB (RSS), %.2f KB (PSS) per dialog (goal <= 2 KB); %d ok, %d failed\n",
    n, r0 / 1024, r1 / 1024, p0 / 1024, p1 / 1024, (r1 - r0) / n, (p1 - p0) / n, ok, bad }'

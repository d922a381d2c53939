#!/usr/bin/env bash
# Usage: spec/sipp/reg.sh
# SIPp registration scenarios against `luasip run examples/registrar.lua`
# on udp and tcp 127.0.0.1 (ports the system picks, read from the
# server's "serving ... on" line; SIPp's own port too) with --min-expires 2 and
# --location $LOCATION (memory):
#   reg_basic   register, refresh, a second contact, remove one, `*`
#               removal (UDP: $CALLS calls (50) at 50/s; TCP: the same)
#   reg_expiry  a 2 s binding is gone 3 s later ($EXPIRY_CALLS calls (5))
#   reg_423     Expires 1 gets 423 with Min-Expires: 2, then 2 is taken
# Each scenario checks the 200s' Contact lists with regexps; a mismatch
# fails the call. Checks SuccessfulCall = calls and FailedCall = 0 per run,
# and that the server is still running. Prints "sipp-reg: N passed, N
# failed". Every process is bounded by timeout(1); the server is stopped by
# PID. Needs `make` first ($BUILD, default build/).
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build}
CALLS=${CALLS:-50}
EXPIRY_CALLS=${EXPIRY_CALLS:-5}
LOCATION=${LOCATION:-memory}
export LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="$BUILD/lib/?.so;;"
SUITE=sipp-reg
. spec/sipp/lib.sh

work=$(mktemp -d /tmp/luasip-sipp-reg.XXXXXX)
trap 'stop_server; rm -rf "$work"' EXIT

need_sipp_and_build

server=(bin/luasip run examples/registrar.lua --listen udp:127.0.0.1:0 --listen tcp:127.0.0.1:0
  --location "$LOCATION" --min-expires 2)
echo "server: ${server[*]}"
"${server[@]}" >"$work/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do
  grep -qs 'serving .* on .*tcp:' "$work/server.log" && break
  kill -0 "$SERVER_PID" 2>/dev/null || break
  sleep 0.1
done
listeners=$(grep -m1 -o 'serving .* on .*tcp:[^ ]*' "$work/server.log")
UDP_PORT=$(grep -o 'udp:127\.0\.0\.1:[0-9]*' <<<"$listeners" | cut -d: -f3)
TCP_PORT=$(grep -o 'tcp:127\.0\.0\.1:[0-9]*' <<<"$listeners" | cut -d: -f3)
if [ -z "$UDP_PORT" ] || [ -z "$TCP_PORT" ]; then
  echo "server did not start; its output:"
  sed 's/^/  | /' "$work/server.log"
  echo "sipp-reg: 0 passed, 1 failed"
  exit 1
fi

# SuccessfulCall FailedCall from a -trace_stat file
sipp_counts() {
  awk -F';' '
    NR == 1 { for (i = 1; i <= NF; i++) { if ($i == "SuccessfulCall(C)") s = i; if ($i == "FailedCall(C)") f = i }
              next }
    { ok = $s; bad = $f }
    END { if (s && f && NR > 1) print ok + 0, bad + 0; else print "none", "none" }' "$1" 2>/dev/null
}

run() { # run NAME SCENARIO TRANSPORT CALLS RATE
  local name=$1 sf=$2 tr=$3 calls=$4 rate=$5 dir=$work/$1 rc
  mkdir -p "$dir"
  local port=$UDP_PORT
  [ "$tr" = u1 ] || port=$TCP_PORT
  (cd "$dir" && timeout -k 5 60 sipp "127.0.0.1:$port" -sf "$OLDPWD/spec/sipp/$sf" -t "$tr" \
    -i 127.0.0.1 -m "$calls" -r "$rate" -l 20 -timeout 50s -nostdin \
    -trace_stat -stf stat.csv -trace_err -error_file err.log >sipp.out 2>&1)
  rc=$?
  read -r ok bad < <(sipp_counts "$dir/stat.csv")
  echo "sipp $name: exit $rc, SuccessfulCall $ok, FailedCall $bad"
  check "$name SuccessfulCall" "$ok" "$calls"
  check "$name FailedCall" "$bad" 0
  if [ "$bad" != 0 ] || [ "$ok" != "$calls" ]; then
    grep -v '^$' "$dir/err.log" 2>/dev/null | head -n 20 | sed 's/^/  | /'
    tail -n 5 "$dir/sipp.out" | sed 's/^/  | /'
  fi
}

run reg_basic-udp reg_basic.xml u1 "$CALLS" 50
run reg_basic-tcp reg_basic.xml t1 "$CALLS" 50
run reg_expiry-udp reg_expiry.xml u1 "$EXPIRY_CALLS" 10
run reg_423-udp reg_423.xml u1 20 20

if kill -0 "$SERVER_PID" 2>/dev/null; then
  check "server running" yes yes
else
  check "server running" no yes
  sed 's/^/  | /' "$work/server.log" | tail -n 20
fi
# error lines: "<time> error ..." (luasip log) or a Lua error
errs=$(grep -cE '^[^ ]+ error |^lua5\.4:|traceback' "$work/server.log")
if [ "$errs" != 0 ]; then
  echo "server log:"; grep -E '^[^ ]+ error |^lua5\.4:|traceback' "$work/server.log" | head -n 10 | sed 's/^/  | /'
fi
check "server log without errors" "$errs" 0
echo "sipp-reg: $passed passed, $failed failed"
[ "$failed" = 0 ]

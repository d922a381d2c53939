#!/usr/bin/env bash
# Usage: spec/netns/sipp_options.sh [PORT]   (default 5070)
# SIPp interop: starts examples/stateless200.lua on udp+tcp 127.0.0.1:PORT
# (lib.sh: $BUILD, $LUASIP_PRELOAD), runs SIPp's OPTIONS scenario
# ($SIPP_SCENARIO, default spec/sipp/options.xml: OPTIONS, expect
# 200) over UDP (-t u1) and TCP (-t t1), $SIPP_CALLS calls (500) at
# $SIPP_RATE/s (500), and checks SuccessfulCall = SIPP_CALLS and
# FailedCall = 0 in SIPp's -trace_stat file: two checks per transport.
# Prints "sipp-options: N passed, N failed". Runs in the current network
# namespace (spec/netns/run.sh runs it inside its loopback-only one).
set -u
cd "$(dirname "$0")/../.." || exit 1
SUITE=sipp-options
. spec/sipp/lib.sh
PORT=${1:-5070}
SCENARIO=$(realpath "${SIPP_SCENARIO:-spec/sipp/options.xml}" 2>/dev/null)
CALLS=${SIPP_CALLS:-500}
RATE=${SIPP_RATE:-500}

work=$(mktemp -d /tmp/luasip-sipp.XXXXXX)
trap 'stop_server; rm -rf "$work"' EXIT

if ! command -v sipp >/dev/null; then
  echo "sipp-options: sipp not installed (apt-get install sip-tester)"
  echo "sipp-options: 0 passed, 1 failed"
  exit 1
fi
if [ ! -f "$SCENARIO" ]; then
  echo "sipp-options: no scenario ${SIPP_SCENARIO:-spec/sipp/options.xml}"
  echo "sipp-options: 0 passed, 1 failed"
  exit 1
fi
if ! start_server "$PORT" "$work/server.log"; then
  echo "sipp-options: 0 passed, 1 failed"
  exit 1
fi

for t in u1 t1; do
  name=$([ $t = u1 ] && echo udp || echo tcp)
  dir=$work/$name
  mkdir -p "$dir"
  # local port 5079 for UDP; TCP connects from an ephemeral port
  (cd "$dir" && timeout -k 5 60 sipp "127.0.0.1:$PORT" -sf "$SCENARIO" -t "$t" \
    -i 127.0.0.1 -p 5079 -m "$CALLS" -r "$RATE" -timeout 30s -nostdin \
    -trace_stat -stf stat.csv -trace_err -error_file err.log >"$dir/sipp.out" 2>&1)
  rc=$?
  read -r ok bad < <(awk -F';' '
    NR == 1 { for (i = 1; i <= NF; i++) { if ($i == "SuccessfulCall(C)") s = i; if ($i == "FailedCall(C)") f = i } next }
    { ok = $s; bad = $f }
    END { if (s && f && NR > 1) print ok + 0, bad + 0; else print "none", "none" }' "$dir/stat.csv" 2>/dev/null)
  echo "sipp -t $t: exit $rc, SuccessfulCall ${ok:-none}, FailedCall ${bad:-none}"
  check "$name SuccessfulCall" "${ok:-none}" "$CALLS"
  check "$name FailedCall" "${bad:-none}" 0
  if [ "${bad:-none}" != 0 ] || [ "${ok:-none}" != "$CALLS" ]; then
    tail -n 20 "$dir/sipp.out" "$dir/err.log" 2>/dev/null | sed 's/^/  | /'
  fi
done

if ! server_alive; then
  failed=$((failed + 1))
  echo "FAIL the server died; its output:"
  sed 's/^/  | /' "$work/server.log"
fi
echo "sipp-options: $passed passed, $failed failed"
[ "$failed" = 0 ]

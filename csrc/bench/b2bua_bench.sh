#!/usr/bin/env bash
# Usage: csrc/bench/b2bua_bench.sh      (from anywhere; needs `make`, sipp)
# CPU per bridged call of examples/b2bua.lua next to the proxy's CPU per
# relayed call, same load, same run: ../shared/bench/run.sh (calls only:
# SIPp UAC -> server -> SIPp UAS registered as "bob", INVITE/200/ACK/BYE)
# against, one after the other,
#   luasip-proxy: bin/luasip run examples/proxy.lua --listen udp:127.0.0.1:5070
#   luasip-b2bua: bin/luasip run examples/b2bua.lua --listen udp:127.0.0.1:5070
# at $RATE calls/s offered (1000) x $COUNT calls (20000), at most $LIMIT in
# flight (1000). Prints run.sh's summary line per server, then
#   b2bua-bench: us/call b2bua = X, proxy = Y (b2bua/proxy R), calls/s ..., failed ...
# Numbers only (no assertions). Bounded by run.sh (timeouts, servers
# stopped by PID). As root, it runs in a loopback-only network namespace
# (both servers send where a REGISTER's Contact says).
set -u
cd "$(dirname "$0")/../.." || exit 1
SHARED=${SHARED:-../shared}
BUILD=${BUILD:-build}
RATE=${RATE:-1000}
COUNT=${COUNT:-20000}
LIMIT=${LIMIT:-1000}
H=$(cd "$SHARED/bench" 2>/dev/null && pwd)
if [ -z "$H" ] || [ ! -x "$H/run.sh" ] || ! command -v sipp >/dev/null; then
  echo "b2bua-bench: needs sipp and $SHARED/bench/run.sh"
  exit 1
fi
if [ ! -f "$BUILD/lib/luasip/core.so" ]; then
  echo "b2bua-bench: $BUILD/lib/luasip/core.so missing: run make first"
  exit 1
fi
results=$(mktemp -d /tmp/luasip-b2bua-bench.XXXXXX)
NS=
cleanup() {
  if [ -n "$NS" ]; then
    ip netns pids "$NS" 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns delete "$NS" 2>/dev/null
  fi
  rm -rf "$results"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
NSX=()
if [ "$(id -u)" = 0 ] && command -v ip >/dev/null && ip netns add "luasip-b2bbench-$$" 2>/dev/null; then
  NS=luasip-b2bbench-$$
  ip netns exec "$NS" ip link set lo up
  NSX=(ip netns exec "$NS")
else
  echo "b2bua-bench: not root (or no ip netns): running on the host's loopback"
fi

kv() { awk -v k="$1=" '{ for (i = 1; i <= NF; i++) if (index($i, k) == 1) { print substr($i, length(k) + 1); exit } }' <<<"$2"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "na" }'; }

# bench NAME SCRIPT: one run.sh, its summary line on stdout
bench() {
  local name=$1 script=$2 out="$results/$1" line
  "${NSX[@]}" env CALL_RATE="$RATE" CALL_COUNT="$COUNT" CALL_LIMIT="$LIMIT" BENCH_RESULTS="$results" \
    timeout -k 10 900 "$H/run.sh" -n "$name" -p 5070 -o "$out" -P call -- \
    env LUASIP_BUILD="$BUILD" bin/luasip run "$script" --ctl off --listen udp:127.0.0.1:5070 >"$out.log" 2>&1
  line=$(tail -n 1 "$out.log")
  if [ ! -f "$out/summary.txt" ]; then
    echo "b2bua-bench $name: run.sh failed: $line" >&2
    line="$name failed"
  fi
  echo "$line"
}

p=$(bench luasip-proxy examples/proxy.lua)
echo "$p"
b=$(bench luasip-b2bua examples/b2bua.lua)
echo "$b"
echo "b2bua-bench ($RATE calls/s offered x $COUNT): us/call b2bua = $(kv us/call "$b"), proxy = $(kv us/call "$p")" \
  "(b2bua/proxy $(ratio "$(kv us/call "$b")" "$(kv us/call "$p")"))," \
  "calls/s = $(kv calls/s "$b") vs $(kv calls/s "$p"), failed = $(kv failed "$b") vs $(kv failed "$p")"

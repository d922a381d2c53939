#!/usr/bin/env bash
# Usage: csrc/bench/proxy_bench.sh      (from anywhere; needs `make`, sipp,
#                                        kamailio + kamailio-lua-modules)
# The proxy benchmark: ../shared/bench/run.sh (SIPp: REGISTER phase, then
# calls INVITE/200/ACK/BYE through the proxy to a SIPp UAS) against
#   luasip:   bin/luasip run examples/proxy.lua --listen udp:127.0.0.1:5070
#   kamailio: ../shared/bench/kamailio/start.sh lua   (Lua KEMI routing)
# in the same run, one after the other, for each load:
#   fixed   run.sh defaults (REGISTER 5000/s x 50000, calls 2000/s x 20000)
#   max     MODE=max (saturation: REGISTER 40000/s offered, calls 5000/s)
#   3000    calls only, 3000/s offered x $C3000_COUNT (30000): failed calls
#   memory  calls only, $MEM_RATE/s (1000) held $MEM_PAUSE_MS (8000) ms
#           between ACK and BYE: memory per call in flight = (peak PSS -
#           PSS before the calls) / (rate x pause), from run.sh's monitor
# Prints run.sh's summary line per run, then one comparison line per load:
#   proxy-bench fixed: us/reg luasip/kamailio = R, us/call = R, ...
# Numbers only (no assertions). Each run is bounded by run.sh (timeouts,
# servers stopped by PID). RUNS="fixed max 3000 memory" selects loads.
# EDGE=1 adds a third server per load, luasip-edge: examples/proxy.lua with
# flood protection (--flood $EDGE_FLOOD, default 1000000 per source and
# second: every request counted, the bench's one source never blocked)
# and the metrics endpoint (--metrics 127.0.0.1:0), compared with kamailio
# like luasip-proxy (the issue's "ratios hold with flood protection and
# metrics on").
set -u
cd "$(dirname "$0")/../.." || exit 1
SHARED=${SHARED:-../shared}
BUILD=${BUILD:-build}
RUNS=${RUNS:-fixed max 3000 memory}
EDGE=${EDGE:-0}
EDGE_FLOOD=${EDGE_FLOOD:-1000000}
C3000_COUNT=${C3000_COUNT:-30000}
MEM_RATE=${MEM_RATE:-1000}
MEM_PAUSE_MS=${MEM_PAUSE_MS:-8000}
H=$(cd "$SHARED/bench" 2>/dev/null && pwd)
if [ -z "$H" ] || [ ! -x "$H/run.sh" ] || ! command -v sipp >/dev/null; then
  echo "proxy-bench: needs sipp and $SHARED/bench/run.sh"
  exit 1
fi
if [ ! -f "$BUILD/lib/luasip/core.so" ]; then
  echo "proxy-bench: $BUILD/lib/luasip/core.so missing: run make first"
  exit 1
fi
have_kamailio=1
command -v kamailio >/dev/null || have_kamailio=0
results=$(mktemp -d /tmp/luasip-proxy-bench.XXXXXX)
trap 'rm -rf "$results"' EXIT
LUASIP=(env LUASIP_BUILD="$BUILD" bin/luasip run examples/proxy.lua --listen udp:127.0.0.1:5070)
LUASIP_EDGE=("${LUASIP[@]}" --flood "$EDGE_FLOOD" --metrics 127.0.0.1:0)
KAM=("$H/kamailio/start.sh" lua)

kv() { awk -v k="$1=" '{ for (i = 1; i <= NF; i++) if (index($i, k) == 1) { print substr($i, length(k) + 1); exit } }' <<<"$2"; }
ratio() { python3 -c "import sys
try: print(f'{float(sys.argv[1]) / float(sys.argv[2]):.2f}')
except Exception: print('na')" "$1" "$2"; }

# bench LOAD NAME ENV... -- CMD...: one run.sh, its summary line on stdout
bench() {
  local load=$1 name=$2; shift 2
  local envs=()
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  local out="$results/$load-$name"
  env "${envs[@]}" BENCH_RESULTS="$results" timeout -k 10 900 "$H/run.sh" -n "$name" -p 5070 -o "$out" "$@" \
    >"$out.log" 2>&1
  local line
  line=$(tail -n 1 "$out.log")
  if [ ! -f "$out/summary.txt" ]; then
    echo "proxy-bench $load $name: run.sh failed: $line" >&2
    line="$name failed"
  fi
  echo "$line"
}

# memory per call in flight from a run's monitor file (t cpu rss pss nproc)
mem_per_call() { # DIR -> "base_mb peak_mb kb_per_call"
  python3 - "$1/server-mon.txt" "$MEM_RATE" "$MEM_PAUSE_MS" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
pss = [int(r[3]) for r in rows]
base, peak = pss[0], max(pss)
inflight = int(sys.argv[2]) * int(sys.argv[3]) / 1000.0
print(f"{base / 1024:.1f} {peak / 1024:.1f} {(peak - base) / inflight:.1f} {inflight:.0f}")
PY
}

compare() { # compare LOAD LUASIP_LINE KAM_LINE
  local l=$2 k=$3
  echo "proxy-bench $1: us/reg luasip/kamailio = $(ratio "$(kv us/reg "$l")" "$(kv us/reg "$k")")," \
    "us/call = $(ratio "$(kv us/call "$l")" "$(kv us/call "$k")")," \
    "reg/s = $(kv reg/s "$l") vs $(kv reg/s "$k") ($(ratio "$(kv reg/s "$l")" "$(kv reg/s "$k")")x)," \
    "calls/s = $(kv calls/s "$l") vs $(kv calls/s "$k") ($(ratio "$(kv calls/s "$l")" "$(kv calls/s "$k")")x)," \
    "failed = $(kv failed "$l") vs $(kv failed "$k")"
}

for load in $RUNS; do
  case $load in
    fixed) envs=(MODE=fixed) ;;
    max) envs=(MODE=max) ;;
    3000) envs=(CALL_RATE=3000 "CALL_COUNT=$C3000_COUNT" CALL_LIMIT=3000) ;;
    memory) envs=("CALL_RATE=$MEM_RATE" "CALL_COUNT=$((MEM_RATE * 10))" "CALL_PAUSE_MS=$MEM_PAUSE_MS"
      "CALL_LIMIT=$((MEM_RATE * MEM_PAUSE_MS / 1000 + MEM_RATE))" PHASE_TIMEOUT=90) ;;
    *) echo "proxy-bench: unknown load $load"; continue ;;
  esac
  phases=()
  [ "$load" = 3000 ] || [ "$load" = memory ] && phases=(-P call)
  l=$(bench "$load" luasip-proxy "${envs[@]}" -- "${phases[@]}" -- "${LUASIP[@]}")
  echo "$l"
  e=""
  if [ "$EDGE" = 1 ]; then
    e=$(bench "$load" luasip-edge "${envs[@]}" -- "${phases[@]}" -- "${LUASIP_EDGE[@]}")
    echo "$e"
  fi
  k="kamailio-lua not run (kamailio not installed)"
  if [ "$have_kamailio" = 1 ]; then
    k=$(bench "$load" kamailio-lua "${envs[@]}" -- "${phases[@]}" -- "${KAM[@]}")
    echo "$k"
  fi
  if [ "$load" = memory ]; then
    read -r lb lp lk n < <(mem_per_call "$results/$load-luasip-proxy")
    echo "proxy-bench memory: luasip PSS ${lb} MB -> ${lp} MB with ~$n calls in flight: ${lk} KB per call"
    if [ "$have_kamailio" = 1 ]; then
      read -r kb kp kk n < <(mem_per_call "$results/$load-kamailio-lua")
      echo "proxy-bench memory: kamailio PSS ${kb} MB -> ${kp} MB with ~$n calls in flight: ${kk} KB per call"
    fi
  else
    compare "$load" "$l" "$k"
    [ -n "$e" ] && compare "$load (edge: --flood, --metrics)" "$e" "$k"
  fi
done

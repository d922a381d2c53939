#!/usr/bin/env bash
# Location service figures (make bench): csrc/bench/location_bench.lua
# (saves/s and lookups/s per backend; bytes per binding of the `memory`
# backend with LOC_BINDINGS bindings, default 1,000,000), then the same
# memory figure for Kamailio's in-memory usrloc in the same run.
#
# Kamailio: the shared bench configuration (../shared/bench/kamailio,
# db_mode 0, started as start.sh does, with the listen port moved to a free
# random one so that other runs on the box do not collide), fed
# LOC_KAMAILIO_BINDINGS (default LOC_BINDINGS) REGISTERs with a unique AOR
# each by SIPp (../shared/bench/sipp/reg.xml, the harness's scenario);
# bytes per binding = growth of the PSS of Kamailio's process tree
# (smaps_rollup, as lib/proctree.py measures) / successful REGISTERs. Its
# shared memory is touched as usrloc allocates, so PSS growth is the memory
# the bindings take. The luasip figure is measured the same way (process
# PSS growth) and also as Lua heap growth.
#
# Env: BUILD, LUA, SHARED, LOC_BINDINGS, LOC_KAMAILIO_BINDINGS, LOC_OPS,
# LOC_REG_RATE (REGISTERs/s offered to Kamailio, default 10000),
# KAMAILIO_SHM_MB (default: room for the bindings, at least start.sh's 1024).
set -u
BUILD=${BUILD:-build}
LUA=${LUA:-lua5.4}
SHARED=${SHARED:-../shared}
N=${LOC_BINDINGS:-1000000}
KN=${LOC_KAMAILIO_BINDINGS:-$N}
OPS=${LOC_OPS:-20000}
RATE=${LOC_REG_RATE:-10000}
# start.sh's 1024 MB of shared memory holds about 900,000 usrloc bindings:
# enough room for KN of them (about 1.2 KB each) plus the base
SHM_MB=${KAMAILIO_SHM_MB:-$((KN * 3 / 2 / 1024 + 512))}
[ "$SHM_MB" -ge 1024 ] || SHM_MB=1024
BENCH=$SHARED/bench

LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="$BUILD/lib/?.so;;" \
  timeout -k 5 600 "$LUA" csrc/bench/location_bench.lua "$N" "$OPS" ||
  echo "location: luasip bench failed"

if ! command -v kamailio >/dev/null || ! command -v sipp >/dev/null; then
  echo "location kamailio: kamailio or sipp missing, no comparison"
  exit 0
fi

tmp=$(mktemp -d /tmp/luasip-locbench-kam-XXXXXX)
KPID=
cleanup() {
  if [ -n "$KPID" ] && kill -0 "$KPID" 2>/dev/null; then
    kill -TERM "$KPID" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$KPID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$KPID" 2>/dev/null
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

port=
for _ in $(seq 20); do
  p=$((20000 + RANDOM % 40000))
  if ! ss -Hlun "sport = :$p" | grep -q . && ! ss -Hltn "sport = :$p" | grep -q .; then
    port=$p
    break
  fi
done
[ -n "$port" ] || { echo "location kamailio: no free port"; exit 0; }
sed "s/127\.0\.0\.1:5070/127.0.0.1:$port/" "$BENCH/kamailio/kamailio.cfg" >"$tmp/kamailio.cfg"
kamailio -f "$tmp/kamailio.cfg" -A "BENCH_LUA=\"$(cd "$BENCH/kamailio" && pwd)/routing.lua\"" \
  -DD -E -m "$SHM_MB" -M "${KAMAILIO_PKG_MB:-16}" \
  -P "$tmp/kamailio.pid" -Y "$tmp" -w "$tmp" >"$tmp/kamailio.log" 2>&1 </dev/null &
KPID=$!

ready=0
for _ in $(seq 20); do
  kill -0 "$KPID" 2>/dev/null || break
  if (cd "$tmp" && timeout 5 sipp -sf "$BENCH/sipp/options.xml" "127.0.0.1:$port" -i 127.0.0.1 \
    -p $((port + 1)) -m 1 -nostdin -timeout 3s >/dev/null 2>&1); then ready=1; break; fi
  sleep 0.5
done
[ $ready = 1 ] || { echo "location kamailio: did not start"; tail -5 "$tmp/kamailio.log"; exit 0; }

pss_tree() {
  local total=0 p v
  for p in $(python3 "$BENCH/lib/proctree.py" pids "$KPID"); do
    v=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}

sleep 1
pss0=$(pss_tree)
(cd "$tmp" && timeout -k 5 $((KN / 1000 + 120)) sipp -sf "$BENCH/sipp/reg.xml" "127.0.0.1:$port" \
  -i 127.0.0.1 -p $((port + 2)) -key user_prefix u -r "$RATE" -rp 1000 -m "$KN" -l 2000 \
  -nostdin -timeout $((KN / 1000 + 100))s -buff_size 4194304 \
  -trace_stat -stf reg.csv >sipp.out 2>sipp.err)
rc=$?
sleep 1
pss1=$(pss_tree)
python3 "$BENCH/lib/sippstat.py" "$tmp/reg.csv" >"$tmp/sippstat.txt" 2>&1
echo "location kamailio: shm ${SHM_MB} MB; sipp rc=$rc $(cat "$tmp/sippstat.txt")"
python3 - "$pss0" "$pss1" "$tmp/sippstat.txt" "$KN" <<'EOF'
import re, sys
pss0, pss1, stat, offered = int(sys.argv[1]), int(sys.argv[2]), open(sys.argv[3]).read(), int(sys.argv[4])
m = re.search(r"\bok=(\d+)", stat)
n = int(m.group(1)) if m else offered
print(f"location kamailio usrloc: {n} bindings: {(pss1 - pss0) * 1024 / max(n, 1):.0f} bytes/binding "
      f"(process tree PSS {pss0 // 1024} -> {pss1 // 1024} MB)")
EOF

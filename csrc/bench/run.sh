#!/usr/bin/env bash
# Usage: BUILD=build LUA=lua5.4 BENCH_SECONDS=2.5 BENCH_SLICES=5 \
#          csrc/bench/run.sh FILE...
# Runs the parser benchmarks on the same corpus in one run: luasip from C and
# from Lua, and the reference parsers sofia-sip and oSIP2
# (../shared/bench/parser/*.c, built by `make bench`), each for about
# BENCH_SECONDS, then prints how luasip compares. Not a test: it only fails
# when a benchmark cannot run.
#
# The machine the benchmarks run on is shared: another process can take a
# core for a second or two, and a single run per parser then compares one
# parser's quiet second with another's busy one. So each parser's time is
# cut into BENCH_SLICES runs, interleaved (c, lua, sofia, osip, c, lua, ...)
# so that all four see the same conditions, and each figure is the median
# of its runs (all of them are printed). The work per message is the same
# as in a single long run; BENCH_SLICES=1 is exactly that.
set -u
build=${BUILD:-build}
lua=${LUA:-lua5.4}
secs=${BENCH_SECONDS:-2.5}
slices=${BENCH_SLICES:-5}
here=$(dirname "$0")
if [ $# = 0 ]; then
  echo "bench: no corpus files (CORPUS=...)" >&2
  exit 2
fi
if [ $# -gt 16 ]; then
  echo "bench: the reference programs take at most 16 files; using the first 16" >&2
  set -- "${@:1:16}"
fi
slice=$(awk -v s="$secs" -v n="$slices" 'BEGIN { printf "%.3f", s / n }')
echo "bench: $# messages, $(cat "$@" | wc -c) bytes: $*"
echo "bench: $slices interleaved runs of $slice s per parser, median of each"

status=0
declare -A rates mbs iters
names="parse-c parse-lua sofia-sip osip2"

# The reference programs take an iteration count: calibrate each with a
# short run, for about $slice seconds a run.
calibrate() { # name binary
  local name=$1 bin=$2 out
  shift 2
  out=$("$bin" 2000 "$@" 2>&1) || { echo "$name: failed: $out"; status=1; return; }
  iters[$name]=$(awk -v s="$slice" '{for (i = 1; i <= NF; i++) if ($i ~ /^secs=/) {
      split($i, a, "="); t = a[2] } }
    END { n = (t > 0) ? int(2000 * s / t) : 100000; if (n < 1000) n = 1000; print n }' <<<"$out")
}
calibrate sofia-sip "$build/bench/sofia_bench" "$@"
calibrate osip2 "$build/bench/osip_bench" "$@"

record() { # name rate MB/s
  [ -n "$2" ] || return
  rates[$1]="${rates[$1]:-} $2"
  mbs[$1]="${mbs[$1]:-} $3"
}

ref() { # name binary
  local name=$1 bin=$2 out
  shift 2
  [ -n "${iters[$name]:-}" ] || return
  out=$("$bin" "${iters[$name]}" "$@" 2>&1) || { echo "$name: failed: $out"; status=1; return; }
  record "$name" \
    "$(awk '{for (i = 1; i <= NF; i++) { split($i, a, "="); if (a[1] == "msgs_per_s") print a[2] } }' <<<"$out")" \
    "$(awk '{for (i = 1; i <= NF; i++) { split($i, a, "="); if (a[1] == "MB_per_s") print a[2] } }' <<<"$out")"
  ok=$(awk '{for (i = 1; i <= NF; i++) { split($i, a, "="); if (a[1] == "ok") o = a[2]; if (a[1] == "msgs") n = a[2] } }
    END { if (o != n) print o " of " n }' <<<"$out")
  [ -z "$ok" ] || echo "$name: only $ok parsed ok"
}

for ((k = 0; k < slices; k++)); do
  c=$("$build/bench/bench_parse" "$slice" "$@") || { echo "$c"; status=1; }
  record parse-c "$(awk '/^parse-c:/ {print $2}' <<<"$c")" \
    "$(awk '/^parse-c:/ {print $4}' <<<"$c")"
  l=$("$lua" "$here/bench_parse.lua" "$slice" "$@") || { echo "$l"; status=1; }
  record parse-lua "$(awk '/^parse-lua:/ {print $2}' <<<"$l")" \
    "$(awk '/^parse-lua:/ {print $4}' <<<"$l")"
  ref sofia-sip "$build/bench/sofia_bench" "$@"
  ref osip2 "$build/bench/osip_bench" "$@"
done

median() { tr ' ' '\n' | awk 'NF' | sort -g | awk '{ v[NR] = $1 }
  END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

declare -A med
for n in $names; do
  [ -n "${rates[$n]:-}" ] || continue
  med[$n]=$(median <<<"${rates[$n]}")
  printf "%s: %.0f msgs/s, %.1f MB/s (runs:%s msgs/s)\n" "$n" "${med[$n]}" \
    "$(median <<<"${mbs[$n]}")" "${rates[$n]}"
done

for a in parse-c parse-lua; do
  for b in sofia-sip osip2; do
    if [ -n "${med[$a]:-}" ] && [ -n "${med[$b]:-}" ]; then
      awk -v a="$a" -v b="$b" -v x="${med[$a]}" -v y="${med[$b]}" \
        'BEGIN { printf "%s vs %s: %.1fx\n", a, b, x / y }'
    fi
  done
done
exit $status

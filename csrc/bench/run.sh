#!/usr/bin/env bash
# Usage: BUILD=build LUA=lua5.4 BENCH_SECONDS=2.5 csrc/bench/run.sh FILE...
# Runs the parser benchmarks on the same corpus in one run: luasip from C and
# from Lua, and the reference parsers sofia-sip and oSIP2
# (../shared/bench/parser/*.c, built by `make bench`), each for about
# BENCH_SECONDS, then prints how luasip compares. Not a test: it only fails
# when a benchmark cannot run.
set -u
build=${BUILD:-build}
lua=${LUA:-lua5.4}
secs=${BENCH_SECONDS:-2.5}
here=$(dirname "$0")
if [ $# = 0 ]; then
  echo "bench: no corpus files (CORPUS=...)" >&2
  exit 2
fi
if [ $# -gt 16 ]; then
  echo "bench: the reference programs take at most 16 files; using the first 16" >&2
  set -- "${@:1:16}"
fi
echo "bench: $# messages, $(cat "$@" | wc -c) bytes: $*"

status=0
declare -A rate
c=$("$build/bench/bench_parse" "$secs" "$@") || status=1
echo "$c"
rate[parse-c]=$(awk '/^parse-c:/ {print $2}' <<<"$c")

l=$("$lua" "$here/bench_parse.lua" "$secs" "$@") || status=1
echo "$l"
rate[parse-lua]=$(awk '/^parse-lua:/ {print $2}' <<<"$l")

# The reference programs take an iteration count: calibrate with a short
# run, then run for about $secs seconds.
ref() { # name binary
  local name=$1 bin=$2 out iters
  shift 2
  out=$("$bin" 2000 "$@" 2>&1) || { echo "$name: failed: $out"; status=1; return; }
  iters=$(awk -v s="$secs" '{for (i = 1; i <= NF; i++) if ($i ~ /^secs=/) {
      split($i, a, "="); t = a[2] } }
    END { n = (t > 0) ? int(2000 * s / t) : 100000; if (n < 1000) n = 1000; print n }' <<<"$out")
  out=$("$bin" "$iters" "$@" 2>&1) || { echo "$name: failed: $out"; status=1; return; }
  echo "$out" | awk -v name="$name" '{
    for (i = 1; i <= NF; i++) { split($i, a, "=");
      if (a[1] == "msgs_per_s") r = a[2]; if (a[1] == "MB_per_s") mb = a[2];
      if (a[1] == "ok") ok = a[2]; if (a[1] == "msgs") n = a[2] }
    printf "%s: %s msgs/s, %s MB/s (%s of %s parsed ok)\n", name, r, mb, ok, n }'
  rate[$name]=$(awk '{for (i = 1; i <= NF; i++) { split($i, a, "=");
    if (a[1] == "msgs_per_s") print a[2] } }' <<<"$out")
}
ref sofia-sip "$build/bench/sofia_bench" "$@"
ref osip2 "$build/bench/osip_bench" "$@"

for a in parse-c parse-lua; do
  for b in sofia-sip osip2; do
    if [ -n "${rate[$a]:-}" ] && [ -n "${rate[$b]:-}" ]; then
      awk -v a="$a" -v b="$b" -v x="${rate[$a]}" -v y="${rate[$b]}" \
        'BEGIN { printf "%s vs %s: %.1fx\n", a, b, x / y }'
    fi
  done
done
exit $status

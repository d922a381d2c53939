#!/usr/bin/env bash
# Usage: busted.sh LUA BUSTED [BUSTED ARGS...]
# Runs the busted specs under the given interpreter (plain `busted` is Lua 5.1
# on Debian) and prints "busted: N passed, N failed" from busted's
# "N successes / N failures / N errors / N pending" line: errors count as
# failed, pending as neither.
lua=${1:?usage: busted.sh LUA BUSTED [ARGS...]}
busted=${2:?usage: busted.sh LUA BUSTED [ARGS...]}
shift 2
if ! find spec -name '*_spec.lua' 2>/dev/null | grep -q .; then
  echo "busted: no spec/*_spec.lua files"
  echo "busted: 0 passed, 0 failed"
  exit 0
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$lua" "$busted" "$@" 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
line=$(sed 's/\x1b\[[0-9;]*m//g' "$out" |
  grep -E '^[0-9]+ successes? / [0-9]+ failures? / [0-9]+ errors? / [0-9]+ pending' | tail -n 1)
if [ -z "$line" ]; then
  echo "busted: exit status $rc without a result line"
  echo "busted: 0 passed, 1 failed"
  exit 1
fi
set -- $line
ok=$1 fail=$4 err=$7 pend=${10}
echo "busted: $pend pending"
if [ "$rc" != 0 ] && [ $((fail + err)) = 0 ]; then
  echo "busted: exit status $rc after reporting no failures"
  err=$((err + 1))
fi
echo "busted: $ok passed, $((fail + err)) failed"
exit "$rc"

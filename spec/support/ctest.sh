#!/usr/bin/env bash
# Usage: ctest.sh NAME COMMAND [ARGS...]
# Runs one C test program (optionally under a wrapper such as valgrind). The
# program prints "<name>: N passed, N failed" itself (csrc/test/check.h). When
# it dies before that line, or exits non-zero although it reported no failure
# (a sanitizer or valgrind finding at exit), one extra failed line
# "NAME-exit: 0 passed, 1 failed" is printed so the summary counts it.
name=${1:?usage: ctest.sh NAME COMMAND...}
shift
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$@" 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
reported=$(grep -cE '^[A-Za-z0-9_.+-]+: [0-9]+ passed, [0-9]+ failed$' "$out")
failed=$(grep -E '^[A-Za-z0-9_.+-]+: [0-9]+ passed, [0-9]+ failed$' "$out" |
  awk '{f += $4} END {print f + 0}')
if [ "$reported" = 0 ]; then
  echo "$name: exit status $rc without a result line"
  echo "$name-exit: 0 passed, 1 failed"
elif [ "$rc" != 0 ] && [ "$failed" = 0 ]; then
  echo "$name: exit status $rc after reporting no failures"
  echo "$name-exit: 0 passed, 1 failed"
fi
exit "$rc"

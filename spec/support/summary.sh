#!/usr/bin/env bash
# Usage: summary.sh NAME LOG...
# Sums every "<suite>: N passed, N failed" line of the logs and prints one
# line "NAME: N passed, N failed". Exits 1 when anything failed or when no
# suite reported at all (a suite that did not run is not a pass).
name=${1:?usage: summary.sh NAME LOG...}
shift
cat -- "$@" 2>/dev/null | sed 's/\x1b\[[0-9;]*m//g' | awk -v name="$name" '
  /^[A-Za-z0-9_.\/+-]+: [0-9]+ passed, [0-9]+ failed$/ {
    p += $2; f += $4; n++
  }
  END {
    if (n == 0) { f += 1; print "summary: no suite reported a result" > "/dev/stderr" }
    printf "%s: %d passed, %d failed\n", name, p, f
    exit (f > 0) ? 1 : 0
  }'

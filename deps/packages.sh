#!/bin/sh
# Usage: deps/packages.sh GROUP...
# Prints the packages of the named groups of deps/debian.txt, space-separated
# on one line, in file order (e.g. `deps/packages.sh build test`).
[ $# -gt 0 ] || { echo "usage: deps/packages.sh GROUP..." >&2; exit 2; }
list=$(dirname "$0")/debian.txt
[ -r "$list" ] || { echo "deps/packages.sh: cannot read $list" >&2; exit 1; }
awk -v want=" $* " '
  /^[ \t]*(#|$)/ { next }
  /^\[.*\]$/ { group = substr($0, 2, length($0) - 2); seen[group] = 1; next }
  index(want, " " group " ") { out = out (out == "" ? "" : " ") $1 }
  END {
    n = split(want, w, " ")
    for (i = 1; i <= n; i++)
      if (!(w[i] in seen)) { print "deps/packages.sh: no group " w[i] > "/dev/stderr"; bad = 1 }
    if (bad) exit 1
    print out
  }' "$list"

#!/bin/sh
# Usage: deps/missing.sh GROUP...
# Prints the packages of those groups of deps/debian.txt that are not
# installed, space-separated on one line (nothing when all are). A package
# counts as installed when an installed package Provides it: a machine whose
# nodejs (NodeSource's, say) provides npm must not be asked for Debian's npm,
# which conflicts with it. Exits 2 where dpkg-query is missing.
command -v dpkg-query >/dev/null 2>&1 || exit 2
want=$("$(dirname "$0")/packages.sh" "$@") || exit 1
provided=$(dpkg-query -W -f='${Status} ${Provides}\n' 2>/dev/null |
  sed -n 's/^install ok installed //p' | tr ',' '\n' | sed 's/ *(.*//; s/^ *//')
missing=
for p in $want; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' && continue
  printf '%s\n' "$provided" | grep -qx "$p" && continue
  missing="$missing $p"
done
echo "${missing# }"

#!/usr/bin/env bash
# Usage: luacheck ... | lintsum.sh LUACHECK_EXIT_STATUS
# Turns luacheck's per-file lines ("Checking f.lua    OK" / "... N warnings")
# into "luacheck: N passed, N failed" (one check per file).
rc=${1:-0}
sed 's/\x1b\[[0-9;]*m//g' | awk -v rc="$rc" '
  /^Checking / { if ($NF == "OK") p++; else f++ }
  END {
    if (p + f == 0 && rc != 0) f = 1
    printf "luacheck: %d passed, %d failed\n", p, f
  }'

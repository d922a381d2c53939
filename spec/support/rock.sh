#!/usr/bin/env bash
# Usage: spec/support/rock.sh   (from the repository root)
# Builds and installs the rock into a temporary tree with
# `luarocks --lua-version 5.4 make rockspec/luasip-scm-1.rockspec --tree DIR`
# (offline), then checks that `require "luasip"` works from another folder
# with only the tree's paths. Prints "rock: N passed, N failed".
set -u
root=$(pwd)
tree=$(mktemp -d /tmp/luasip-rock.XXXXXX)
trap 'rm -rf "$tree"' EXIT
pass=0 fail=0
if luarocks --lua-version 5.4 make rockspec/luasip-scm-1.rockspec --tree "$tree" \
  > "$tree.log" 2>&1; then
  pass=$((pass + 1))
else
  fail=$((fail + 1))
  tail -n 30 "$tree.log"
fi
rm -f "$tree.log"
paths=$(luarocks --lua-version 5.4 --tree "$tree" path) || paths=
out=$(cd /tmp && eval "$paths" && ROCK_TREE="$tree" lua5.4 -e '
  local sip = require "luasip"
  local m = assert(sip.parse("OPTIONS sip:a@example.com SIP/2.0\r\n" ..
    "Via: SIP/2.0/UDP h.example.com;branch=z9hG4bKrock\r\n" ..
    "To: <sip:a@example.com>\r\nFrom: <sip:b@example.com>;tag=1\r\n" ..
    "Call-ID: rock\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n" ..
    "Content-Length: 0\r\n\r\n"))
  assert(m.via[1].branch == "z9hG4bKrock")
  local core = package.searchpath("luasip.core", package.cpath)
  assert(core and core:find(os.getenv("ROCK_TREE"), 1, true), core)
  print("rock: require \"luasip\" from /tmp uses " .. core)' 2>&1)
if [ $? = 0 ]; then
  pass=$((pass + 1))
else
  fail=$((fail + 1))
fi
echo "$out"
# the command, through luarocks' wrapper, from another folder
script=$tree/check_me.lua
printf 'return { request = function(req) req:reply(404) end }\n' > "$script"
if out=$(cd /tmp && "$tree/bin/luasip" check "$script" 2>&1) && grep -q ': ok (handlers: request' <<<"$out"; then
  pass=$((pass + 1))
  echo "rock: $tree/bin/luasip check: $out"
else
  fail=$((fail + 1))
  echo "rock: luasip check from the tree failed: $out"
fi
cd "$root" || exit 1
echo "rock: $pass passed, $fail failed"
[ "$fail" = 0 ]

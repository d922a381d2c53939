#!/usr/bin/env bash
# Usage: spec/sipp/auth_sipp.sh            (as root; from anywhere)
# Digest authentication end to end, in a loopback-only network namespace (a
# proxy sends where messages say): examples/registrar.lua --users
# (--realm example.com --algorithms MD5,SHA-256, --nonce-lifetime 5,
# --trace; SIPp digests the URI sip:IP:PORT) on udp/tcp
# 127.0.0.1:5180 and examples/proxy.lua --users --domain example.com on udp
# 127.0.0.1:5190, each its own `luasip run` process.
#   sipp-reg-md5      SIPp registers through MD5 digest ([authentication],
#                     20 calls over UDP, 5 over TCP): 401 then 200
#   sipp-reg-wrong    a wrong password: 401 again, without stale
#   driver            spec/sipp/auth_driver.lua: a replayed nc and an expired
#                     nonce get stale=true, 100 junk and 8 KB Authorization
#                     headers get 401; luasip as client (srv:send with
#                     credentials): REGISTER with SHA-256, INVITE through the
#                     proxy (407 -> Proxy-Authorization -> 200, stripped
#                     before bob); after a SIGHUP reload of the registrar,
#                     an earlier nonce is good and its used nc refused
#   trace             the registrar's --trace shows no digest response
#   servers           both still running, no error in their logs
# Prints "sipp-auth: N passed, N failed". $BUILD (build), $LUA (lua5.4),
# $LUASIP_PRELOAD (preloaded into the servers).
set -u
cd "$(dirname "$0")/../.." || exit 1
. spec/sipp/lib.sh
suite_init sipp-auth auth-sipp
DIR=$(pwd)/spec/sipp
RP=5180 PP=5190
LIFETIME=5
export LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="$BUILD/lib/?.so;;"
ns_setup "a proxy sends where messages say"
need_cmds sipp
need_build

# users: passwords, and carol by her SHA-256 and MD5 HA1s only
carol_sha=$(printf 'carol:example.com:carolpw' | sha256sum | cut -d' ' -f1)
carol_md5=$(printf 'carol:example.com:carolpw' | md5sum | cut -d' ' -f1)
cat >"$work/users.txt" <<EOF
# spec/sipp/auth_sipp.sh
alice:secret
bob:bobpw
carol:example.com:SHA-256:$carol_sha
carol:example.com:MD5:$carol_md5
EOF

luasip_start "$work/registrar.log" 'serving ' examples/registrar.lua --listen "udp:127.0.0.1:$RP" \
  --listen "tcp:127.0.0.1:$RP" --users "$work/users.txt" --algorithms MD5,SHA-256 \
  --realm example.com --nonce-lifetime "$LIFETIME" --trace || suite_fail "the registrar did not start"
REG_PID=$STARTED
luasip_start "$work/proxy.log" 'serving ' examples/proxy.lua --listen "udp:127.0.0.1:$PP" \
  --users "$work/users.txt" --domain example.com || suite_fail "the proxy did not start"
PROXY_PID=$STARTED

sipp_run() { # sipp_run TAG ARGS... -> exit status of SIPp
  local tag=$1; shift
  ns_sipp "$tag" 40 "$@" -timeout 30s -trace_err -error_file err.log
  local rc=$?
  [ "$rc" = 0 ] || { tail -n 5 "$work/$tag/err.log" 2>/dev/null | sed 's/^/  | /'; }
  return "$rc"
}

sipp_run reg-md5-udp "127.0.0.1:$RP" -sf "$DIR/auth_reg.xml" -i 127.0.0.1 -p 5181 \
  -s alice -au alice -ap secret -m 20 -r 20
result sipp-reg-md5-udp $?
sipp_run reg-md5-tcp "127.0.0.1:$RP" -sf "$DIR/auth_reg.xml" -t t1 -i 127.0.0.1 -p 5182 \
  -s carol -au carol -ap carolpw -m 5 -r 10
result sipp-reg-md5-tcp-ha1 $?
sipp_run reg-wrong "127.0.0.1:$RP" -sf "$DIR/auth_reg_wrong.xml" -i 127.0.0.1 -p 5183 \
  -s alice -au alice -ap wrong -m 5 -r 10
result sipp-reg-wrong $?

# the registrar itself (REG_PID is timeout(1), which would arm its KILL on
# a forwarded SIGHUP): the driver reloads it with SIGHUP
# (from /proc: a minbase machine has no procps)
reg_lua=$(cat /proc/"$REG_PID"/task/*/children 2>/dev/null | awk '{ print $1; exit }')
"${NSX[@]}" timeout -k 5 60 "$LUA" spec/sipp/auth_driver.lua "$RP" "$PP" "$LIFETIME" \
  "${reg_lua:-0}" "$work/registrar.log" >"$work/driver.out" 2>&1
drc=$?
cat "$work/driver.out"
passed=$((passed + $(grep -c '^ok ' "$work/driver.out")))
failed=$((failed + $(grep -c '^FAIL ' "$work/driver.out")))
if [ "$drc" != 0 ] || ! grep -q '^ok   client: bob got' "$work/driver.out"; then
  result "driver finished" 1 "exit $drc"
fi

# --trace: the registrar traced every REGISTER; no digest response in it
traced=$(grep -c '^Authorization: Digest' "$work/registrar.log")
leaked=$(grep -cE 'response="?[0-9a-f]{32}|cnonce="[^<]' "$work/registrar.log")
[ "$traced" -gt 0 ] && [ "$leaked" = 0 ]
result "trace: $traced credentials traced, $leaked digest responses shown" $?

for p in "$REG_PID:registrar" "$PROXY_PID:proxy"; do
  kill -0 "${p%%:*}" 2>/dev/null
  result "${p#*:} running" $?
  log=$work/${p#*:}.log
  errs=$(grep -cE '^[^ ]+ error |^lua5\.4:|traceback' "$log")
  [ "$errs" = 0 ]
  result "${p#*:} log without errors" $? "$(grep -m3 -E 'error|traceback' "$log")"
done
suite_end

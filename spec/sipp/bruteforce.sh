#!/usr/bin/env bash
# Usage: spec/sipp/bruteforce.sh          (as root; from anywhere)
# Issue [edge], brute-force protection, in a loopback-only network
# namespace: `luasip run examples/proxy.lua --users FILE --domain
# example.com --algorithms MD5 --auth-failures 5 --trace` on udp
# 127.0.0.1:5060, and svcrack (Debian sipvicious) guessing alice's password
# from a dictionary that holds it at position 10 (svcrack 0.3.3 ignores its
# --bindingip: its source is 127.0.0.1).
#   not-cracked   svcrack does not find the password: the source was
#                 answered 403 before the tenth guess
#   403-after-5   the trace shows 5 REGISTERs with credentials from svcrack
#                 before the first "403 Forbidden (too many failed
#                 attempts)"
#   legit         while svcrack's source is blocked, bob registers from
#                 127.0.0.3 with SIPp (MD5 digest): 200
# FAILURES (5) sets --auth-failures (100 shows svcrack succeeding without
# the guard in the way). Bounded (about 20 s), every process stopped by PID. Prints
# "bruteforce: N passed, N failed". $BUILD (build), $LUA (lua5.4).
set -u
cd "$(dirname "$0")/../.." || exit 1
. spec/sipp/lib.sh
suite_init bruteforce bruteforce
DIR=$(pwd)/spec/sipp
P=5060
ns_setup "a proxy sends where messages say"
need_cmds sipp svcrack

printf 'alice:wonderland\nbob:hunter2\n' >"$work/users.txt"
: >"$work/dict.txt"
for w in 123456 password 1234 qwerty letmein admin welcome monkey dragon wonderland \
  secret master sunshine; do
  echo "$w" >>"$work/dict.txt"
done

LUASIP_TIMEOUT=120 luasip_start "$work/proxy.log" 'serving ' examples/proxy.lua \
  --listen "udp:127.0.0.1:$P" --users "$work/users.txt" --domain 127.0.0.1 --algorithms MD5 \
  --auth-failures "${FAILURES:-5}" --auth-block 300 --trace || suite_fail "the proxy did not start"
PROXY_PID=$STARTED

(cd "$work" && "${NSX[@]}" timeout -k 2 15 svcrack -u alice -d "$work/dict.txt" \
  -x 127.0.0.1 -P 5070 -p "$P" --maximumtime 5 127.0.0.1 >svcrack.out 2>&1)
if grep -q wonderland "$work/svcrack.out"; then
  result not-cracked 1 "(svcrack found it)"
  sed 's/^/  | /' "$work/svcrack.out" | tail -n 5
else
  result not-cracked 0
fi

# the trace: REGISTERs from svcrack (port 5070) with credentials before the
# first 403 of the guard
n=$("$LUA" - "$work/proxy.log" <<'LUA'
local f = assert(io.open(arg[1], "rb"))
local text = f:read("a")
f:close()
local with_auth = 0
-- messages start at a trace line "<time> UDP a -> b (n bytes)"
for dir, from, msg in text:gmatch("\n%S+Z UDP %S+ (%S+) (%S+) %(%d+ bytes%)\r?\n(.-)\r?\n\r?\n") do
  if dir == "<-" and from:match(":5070$") and msg:match("^REGISTER ")
      and msg:match("\nAuthorization: ") then
    with_auth = with_auth + 1
  elseif dir == "->" and msg:match("^SIP/2%.0 403 Forbidden %(too many failed attempts%)") then
    print(with_auth)
    return
  end
end
print("none")
LUA
)
if [ "$n" = "${FAILURES:-5}" ]; then
  result 403-after-5 0
else
  result 403-after-5 1 "(REGISTERs with credentials before the first 403: $n)"
fi

# auth_reg.xml for the domain 127.0.0.1 (SIPp's digest uri is
# sip:IP:PORT, so the Request-URI must be that, in the domain served)
sed 's/example\.com/127.0.0.1/g' "$DIR/auth_reg.xml" >"$work/reg.xml"
ns_sipp legit 20 "127.0.0.1:$P" -sf "$work/reg.xml" -i 127.0.0.3 -p 5181 -s bob -au bob \
  -ap hunter2 -m 3 -r 10 -timeout 15s -trace_err -error_file err.log
rc=$?
result legit "$rc" "(bob from 127.0.0.3: SIPp rc $rc)"
[ "$rc" = 0 ] || tail -n 5 "$work/legit/err.log" 2>/dev/null | sed 's/^/  | /'

kill -0 "$PROXY_PID" 2>/dev/null
result proxy-alive $?

suite_end

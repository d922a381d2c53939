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
BUILD=${BUILD:-build}
LUA=${LUA:-lua5.4}
DIR=$(pwd)/spec/sipp
NS=luasip-brute-$$
P=5060
passed=0 failed=0
work=$(mktemp -d /tmp/luasip-bruteforce.XXXXXX)
PROXY_PID=''
ns_made=''

stop_pid() { # stop_pid PID: SIGTERM, then SIGKILL
  [ -n "$1" ] || return 0
  kill "$1" 2>/dev/null
  for _ in $(seq 20); do
    kill -0 "$1" 2>/dev/null || break
    sleep 0.05
  done
  kill -9 "$1" 2>/dev/null
  wait "$1" 2>/dev/null
}

# shellcheck disable=SC2317 # (run by the trap)
cleanup() {
  stop_pid "$PROXY_PID"
  if [ -n "$ns_made" ]; then
    ip netns pids "$NS" 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns delete "$NS" 2>/dev/null
  fi
  if [ -n "${KEEP:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

result() { # result NAME OK(0/1) [detail]
  if [ "$2" = 0 ]; then
    passed=$((passed + 1)); echo "ok   $1 ${3:-}"
  else
    failed=$((failed + 1)); echo "FAIL $1 ${3:-}"
  fi
}

if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null || ! ip netns add "$NS" 2>/dev/null; then
  echo "bruteforce: needs root and ip netns (a proxy sends where messages say: never outside a namespace)"
  echo "bruteforce: 0 passed, 1 failed"
  exit 1
fi
ns_made=1
NSX=(ip netns exec "$NS")
"${NSX[@]}" ip link set lo up
if "${NSX[@]}" ip -o link show | grep -v ': lo:' | grep -q .; then
  echo "bruteforce: namespace $NS has more than loopback"
  echo "bruteforce: 0 passed, 1 failed"
  exit 1
fi
if ! command -v sipp >/dev/null || ! command -v svcrack >/dev/null; then
  echo "bruteforce: needs sipp (sip-tester) and svcrack (sipvicious)"
  echo "bruteforce: 0 passed, 1 failed"
  exit 1
fi

printf 'alice:wonderland\nbob:hunter2\n' >"$work/users.txt"
: >"$work/dict.txt"
for w in 123456 password 1234 qwerty letmein admin welcome monkey dragon wonderland \
  secret master sunshine; do
  echo "$w" >>"$work/dict.txt"
done

"${NSX[@]}" env LUASIP_BUILD="$BUILD" timeout -k 5 120 "$LUA" bin/luasip run examples/proxy.lua \
  --listen "udp:127.0.0.1:$P" --users "$work/users.txt" --domain 127.0.0.1 --algorithms MD5 \
  --auth-failures "${FAILURES:-5}" --auth-block 300 --trace >"$work/proxy.log" 2>&1 &
PROXY_PID=$!
for _ in $(seq 100); do
  grep -qs 'serving ' "$work/proxy.log" && break
  sleep 0.1
done
if ! grep -qs 'serving ' "$work/proxy.log"; then
  echo "bruteforce: the proxy did not start:"; sed 's/^/  | /' "$work/proxy.log"
  echo "bruteforce: 0 passed, 1 failed"
  exit 1
fi

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
mkdir -p "$work/legit"
sed 's/example\.com/127.0.0.1/g' "$DIR/auth_reg.xml" >"$work/legit/reg.xml"
(cd "$work/legit" && "${NSX[@]}" timeout -k 5 20 sipp "127.0.0.1:$P" -sf "$work/legit/reg.xml" \
  -i 127.0.0.3 -p 5181 -s bob -au bob -ap hunter2 -m 3 -r 10 -nostdin -timeout 15s \
  -trace_err -error_file err.log >out.txt 2>&1)
rc=$?
result legit "$rc" "(bob from 127.0.0.3: SIPp rc $rc)"
[ "$rc" = 0 ] || tail -n 5 "$work/legit/err.log" 2>/dev/null | sed 's/^/  | /'

kill -0 "$PROXY_PID" 2>/dev/null
result proxy-alive $?

echo "bruteforce: $passed passed, $failed failed"
[ "$failed" = 0 ]

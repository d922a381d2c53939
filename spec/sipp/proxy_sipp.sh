#!/usr/bin/env bash
# Usage: spec/sipp/proxy_sipp.sh            (as root; from anywhere)
# The proxy against SIPp peers, in a loopback-only network namespace (a
# proxy sends to addresses taken from messages): examples/proxy.lua runs
# as its own process on udp+tcp 127.0.0.1:5060 (spec/sipp/proxy_run.lua,
# the script contract's runner, until `luasip run` is on this branch), SIPp
# UACs and UASes register and call through it:
#   call-udp, call-tcp   INVITE/180/200/ACK/BYE with Record-Route checked at
#                        both ends and ACK/BYE loose-routed
#   cancel               CANCEL during ringing: 487 to the caller, the
#                        CANCEL reaches the callee
#   fork                 parallel: one callee 486, one rings (cancelled),
#                        one answers 200: the caller gets the 200
#   serial               q 1.0 -> 503, q 0.5 -> 408, q 0.1 -> 200
#   six                  a 603 cancels the ringing branch, caller gets 603
#   auth                 two 401s: the caller gets one 401 with both
#                        WWW-Authenticate challenges
#   maxfwd               Max-Forwards 0 -> 483
#   loop                 an AOR bound to the proxy itself -> 482
#   vectors              RFC 4475 zeromf (483), mismatch02 (400/501),
#                        intmeth (404: forwarded to an unknown AOR)
# Each check: every SIPp process exits 0 (its scenario passed: expected
# messages in order, regexp checks). Prints "sipp-proxy: N passed, N failed".
# $BUILD (build), $LUA (lua5.4), $LUASIP_PRELOAD (preloaded into the proxy).
set -u
cd "$(dirname "$0")/../.." || exit 1
. spec/sipp/lib.sh
suite_init sipp-proxy proxy-sipp
DIR=$(pwd)/spec/sipp
P=5070
ns_setup "a proxy sends where messages say"
need_cmds sipp

LUASIP_TIMEOUT=600 luasip_start "$work/proxy.log" 'serving .*tcp' examples/proxy.lua \
  --listen "udp:127.0.0.1:$P" --listen "tcp:127.0.0.1:$P" || suite_fail "the proxy did not start"
PROXY_PID=$STARTED

# sipp TAG ARGS...: bounded, in the namespace, in $work/TAG/; rc in $work/TAG.rc
sipp_bg() {
  local tag=$1; shift
  ns_sipp_bg "$tag" 40 "$@" -timeout 30s -trace_err -error_file err.log -trace_msg -message_file msg.log
}
show() { # failure detail
  local t
  for t in "$@"; do
    echo "  --- $t (rc $(rc_of "$t"))"
    tail -n 5 "$work/$t/err.log" 2>/dev/null | sed 's/^/  | /'
    grep -E 'Unexpected|Aborting|failed' "$work/$t/out.txt" 2>/dev/null | tail -n 3 | sed 's/^/  | /'
  done
}

# register USER CONTACT_PORT TP Q (from local port 5100, 5101, ...)
REG_PORT=5100
register() {
  local tag=reg-$1-$2
  mkdir -p "$work/$tag"
  REG_PORT=$((REG_PORT + 1))
  (cd "$work/$tag" && "${NSX[@]}" timeout -k 5 15 sipp "127.0.0.1:$P" -sf "$DIR/proxy_reg.xml" \
    -i 127.0.0.1 -p "$REG_PORT" -s "$1" -key contact_host 127.0.0.1 -key contact_port "$2" \
    -key tp "$3" -key q "$4" -m 1 -nostdin -timeout 10s >out.txt 2>&1) ||
    echo "  (register $1 -> $2 failed)"
}

# fill a template: fill SRC DST KEY=VALUE...
fill() {
  local src=$1 dst=$2; shift 2
  cp "$src" "$dst"
  local kv k v
  for kv in "$@"; do
    k=${kv%%=*} v=${kv#*=}
    "$LUA" - "$dst" "@$k@" "$v" <<'LUA'
local path, key, value = arg[1], arg[2], arg[3]
local f = assert(io.open(path, "rb"))
local text = f:read("a")
f:close()
local parts, at = {}, 1
while true do
  local i, j = text:find(key, at, true)
  if not i then break end
  parts[#parts + 1] = text:sub(at, i - 1) .. value
  at = j + 1
end
parts[#parts + 1] = text:sub(at)
f = assert(io.open(path, "wb"))
f:write(table.concat(parts))
f:close()
LUA
  done
}

reject_xml() { # reject_xml CODE REASON HDR -> path
  local f=$work/uas_$1_$RANDOM.xml
  fill "$DIR/proxy_uas_reject.xml" "$f" "CODE=$1" "REASON=$2" "HDR=$3"
  echo "$f"
}

expect_xml() { # expect_xml CODE MF CHECK -> path
  local f=$work/uac_$1_$RANDOM.xml
  fill "$DIR/proxy_uac_expect.xml" "$f" "CODE=$1" "MF=$2" "CHECK=$3"
  echo "$f"
}

wait_all() { # wait for the background SIPps
  wait $(jobs -p | grep -v "^$PROXY_PID\$") 2>/dev/null
}

all_ok() { # all_ok TAG... -> 0 when every rc is 0
  local t
  for t in "$@"; do [ "$(rc_of "$t")" = 0 ] || return 1; done
  return 0
}

check() { # check NAME TAG...
  local name=$1; shift
  wait_all
  if all_ok "$@"; then result "$name" 0; else result "$name" 1; show "$@"; fi
}

# --- call over UDP and TCP ----------------------------------------------------
register bob 5071 udp 1.0
sipp_bg call-udp-uas -sf "$DIR/proxy_uas_ok.xml" -i 127.0.0.1 -p 5071 -m 1 -d 100
wait_bound 5071
sipp_bg call-udp-uac "127.0.0.1:$P" -sf "$DIR/proxy_uac_call.xml" -i 127.0.0.1 -p 5081 -s bob -m 1
check call-udp call-udp-uas call-udp-uac

register carol 5072 tcp 1.0
sipp_bg call-tcp-uas -sf "$DIR/proxy_uas_ok.xml" -t t1 -i 127.0.0.1 -p 5072 -m 1 -d 100
wait_bound 5072
sipp_bg call-tcp-uac "127.0.0.1:$P" -sf "$DIR/proxy_uac_call.xml" -t t1 -i 127.0.0.1 -p 5082 -s carol -m 1
check call-tcp call-tcp-uas call-tcp-uac

# --- CANCEL during ringing ---------------------------------------------------------
register dave 5073 udp 1.0
sipp_bg cancel-uas -sf "$DIR/proxy_uas_ring_cancel.xml" -i 127.0.0.1 -p 5073 -m 1
wait_bound 5073
sipp_bg cancel-uac "127.0.0.1:$P" -sf "$DIR/proxy_uac_cancel.xml" -i 127.0.0.1 -p 5083 -s dave -m 1
check cancel cancel-uas cancel-uac

# --- parallel fork: 486, ringing (cancelled), 200 ----------------------------------
register fork 5074 udp 1.0
register fork 5075 udp 1.0
register fork 5076 udp 1.0
sipp_bg fork-486 -sf "$(reject_xml 486 'Busy Here' 'X-Test: busy')" -i 127.0.0.1 -p 5074 -m 1 -d 0
sipp_bg fork-ring -sf "$DIR/proxy_uas_ring_cancel.xml" -i 127.0.0.1 -p 5075 -m 1
sipp_bg fork-200 -sf "$DIR/proxy_uas_ok.xml" -i 127.0.0.1 -p 5076 -m 1 -d 500
wait_bound 5074 5075 5076
sipp_bg fork-uac "127.0.0.1:$P" -sf "$DIR/proxy_uac_call.xml" -i 127.0.0.1 -p 5084 -s fork -m 1
check fork fork-486 fork-ring fork-200 fork-uac

# --- serial fork: 503 then 408 then 200 ----------------------------------------------
register serial 5077 udp 1.0
register serial 5078 udp 0.5
register serial 5079 udp 0.1
sipp_bg serial-503 -sf "$(reject_xml 503 'Service Unavailable' 'X-Test: first')" -i 127.0.0.1 -p 5077 -m 1 -d 0
sipp_bg serial-408 -sf "$(reject_xml 408 'Request Timeout' 'X-Test: second')" -i 127.0.0.1 -p 5078 -m 1 -d 0
sipp_bg serial-200 -sf "$DIR/proxy_uas_ok.xml" -i 127.0.0.1 -p 5079 -m 1 -d 0
wait_bound 5077 5078 5079
sipp_bg serial-uac "127.0.0.1:$P" -sf "$DIR/proxy_uac_call.xml" -i 127.0.0.1 -p 5085 -s serial -m 1
check serial serial-503 serial-408 serial-200 serial-uac

# --- a 6xx cancels the rest ---------------------------------------------------------------
register six 5086 udp 1.0
register six 5087 udp 1.0
sipp_bg six-ring -sf "$DIR/proxy_uas_ring_cancel.xml" -i 127.0.0.1 -p 5086 -m 1
sipp_bg six-603 -sf "$(reject_xml 603 'Decline' 'X-Test: decline')" -i 127.0.0.1 -p 5087 -m 1 -d 300
wait_bound 5086 5087
sipp_bg six-uac "127.0.0.1:$P" -sf "$(expect_xml 603 70 '')" -i 127.0.0.1 -p 5088 -s six -m 1
check six six-ring six-603 six-uac

# --- 401 aggregation ---------------------------------------------------------------------------
register auth 5089 udp 1.0
register auth 5090 udp 1.0
sipp_bg auth-a -sf "$(reject_xml 401 Unauthorized 'WWW-Authenticate: Digest realm="alpha", nonce="1"')" -i 127.0.0.1 -p 5089 -m 1 -d 0
sipp_bg auth-b -sf "$(reject_xml 401 Unauthorized 'WWW-Authenticate: Digest realm="beta", nonce="2"')" -i 127.0.0.1 -p 5090 -m 1 -d 100
wait_bound 5089 5090
CHK='<ereg regexp="realm=.alpha" search_in="msg" check_it="true" assign_to="a"/><ereg regexp="realm=.beta" search_in="msg" check_it="true" assign_to="b"/><log message="[$a][$b]"/>'
sipp_bg auth-uac "127.0.0.1:$P" -sf "$(expect_xml 401 70 "$CHK")" -i 127.0.0.1 -p 5091 -s auth -m 1
check auth auth-a auth-b auth-uac

# --- Max-Forwards 0, loop ------------------------------------------------------------------------
sipp_bg maxfwd-uac "127.0.0.1:$P" -sf "$(expect_xml 483 0 '')" -i 127.0.0.1 -p 5092 -s bob -m 1
check maxfwd maxfwd-uac

register loop "$P" udp 1.0
sipp_bg loop-uac "127.0.0.1:$P" -sf "$(expect_xml 482 70 '')" -i 127.0.0.1 -p 5093 -s loop -m 1
check loop loop-uac

# --- RFC 4475 vectors at the proxy ---------------------------------------------------------------
"${NSX[@]}" env LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH="$BUILD/lib/?.so;;" \
  timeout -k 5 30 "$LUA" spec/sipp/proxy_vectors.lua "$P" spec/vectors/rfc4475 >"$work/vectors.out" 2>&1
while read -r st name rest; do
  case $st in
    ok) result "vector $name" 0 ;;
    FAIL) result "vector $name" 1 "$rest" ;;
  esac
done <"$work/vectors.out"
grep -q '^ok \|^FAIL ' "$work/vectors.out" || { result vectors 1 "no result"; sed 's/^/  | /' "$work/vectors.out"; }

if ! kill -0 "$PROXY_PID" 2>/dev/null; then
  result "proxy alive" 1
  sed 's/^/  | /' "$work/proxy.log"
elif grep -qE 'runtime error|Sanitizer| error ' "$work/proxy.log"; then
  result "proxy log clean" 1
  sed 's/^/  | /' "$work/proxy.log" | head -n 40
fi
suite_end

#!/usr/bin/env bash
# Usage: spec/baresip/run.sh            (as root; from anywhere)
# A real softphone through the proxy: two baresip instances (Debian
# baresip-core) register to `luasip run examples/proxy.lua` and call each
# other, once over each of UDP, TCP and TLS, in a loopback-only network
# namespace (a proxy sends where messages say: never outside one).
#
#   the proxy    spec/baresip/proxy_tls.lua (examples/proxy.lua with
#                server.tls) on udp+tcp 127.0.0.1:5060 and tls 127.0.0.1:5061,
#                certificates from a test CA made here with openssl
#   the phones   alice and bob, each with its own config dir (-f DIR):
#                SIP on 127.0.0.1 (their own TLS listener too), audio
#                through ALSA's `null` device both ways, driven through the
#                `cons` module (commands as UDP datagrams on 127.0.0.1)
#   udp|tcp|tls  both register over the transport ("{0/TCP/v4} 200 OK"),
#                alice dials bob through the proxy (bob answers by itself),
#                the call is established on both sides ("Call
#                established"), alice hangs up through cons, the call ends
#                on both sides (bob's through the BYE the proxy relays);
#                every message of the call in the proxy's trace (--trace)
#                went over the transport under test, INVITE and BYE among them
#   proxy        the proxy is still running and logged no warning or error
#
# Every wait is bounded (20 s a call; the whole suite takes seconds and is
# ended after 100 s); the processes it started are stopped by PID, the namespace is
# deleted on exit. Prints "baresip: N passed, N failed" last and exits
# non-zero on a failure. $BUILD (build), $LUA (lua5.4), $LUASIP_PRELOAD
# (preloaded into the proxy), KEEP=1 keeps the work dir (logs, configs).
set -u
cd "$(dirname "$0")/../.." || exit 1
. spec/netns/lib.sh
suite_init baresip baresip
P=5060  # the proxy: udp/tcp on P, tls on P+1

# interrupted, or out of time: the result line still counts a failure
trap 'echo "baresip: interrupted"; echo "baresip: $passed passed, $((failed + 1)) failed"; exit 130' INT TERM
# the whole suite is bounded: a watchdog ends this script (its trap stops the rest)
(
  trap 'kill "$s" 2>/dev/null; exit 0' TERM
  sleep 100 & s=$!
  wait "$s" && echo "baresip: the suite ran out of time (100 s)" && kill -TERM $$
) 2>/dev/null &
WATCHDOG=$!
PIDS+=("$WATCHDOG")

finish() {
  echo "baresip: $passed passed, $failed failed"
  [ "$failed" = 0 ] && [ "$passed" -gt 0 ]
  exit $?
}

give_up() { # give_up WHY: the suite cannot run, counted as one failure
  echo "baresip: $1"
  failed=$((failed + 1))
  finish
}

command -v baresip >/dev/null || give_up "baresip not installed (apt-get install baresip-core)"
command -v openssl >/dev/null || give_up "openssl not installed"
MODDIR=
for d in /usr/lib/baresip/modules /usr/lib/*/baresip/modules /usr/local/lib/baresip/modules; do
  [ -f "$d/cons.so" ] && MODDIR=$d && break
done
[ -n "$MODDIR" ] || give_up "baresip's modules (cons.so) not found"
ns_setup "a proxy sends where messages say"

# --- a test CA, the proxy's and the phones' certificates --------------------
pki=$work/pki
mkdir -p "$pki"
cat >"$pki/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[leaf_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
EOF
make_pki() {
  local newkey=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes) name
  openssl req -config "$pki/openssl.cnf" -x509 "${newkey[@]}" -keyout "$pki/ca.key" \
    -out "$pki/ca.pem" -days 2 -subj '/CN=luasip baresip test CA' -extensions ca_ext || return 1
  for name in proxy phone; do
    openssl req -config "$pki/openssl.cnf" -new "${newkey[@]}" -keyout "$pki/$name.key" \
      -out "$pki/$name.csr" -subj "/CN=luasip test $name" || return 1
    openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" \
      -CAcreateserial -out "$pki/$name.pem" -days 2 \
      -extfile "$pki/openssl.cnf" -extensions leaf_ext || return 1
  done
  # baresip's sip_certificate: certificate and key in one file
  cat "$pki/phone.pem" "$pki/phone.key" >"$pki/phone-both.pem"
}
make_pki >"$work/pki.log" 2>&1 || { sed 's/^/  | /' "$work/pki.log"; give_up "openssl failed"; }

# --- the proxy ---------------------------------------------------------------
export LUASIP_TLS_CERT="$pki/proxy.pem" LUASIP_TLS_KEY="$pki/proxy.key" LUASIP_TLS_CA="$pki/ca.pem"
LUASIP_TIMEOUT=110 luasip_start "$work/proxy.log" 'serving .*tls:' spec/baresip/proxy_tls.lua --trace \
  --listen "udp:127.0.0.1:$P" --listen "tcp:127.0.0.1:$P" --listen "tls:127.0.0.1:$((P + 1))" ||
  give_up "no proxy"
PROXY_PID=$STARTED

# wait_for FILE ERE [SECONDS]: until a line of FILE matches, for SECONDS or
# until $DEADLINE (a value of $SECONDS)
DEADLINE=0
wait_for() {
  local file=$1 re=$2 until=$DEADLINE
  [ -n "${3:-}" ] && until=$((SECONDS + $3))
  while :; do
    grep -qsE "$re" "$file" && return 0
    [ "$SECONDS" -lt "$until" ] || return 1
    sleep 0.1
  done
}

# phone_config DIR SIP_PORT CONS_PORT USER DISPLAY_NAME TRANSPORT ANSWERMODE
phone_config() {
  local dir=$1 sport=$2 cport=$3 user=$4 name=$5 tp=$6 answer=$7 pport=$P
  [ "$tp" = tls ] && pport=$((P + 1))
  mkdir -p "$dir"
  cat >"$dir/config" <<EOF
poll_method		epoll
sip_listen		127.0.0.1:$sport
sip_certificate		$pki/phone-both.pem
sip_cafile		$pki/ca.pem
net_interface		127.0.0.1
dns_server		127.0.0.1:53
call_local_timeout	20
call_max_calls		4
audio_player		alsa,null
audio_source		alsa,null
audio_alert		alsa,null
rtp_ports		$((sport * 2))-$((sport * 2 + 9))
module_path		$MODDIR
module			g711.so
module			alsa.so
module			cons.so
module_tmp		account.so
module_app		menu.so
cons_listen		127.0.0.1:$cport
EOF
  echo "\"$name\" <sip:$user@127.0.0.1:$pport;transport=$tp>;answermode=$answer;regint=600;mwi=no" >"$dir/accounts"
}

# cons PORT COMMAND: one command line to a phone's cons module (UDP)
cons() {
  # shellcheck disable=SC2016 # ($1 and $2 are the inner shell's)
  "${NSX[@]}" bash -c 'printf "%s\n" "$1" >"/dev/udp/127.0.0.1/$2"' _ "$2" "$1"
}

show_logs() {
  local f
  for f in "$@"; do
    echo "  --- $(basename "$f")"
    grep -avE 'rtcp_sess|^\[;m|audio=[0-9]' "$f" | tail -n 15 | sed 's/^/  | /'
  done
}

# call_test TP INDEX
call_test() {
  local tp=$1 i=$2 TP alog blog apid bpid why='' show=logs
  TP=${tp^^}
  local asip=$((5100 + i * 20)) bsip=$((5110 + i * 20))
  local acons=$((5600 + i * 20)) bcons=$((5610 + i * 20))
  local dir=$work/$tp pport=$P
  [ "$tp" = tls ] && pport=$((P + 1))
  phone_config "$dir/alice" "$asip" "$acons" alice "Alice Liddell" "$tp" manual
  phone_config "$dir/bob" "$bsip" "$bcons" bob "Bob Cratchit" "$tp" auto
  alog=$dir/alice.log blog=$dir/bob.log
  local start
  start=$(($(wc -l <"$work/proxy.log") + 1))
  DEADLINE=$((SECONDS + 20)) # for the whole call
  "${NSX[@]}" timeout -k 2 40 baresip -4 -f "$dir/alice" -t 30 </dev/null >"$alog" 2>&1 &
  apid=$!
  "${NSX[@]}" timeout -k 2 40 baresip -4 -f "$dir/bob" -t 30 </dev/null >"$blog" 2>&1 &
  bpid=$!
  PIDS+=("$apid" "$bpid")
  local reg="\{0/$TP/v4\} 200 OK"
  if ! wait_for "$alog" "alice@127.0.0.1: $reg" || ! wait_for "$blog" "bob@127.0.0.1: $reg"; then
    why="(not both registered over $TP)"
  else
    cons "$acons" "/dial sip:bob@127.0.0.1:$pport" # baresip adds the account's transport
    if ! wait_for "$alog" 'alice@127.0.0.1: Call established: sip:bob@' ||
      ! wait_for "$blog" 'bob@127.0.0.1: Call established: sip:alice@'; then
      why="(call not established on both sides)"
    else
      sleep 1 # the call stays up a moment
      cons "$acons" "/hangup"
      if ! wait_for "$alog" 'Call with sip:bob@[^ ]* terminated' ||
        ! wait_for "$blog" 'Call with sip:alice@[^ ]* terminated'; then
        why="(call not ended on both sides)"
      fi
    fi
  fi
  forget_pid "$apid"
  forget_pid "$bpid"
  stop_pid "$apid" 40
  stop_pid "$bpid" 40
  # the proxy's trace of this test: every message over TP, the call's
  # INVITE and BYE relayed
  tail -n +"$start" "$work/proxy.log" >"$dir/trace.log"
  local heads=$dir/trace.heads
  grep -aE '^[0-9-]+T[0-9:.]+Z (UDP|TCP|TLS) ' "$dir/trace.log" >"$heads"
  local other
  other=$(grep -avc "Z $TP " "$heads")
  if [ -z "$why" ] && [ "$other" -gt 0 ]; then
    why="($other of $(wc -l <"$heads") messages in the proxy's trace not over $TP)"
    show=trace
  fi
  if [ -z "$why" ] && ! { grep -aqE '^INVITE sip:bob' "$dir/trace.log" && grep -aqE '^BYE sip:' "$dir/trace.log"; }; then
    why="(no INVITE or no BYE through the proxy)"
  fi
  if [ -n "$why" ]; then
    result "$tp" 1 "$why"
    if [ "$show" = trace ]; then # each message's first lines: where, and what
      grep -aE -A1 '^[0-9-]+T[0-9:.]+Z (UDP|TCP|TLS) ' "$dir/trace.log" | grep -av '^--$' |
        paste - - | grep -av "Z $TP " | head -n 8 | sed 's/^/  | /'
    else
      show_logs "$alog" "$blog"
    fi
  else
    result "$tp" 0
  fi
}

call_test udp 0
call_test tcp 1
call_test tls 2

# the proxy survived and complained about nothing
if ! kill -0 "$PROXY_PID" 2>/dev/null; then
  result proxy 1 "(the proxy died)"
  sed 's/^/  | /' "$work/proxy.log" | tail -n 30
elif grep -aE '^[0-9TZ:-]+ (warn|error) ' "$work/proxy.log" >"$work/proxy.err"; then
  result proxy 1 "(warnings or errors in its log)"
  head -n 20 "$work/proxy.err" | sed 's/^/  | /'
else
  result proxy 0
fi
finish

#!/usr/bin/env bash
# Usage: spec/browser/run.sh   (as root; after `make browser-deps`)
# The browser test (spec/browser/webphone_test.js): examples/webphone.lua
# on ws:127.0.0.1:8080, wss:127.0.0.1:8443 (a test CA made here) and
# udp:127.0.0.1:5060, and headless chromium with two JsSIP pages calling
# each other, once over WS and once over WSS; all inside a network
# namespace holding loopback only (luasip relays to addresses taken from
# messages). The namespace is luasip-browser-$$, deleted on exit; the server
# is stopped by PID. Prints "browser: N passed, N failed" per transport.
set -u
cd "$(dirname "$0")/../.." || exit 1
NS=luasip-browser-$$
BUILD=${BUILD:-build}
NPM=$BUILD/npm/node_modules
work=$(mktemp -d /tmp/luasip-browser.XXXXXX)
ns_made= server=

# shellcheck disable=SC2317 # (run by the trap)
cleanup() {
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null
    for _ in $(seq 40); do kill -0 "$server" 2>/dev/null || break; sleep 0.05; done
    kill -9 "$server" 2>/dev/null
    wait "$server" 2>/dev/null
  fi
  if [ -n "$ns_made" ]; then
    ip netns pids "$NS" 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns delete "$NS" 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() { echo "browser: $1"; echo "browser: 0 passed, 1 failed"; exit 1; }

[ "$(id -u)" = 0 ] || fail "needs root (a network namespace)"
command -v chromium >/dev/null || fail "chromium is not installed (deps/debian.txt, group test)"
command -v node >/dev/null || fail "node is not installed (deps/debian.txt, group test)"
[ -d "$NPM/puppeteer-core" ] && [ -f examples/webphone/lib/jssip.min.js ] \
  || fail "run make browser-deps first (npm packages of spec/browser/package.json)"
ip netns add "$NS" 2>"$work/err" || fail "ip netns add: $(cat "$work/err")"
ns_made=1
ip netns exec "$NS" ip link set lo up || fail "ip link set lo up failed"
if ip netns exec "$NS" ip -o link show | grep -v ': lo:' | grep -q .; then
  fail "namespace $NS has more than loopback"
fi

# a test CA and a certificate for 127.0.0.1
cat >"$work/ext.cnf" <<'CNF'
subjectAltName=IP:127.0.0.1,DNS:localhost
basicConstraints=critical,CA:FALSE
extendedKeyUsage=serverAuth
CNF
key="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
# shellcheck disable=SC2086
(cd "$work" &&
  openssl req -x509 $key -keyout ca.key -out ca.pem -days 1 -subj /CN=luasip-browser-ca \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign &&
  openssl req $key -keyout srv.key -out srv.csr -subj /CN=127.0.0.1 &&
  openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem \
    -days 1 -extfile ext.cnf) >"$work/openssl.log" 2>&1 || fail "openssl: $(cat "$work/openssl.log")"
spki=$(openssl x509 -pubkey -noout -in "$work/srv.pem" | openssl pkey -pubin -outform der \
  | openssl dgst -sha256 -binary | base64)

ip netns exec "$NS" env ${LUASIP_PRELOAD:+LD_PRELOAD="$LUASIP_PRELOAD"} \
  LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH="$BUILD/lib/?.so;;" \
  "${LUA:-lua5.4}" bin/luasip run examples/webphone.lua --listen ws:127.0.0.1:8080 \
  --listen wss:127.0.0.1:8443 --listen udp:127.0.0.1:5060 \
  --tls-cert "$work/srv.pem" --tls-key "$work/srv.key" ${BROWSER_TRACE:+--trace} >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do
  grep -q 'serving ' "$work/server.log" && break
  kill -0 "$server" 2>/dev/null || break
  sleep 0.1
done
grep -q 'serving ' "$work/server.log" || fail "the server did not start: $(cat "$work/server.log")"

rc=0
# URL [MODE]: two pages over WS, over WSS, then browser <-> UDP (SIPp) over WS
for run in ${BROWSER_RUNS:-http://127.0.0.1:8080/ https://127.0.0.1:8443/ http://127.0.0.1:8080/,udp}; do
  url=${run%%,*} mode=
  [ "$url" = "$run" ] || mode=${run#*,}
  command -v sipp >/dev/null || [ -z "$mode" ] || fail "sipp is not installed (deps/debian.txt, group test)"
  timeout -k 5 120 ip netns exec "$NS" env HOME="$work" NODE_PATH="$NPM" \
    node spec/browser/webphone_test.js "$url" "$spki" ${mode:+"$mode"} || rc=1
done
if [ $rc != 0 ]; then
  echo "browser: the server's log:"
  sed "s/^/  | /" "$work/server.log" | tail -n "${BROWSER_LOG_LINES:-60}"
fi
kill -0 "$server" 2>/dev/null || { wait "$server"; echo "browser: the server died (status $?)"; server=; rc=1; }
exit $rc

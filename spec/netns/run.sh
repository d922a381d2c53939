#!/usr/bin/env bash
# Usage: spec/netns/run.sh [PORT]   (default 5070; as root)
# The network tests, in a network namespace with nothing but loopback, so
# that a routing bug can never send a packet off the machine (the torture
# vectors name 192.0.2.x, example.com, IPv6 documentation addresses):
#   1. examples/stateless200.lua on udp+tcp 127.0.0.1:PORT, then
#      spec/netns/vectors_net.lua: every torture vector over UDP and TCP
#      ("vectors-net: N passed, N failed");
#   2. a fresh server, then spec/netns/sipp_options.sh: SIPp OPTIONS over UDP
#      and TCP ("sipp-options: N passed, N failed").
# The namespace is luasip-test-$$, deleted on exit; the servers are stopped
# by PID. $BUILD selects the build (default build/), $LUASIP_PRELOAD is
# preloaded into the servers only (make test-asan: the ASan runtime).
# Without root or `ip netns`, the vectors count as one failure (they are
# never sent outside a namespace) and SIPp runs in the current namespace
# (it only talks to 127.0.0.1).
set -u
cd "$(dirname "$0")/../.." || exit 1
. spec/netns/lib.sh
PORT=${1:-5070}
NS=luasip-test-$$
export LUASIP_VECTORS=${LUASIP_VECTORS:-$(realpath spec/vectors)}
work=$(mktemp -d /tmp/luasip-netns.XXXXXX)
ns_made=

# shellcheck disable=SC2317 # (run by the trap)
cleanup() {
  stop_server
  if [ -n "$ns_made" ]; then
    ip netns pids "$NS" 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns delete "$NS" 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$(id -u)" != 0 ]; then
  why="not root"
elif ! command -v ip >/dev/null; then
  why="ip (iproute2) not installed"
elif ! ip netns add "$NS" 2>"$work/err"; then
  why="ip netns add failed: $(cat "$work/err")"
else
  ns_made=1
  if ! ip netns exec "$NS" ip link set lo up 2>"$work/err"; then
    why="ip link set lo up failed: $(cat "$work/err")"
  else
    why=
  fi
fi

if [ -n "$why" ]; then
  echo "vectors-net: cannot make a network namespace ($why): the torture vectors are"
  echo "vectors-net: only sent inside one; run as root with iproute2. Counted as a failure."
  echo "vectors-net: 0 passed, 1 failed"
  echo "sipp-options: running in the current network namespace instead"
  spec/netns/sipp_options.sh "$PORT"
  exit 1
fi

# the namespace holds loopback only
if ip netns exec "$NS" ip -o link show | grep -v ': lo:' | grep -q .; then
  echo "vectors-net: namespace $NS has more than loopback"
  echo "vectors-net: 0 passed, 1 failed"
  exit 1
fi

rc=0
# 1. the vectors
if ! start_server "$PORT" "$work/server.log" ip netns exec "$NS"; then
  echo "vectors-net: 0 passed, 1 failed"
  rc=1
else
  timeout -k 5 120 ip netns exec "$NS" "${LUA:-lua5.4}" spec/netns/vectors_net.lua "$PORT" \
    >"$work/vectors.out" 2>&1
  vrc=$?
  grep -v '^vectors-net: [0-9]* passed' "$work/vectors.out"
  line=$(grep -E '^vectors-net: [0-9]+ passed, [0-9]+ failed$' "$work/vectors.out" | tail -n 1)
  if [ -z "$line" ]; then
    echo "vectors-net: the driver exited ($vrc) without a result line"
    line="vectors-net: 0 passed, 1 failed"
  fi
  if ! server_alive; then
    echo "vectors-net: the server died during the run; its output:"
    sed 's/^/  | /' "$work/server.log"
    line=$(awk '{print $1, $2, $3, $4 + 1, $5}' <<<"$line")
  elif grep -q 'runtime error\|Sanitizer' "$work/server.log"; then
    echo "vectors-net: sanitizer findings in the server's output:"
    sed 's/^/  | /' "$work/server.log"
    line=$(awk '{print $1, $2, $3, $4 + 1, $5}' <<<"$line")
  fi
  echo "$line"
  [ "$vrc" = 0 ] && grep -q ' 0 failed$' <<<"$line" || rc=1
  stop_server
fi

# 2. SIPp, with a fresh server in the same namespace
ip netns exec "$NS" spec/netns/sipp_options.sh "$PORT" || rc=1
exit $rc

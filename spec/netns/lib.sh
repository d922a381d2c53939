# shellcheck shell=bash
# Sourced by spec/netns/run.sh and spec/netns/sipp_options.sh, from the
# repository root.
#
# start_server PORT LOG [PREFIX...]: starts examples/stateless200.lua on udp
# and tcp 127.0.0.1:PORT (under PREFIX, e.g. `ip netns exec NAME`, which
# execs it: the PID stays the server's), with the module built in $BUILD
# (default build/) and $LUASIP_PRELOAD, when set, preloaded into the server
# only (the ASan runtime). Waits for its two "listening on" lines and sets
# SERVER_PID; returns 1 (after showing its output) when it did not come up
# within 10 s. server_alive: whether it still runs. stop_server: SIGTERM,
# then SIGKILL, by PID.

SERVER_PID=

start_server() {
  local port=$1 log=$2 _
  shift 2
  "$@" env ${LUASIP_PRELOAD:+LD_PRELOAD="$LUASIP_PRELOAD"} \
    LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH="${BUILD:-build}/lib/?.so;;" \
    "${LUA:-lua5.4}" examples/stateless200.lua \
    --listen "udp:127.0.0.1:$port" --listen "tcp:127.0.0.1:$port" >"$log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do
    if [ "$(grep -c '^listening on ' "$log")" -ge 2 ]; then
      return 0
    fi
    server_alive || break
    sleep 0.1
  done
  echo "the server did not start; its output:"
  sed 's/^/  | /' "$log"
  stop_server
  return 1
}

server_alive() {
  [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null
}

stop_server() {
  local _
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null
    for _ in $(seq 20); do
      server_alive || break
      sleep 0.05
    done
    kill -9 "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
    SERVER_PID=
  fi
}

# shellcheck shell=bash
# Sourced, from the repository root, by the suites that run servers in a
# network namespace (spec/netns/*.sh, spec/sipp/*.sh; spec/sipp/lib.sh
# sources it too).
#
# start_server PORT LOG [PREFIX...]: starts examples/stateless200.lua on udp
# and tcp 127.0.0.1:PORT (under PREFIX, e.g. `ip netns exec NAME`, which
# execs it: the PID stays the server's), with the module built in $BUILD
# (default build/) and $LUASIP_PRELOAD, when set, preloaded into the server
# only (the ASan runtime). Waits for its two "listening on" lines and sets
# SERVER_PID; returns 1 (after showing its output) when it did not come up
# within 10 s. server_alive: whether it still runs. stop_server: stop_pid
# (below) on SERVER_PID.

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
  stop_pid "$SERVER_PID"
  SERVER_PID=
}

# --- a suite in a loopback-only network namespace ---------------------------
# The frame every netns/SIPp suite shares (spec/netns/*.sh, spec/sipp/*.sh):
#
#   . spec/netns/lib.sh
#   suite_init sipp-foo foo          # SUITE, NS=luasip-foo-$$, $work, traps
#   ns_setup "a proxy sends where messages say"   # or one failure and exit
#   need_cmds sipp                   # or one failure and exit
#   luasip_start "$work/proxy.log" 'serving ' examples/proxy.lua --listen ...
#   PROXY_PID=$STARTED
#   result NAME $? [detail]
#   suite_end                        # "SUITE: N passed, N failed", status
#
# Every process started through luasip_start (or added to PIDS) is stopped
# by PID on exit; a suite with more to stop defines on_cleanup, run first.
# Then whatever is left in the namespace is killed and the namespace
# deleted, and $work removed (kept, and named, with KEEP=1).

# suite_init SUITE TAG: the counters, $BUILD (build) and $LUA (lua5.4)
# defaults, NS=luasip-TAG-$$, work=/tmp/luasip-TAG.XXXXXX, the traps.
suite_init() {
  SUITE=$1
  NS=luasip-$2-$$
  BUILD=${BUILD:-build}
  LUA=${LUA:-lua5.4}
  passed=0 failed=0
  PIDS=()
  ns_made=
  NSX=()
  work=$(mktemp -d "/tmp/luasip-$2.XXXXXX")
  trap suite_cleanup EXIT
  trap 'exit 130' INT TERM
}

# suite_fail MESSAGE: the suite cannot run: the message, one failure, exit 1
suite_fail() {
  echo "$SUITE: $1"
  echo "$SUITE: 0 passed, 1 failed"
  exit 1
}

# suite_end: the tally line; the status is 0 when nothing failed
suite_end() {
  echo "$SUITE: $passed passed, $failed failed"
  [ "$failed" = 0 ]
}

# result NAME OK(0/1) [DETAIL]: one check, counted and printed ("ok   NAME
# DETAIL" / "FAIL NAME DETAIL")
result() {
  if [ "$2" = 0 ]; then
    passed=$((passed + 1)); echo "ok   $1${3:+ $3}"
  else
    failed=$((failed + 1)); echo "FAIL $1${3:+ $3}"
  fi
}

# ns_setup WHY: makes $NS with loopback up and nothing else, sets NSX (the
# `ip netns exec $NS` prefix) and ns_made; without root, `ip netns` or with
# more than loopback in it: one failure and exit (the suite never runs
# outside a namespace; WHY says why it needs one).
ns_setup() {
  if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null || ! ip netns add "$NS" 2>/dev/null; then
    suite_fail "needs root and ip netns ($1: never outside a namespace)"
  fi
  ns_made=1
  NSX=(ip netns exec "$NS")
  "${NSX[@]}" ip link set lo up || suite_fail "ip link set lo up failed in $NS"
  if "${NSX[@]}" ip -o link show | grep -v ': lo:' | grep -q .; then
    suite_fail "namespace $NS has more than loopback"
  fi
}

# need_cmds CMD...: one failure and exit when one is not installed
need_cmds() {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null || suite_fail "$c not installed (deps/debian.txt, group test)"
  done
}

# need_build: one failure and exit when $BUILD has no luasip module
need_build() {
  [ -f "$BUILD/lib/luasip/core.so" ] || suite_fail "$BUILD/lib/luasip/core.so missing: run make first"
}

# stop_pid PID [TRIES]: SIGTERM, up to TRIES x 50 ms (20) for it to exit,
# then SIGKILL; reaps it. An empty PID is nothing to do.
stop_pid() {
  local _
  [ -n "$1" ] || return 0
  kill "$1" 2>/dev/null
  for _ in $(seq "${2:-20}"); do
    kill -0 "$1" 2>/dev/null || break
    sleep 0.05
  done
  kill -9 "$1" 2>/dev/null
  wait "$1" 2>/dev/null
}

# forget_pid PID: drops PID from PIDS (it was waited for: never signal a
# PID that may have been reused)
forget_pid() {
  local p keep=()
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

# luasip_start LOG PATTERN ARGS...: `luasip run ARGS...` in the namespace
# (bounded by $LUASIP_TIMEOUT seconds, 300), $LUASIP_PRELOAD preloaded, its
# output in LOG; waits up to 10 s for a line matching PATTERN (grep) in LOG.
# Sets STARTED to its PID (also added to PIDS). Returns 1 after showing the
# log when the pattern did not come.
luasip_start() {
  local log=$1 pattern=$2 _
  shift 2
  "${NSX[@]}" env ${LUASIP_PRELOAD:+LD_PRELOAD="$LUASIP_PRELOAD"} LUASIP_BUILD="$BUILD" \
    timeout -k 5 "${LUASIP_TIMEOUT:-300}" "$LUA" bin/luasip run "$@" >"$log" 2>&1 &
  STARTED=$!
  PIDS+=("$STARTED")
  for _ in $(seq 100); do
    grep -qs -- "$pattern" "$log" && return 0
    kill -0 "$STARTED" 2>/dev/null || break
    sleep 0.1
  done
  echo "$SUITE: did not start: luasip run $*"
  sed 's/^/  | /' "$log"
  return 1
}

# shellcheck disable=SC2317 # (run by the trap)
suite_cleanup() {
  local p
  if declare -F on_cleanup >/dev/null; then on_cleanup; fi
  for p in "${PIDS[@]}"; do stop_pid "$p"; done
  if [ -n "$ns_made" ]; then
    ip netns pids "$NS" 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns delete "$NS" 2>/dev/null
  fi
  if [ -n "${KEEP:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
}

# wait_bound PORT...: waits (at most 10 s each) until a socket in the
# suite's namespace is bound to each PORT, UDP or TCP. A peer started in
# the background (a SIPp UAS) binds its port some time after it is
# started, and a loaded machine stretches that past any fixed sleep: a CI
# run saw a B2BUA's INVITE to a TCP SIPp refused 0.3 s after its start.
# Says so when one never is; the case then fails on its own counts.
wait_bound() {
  local port tries
  for port in "$@"; do
    for ((tries = 0; tries < 200; tries++)); do
      "${NSX[@]}" ss -Hantu "sport = :$port" 2>/dev/null | grep -q . && break
      sleep 0.05
    done
    [ "$tries" -lt 200 ] || echo "  (nothing bound port $port within 10 s)"
  done
}

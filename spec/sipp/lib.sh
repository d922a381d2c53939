# Shared by the SIPp suites (sourced): counters, the server's lifetime, and
# the preconditions. Set SUITE (the summary label) before sourcing.
passed=0 failed=0
SERVER_PID=

check() { # check NAME GOT WANT
  if [ "$2" = "$3" ]; then
    passed=$((passed + 1)); echo "ok   $1 = $2"
  else
    failed=$((failed + 1)); echo "FAIL $1 = $2, want $3"
  fi
}

stop_server() {
  local _
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null
    for _ in $(seq 20); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.05
    done
    kill -9 "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
    SERVER_PID=
  fi
}

# need_sipp_and_build: one failure and exit when sipp or the build is missing
need_sipp_and_build() {
  if ! command -v sipp >/dev/null; then
    echo "$SUITE: sipp not installed (apt-get install sip-tester)"
    echo "$SUITE: 0 passed, 1 failed"
    exit 1
  fi
  if [ ! -f "$BUILD/lib/luasip/core.so" ]; then
    echo "$SUITE: $BUILD/lib/luasip/core.so missing: run make first"
    echo "$SUITE: 0 passed, 1 failed"
    exit 1
  fi
}

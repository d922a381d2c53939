# shellcheck shell=bash
# Shared by the SIPp suites (sourced, from the repository root): the
# namespace, process and tally frame of spec/netns/lib.sh, plus what only
# SIPp suites use. Set SUITE (the summary label) before sourcing, or call
# suite_init.
. spec/netns/lib.sh
passed=0 failed=0

check() { # check NAME GOT WANT
  if [ "$2" = "$3" ]; then
    passed=$((passed + 1)); echo "ok   $1 = $2"
  else
    failed=$((failed + 1)); echo "FAIL $1 = $2, want $3"
  fi
}

# need_sipp_and_build: one failure and exit when sipp or the build is missing
need_sipp_and_build() {
  command -v sipp >/dev/null || suite_fail "sipp not installed (apt-get install sip-tester)"
  need_build
}

# ns_sipp TAG SECONDS ARGS...: SIPp in the namespace (NSX, empty: here),
# in $work/TAG/ (created), bounded by SECONDS, its output in out.txt;
# returns SIPp's status (0: every call passed).
ns_sipp() {
  local tag=$1 secs=$2
  shift 2
  mkdir -p "$work/$tag"
  (cd "$work/$tag" && "${NSX[@]}" timeout -k 5 "$secs" sipp "$@" -nostdin >out.txt 2>&1)
}

# sipp_register PROXY_PORT USER CONTACT_PORT LOCAL_PORT: registers
# USER@127.0.0.1 with Contact sip:USER@127.0.0.1:CONTACT_PORT (udp, q 1.0)
# at the registrar/proxy on udp 127.0.0.1:PROXY_PORT (proxy_reg.xml, one
# REGISTER, SIPp bound to LOCAL_PORT); says so when it failed.
sipp_register() {
  ns_sipp "reg-$2" 15 "127.0.0.1:$1" -sf "$PWD/spec/sipp/proxy_reg.xml" -i 127.0.0.1 -p "$4" -s "$2" \
    -key contact_host 127.0.0.1 -key contact_port "$3" -key tp udp -key q 1.0 -m 1 -timeout 10s ||
    echo "  (register $2 failed)"
}

# ns_sipp_bg TAG SECONDS ARGS...: ns_sipp in the background; its status
# lands in $work/TAG.rc, read by rc_of TAG ("none" while it runs).
ns_sipp_bg() {
  local tag=$1
  (ns_sipp "$@"; echo $? >"$work/$tag.rc") &
}
rc_of() { cat "$work/$1.rc" 2>/dev/null || echo none; }

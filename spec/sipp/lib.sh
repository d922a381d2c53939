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

# sipp_stat TAG SECONDS ARGS...: ns_sipp with SIPp's statistics in
# $work/TAG/stat.csv (read by counts) and its errors in $work/TAG/err.log.
sipp_stat() {
  local tag=$1 secs=$2
  shift 2
  ns_sipp "$tag" "$secs" "$@" -trace_stat -stf stat.csv -trace_err -error_file err.log
}

# counts STAT.CSV: "SuccessfulCall FailedCall" of a SIPp -trace_stat file
# ("none none" when it has no figures)
counts() {
  awk -F';' '
    NR == 1 { for (i = 1; i <= NF; i++) { if ($i == "SuccessfulCall(C)") s = i; if ($i == "FailedCall(C)") f = i } next }
    { ok = $s; bad = $f }
    END { if (s && f && NR > 1) print ok + 0, bad + 0; else print "none", "none" }' "$1" 2>/dev/null
}

# luasip_cmd SECONDS: LUASIP=(the `luasip run` command in the namespace,
# bounded by SECONDS, $LUASIP_PRELOAD preloaded), for "${LUASIP[@]}" SCRIPT ARGS...
luasip_cmd() {
  # shellcheck disable=SC2034 # read by the suites
  LUASIP=("${NSX[@]}" env ${LUASIP_PRELOAD:+LD_PRELOAD="$LUASIP_PRELOAD"} LUASIP_BUILD="$BUILD"
    timeout -k 5 "$1" "$LUA" bin/luasip run)
}

# sipp_register PROXY_PORT USER CONTACT_PORT LOCAL_PORT [TP [Q]]: registers
# USER@127.0.0.1 with Contact sip:USER@127.0.0.1:CONTACT_PORT (transport
# TP, udp; q Q, 1.0) at the registrar/proxy on udp 127.0.0.1:PROXY_PORT
# (proxy_reg.xml, one REGISTER, SIPp bound to LOCAL_PORT, in
# $work/reg-USER-CONTACT_PORT/); says so when it failed.
sipp_register() {
  ns_sipp "reg-$2-$3" 15 "127.0.0.1:$1" -sf "$PWD/spec/sipp/proxy_reg.xml" -i 127.0.0.1 -p "$4" -s "$2" \
    -key contact_host 127.0.0.1 -key contact_port "$3" -key tp "${5:-udp}" -key q "${6:-1.0}" -m 1 -timeout 10s ||
    echo "  (register $2 at $3 failed)"
}

# ns_sipp_bg TAG SECONDS ARGS...: ns_sipp in the background; its status
# lands in $work/TAG.rc, read by rc_of TAG ("none" while it runs).
ns_sipp_bg() {
  local tag=$1
  (ns_sipp "$@"; echo $? >"$work/$tag.rc") &
}
rc_of() { cat "$work/$1.rc" 2>/dev/null || echo none; }

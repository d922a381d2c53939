#!/usr/bin/env bash
# Usage: spec/sipp/balancer_sipp.sh          (as root; from anywhere)
# examples/balancer.lua in front of three SIPp UASes (127.0.0.1:5071-5073,
# -aa: the probes get 200), SIPp calls through it, all in a loopback-only
# network namespace (a proxy sends where messages say):
#   rr          round robin, 90 calls: each UAS 30 +- 10%
#   weighted    weights 3:1:1, 100 calls: 60/20/20 +- 10%
#   hash        hash_callid: 20 calls with one Call-ID all reach one UAS;
#               30 calls with their own Call-IDs reach more than one
#   failover    200 calls at 20/s, UAS 2 killed after 3 s: 0 failed calls;
#               the probes (1 s, down after 2) mark it down within 5 s,
#               seen by `luasip ctl dispatcher list` and in /metrics; it is
#               up again within 6 s of its restart, seen in both
#   metrics     /metrics accepted by `promtool check metrics`; its
#               luasip_requests_total equals `luasip ctl stats` requests; a
#               Prometheus (127.0.0.1:9091, scrape interval 1 s) scrapes it
#               and its HTTP API returns the destination states
#   ctl         dispatcher set ... down / up through the command
# Prints "sipp-balancer: N passed, N failed". $BUILD (build), $LUA (lua5.4).
set -u
cd "$(dirname "$0")/../.." || exit 1
. spec/sipp/lib.sh
suite_init sipp-balancer balancer-sipp
DIR=$(pwd)/spec/sipp
BAL_PID= PROM_PID=
declare -A UAS_PID=()

# shellcheck disable=SC2317 # (run by suite_cleanup)
on_cleanup() {
  local p
  stop_pid "$BAL_PID" 40
  stop_pid "$PROM_PID" 40
  for p in "${UAS_PID[@]}"; do stop_pid "$p" 40; done
}

check() { # check NAME OK(0/1) [detail]: the detail only on failure
  if [ "$2" = 0 ]; then result "$1" 0; else result "$@"; fi
}

ns_setup "a proxy sends where messages say"
need_cmds sipp promtool prometheus
CTL=$work/ctl.sock

start_uas() { # start_uas N: a SIPp UAS on 127.0.0.1:507N
  mkdir -p "$work/uas$1"
  (cd "$work/uas$1" && exec "${NSX[@]}" timeout -k 5 170 sipp -sf "$DIR/balancer_uas.xml" -aa \
    -i 127.0.0.1 -p "507$1" -nostdin -timeout 160s -deadcall_wait 1 >out 2>&1) &
  UAS_PID[$1]=$!
}

kill_uas() { # kill_uas N: SIGKILL, as a crash
  local p=${UAS_PID[$1]}
  local c
  for c in $(cat "/proc/$p/task/$p/children" 2>/dev/null); do kill -9 "$c" 2>/dev/null; done # the sipp we started (timeout's child)
  kill -9 "$p" 2>/dev/null
  wait "$p" 2>/dev/null
  UAS_PID[$1]=
}

start_balancer() { # start_balancer ARGS...: on udp:127.0.0.1:5060 with ctl and metrics
  stop_pid "$BAL_PID" 40
  runs=$((runs + 1))
  BLOG=$work/balancer.$runs.log
  rm -f "$CTL"
  luasip_start "$BLOG" "serving .* (pid" examples/balancer.lua \
    --listen udp:127.0.0.1:5060 --ctl "$CTL" --metrics 127.0.0.1:9090 "$@" || return
  forget_pid "$STARTED"
  BAL_PID=$STARTED
  for _ in $(seq 100); do
    [ -S "$CTL" ] && return 0
    sleep 0.1
  done
  echo "the balancer did not start:"; cat "$BLOG"
}
runs=0
DESTS=(--dest sip:127.0.0.1:5071 --dest sip:127.0.0.1:5072 --dest sip:127.0.0.1:5073)

ctl() { "$LUA" bin/luasip ctl --socket "$CTL" "$@"; }

relays() { # relays N: relays the balancer sent to UAS N
  ctl dispatcher list | sed -n "s|^  [0-9]* sip:127.0.0.1:507$1 .* relays=\([0-9]*\) .*|\1|p"
}

state_of() { # state_of N: the state of UAS N in `luasip ctl dispatcher list`
  ctl dispatcher list | sed -n "s|^  [0-9]* sip:127.0.0.1:507$1[#a-z=0-9]* \([a-z]*\) .*|\1|p"
}

metrics() { "${NSX[@]}" "$LUA" "$DIR/http_get.lua" http://127.0.0.1:9090/metrics; }

metric_state() { # metric_state N STATE: the gauge's value in /metrics
  metrics | sed -n "s|^luasip_dispatcher_destination_state{set=\"balancer\",destination=\"sip:127.0.0.1:507$1\",state=\"$2\"} \([0-9]*\)$|\1|p"
}

within() { # within GOT WANT PERCENT
  [ -n "$1" ] || return 1
  local d=$(($1 - $2)); [ $d -lt 0 ] && d=$((-d))
  [ $((d * 100)) -le $(($2 * $3)) ]
}

uac() { # uac TAG ARGS...: SIPp calls through the balancer, bounded; its exit status
  local tag=$1; shift
  mkdir -p "$work/$tag"
  (cd "$work/$tag" && exec "${NSX[@]}" timeout -k 5 60 sipp 127.0.0.1:5060 -sf "$DIR/balancer_uac.xml" \
    -s svc -i 127.0.0.1 -p 5080 -nostdin -timeout 50s "$@" >out 2>&1)
}

for n in 1 2 3; do start_uas "$n"; done
wait_bound 5071 5072 5073

# rr --------------------------------------------------------------------------
start_balancer "${DESTS[@]}" --algorithm round_robin --probe-interval 1 --timeout 1
uac rr -m 90 -r 30 -l 30; rc=$?
r1=$(relays 1) r2=$(relays 2) r3=$(relays 3)
ok=1; [ "$rc" = 0 ] && within "$r1" 30 10 && within "$r2" 30 10 && within "$r3" 30 10 && ok=0
check "rr: 90 calls, relays $r1/$r2/$r3 (30 each +- 10%), sipp rc $rc" $ok

# metrics and ctl stats agree; promtool accepts /metrics -------------------------
metrics >"$work/metrics.txt"
promtool check metrics <"$work/metrics.txt" >"$work/promtool.out" 2>&1; rc=$?
check "metrics: promtool check metrics" "$rc" "$(head -3 "$work/promtool.out")"
m=$(sed -n 's/^luasip_requests_total \([0-9]*\)$/\1/p' "$work/metrics.txt")
s=$(ctl stats | sed -n 's/^requests \([0-9]*\)$/\1/p')
ok=1; [ -n "$m" ] && [ "$m" = "$s" ] && [ "$m" -ge 270 ] && ok=0
check "metrics: luasip_requests_total $m = ctl stats requests $s (>= 270: INVITE, ACK, BYE x 90)" $ok

# ctl: an admin takes a destination out and puts it back ------------------------
ctl dispatcher set balancer sip:127.0.0.1:5072 down >/dev/null
a=$(state_of 2) ma=$(metric_state 2 disabled)
ctl dispatcher set balancer 2 up >/dev/null
b=$(state_of 2)
ok=1; [ "$a" = disabled ] && [ "$ma" = 1 ] && [ "$b" = up ] && ok=0
check "ctl: dispatcher set down -> $a (metrics $ma), up -> $b" $ok

# weighted ----------------------------------------------------------------------
start_balancer --dest 'sip:127.0.0.1:5071#weight=3' --dest sip:127.0.0.1:5072 --dest sip:127.0.0.1:5073 \
  --algorithm weighted --probe-interval 1 --timeout 1
uac weighted -m 100 -r 30 -l 30; rc=$?
r1=$(relays 1) r2=$(relays 2) r3=$(relays 3)
ok=1; [ "$rc" = 0 ] && within "$r1" 60 10 && within "$r2" 20 10 && within "$r3" 20 10 && ok=0
check "weighted 3:1:1: 100 calls, relays $r1/$r2/$r3 (60/20/20 +- 10%), sipp rc $rc" $ok

# hash ----------------------------------------------------------------------------
start_balancer "${DESTS[@]}" --algorithm hash_callid --probe-interval 1 --timeout 1
uac hash1 -m 20 -r 10 -l 1 -deadcall_wait 1 -cid_str "sticky-call@127.0.0.1"; rc=$?
r1=$(relays 1) r2=$(relays 2) r3=$(relays 3)
ok=1; [ "$rc" = 0 ] && [ "$(printf '%s\n' "$r1" "$r2" "$r3" | sort -n | tr '\n' ' ')" = "0 0 20 " ] && ok=0
check "hash_callid: 20 calls with one Call-ID -> relays $r1/$r2/$r3 (all on one), sipp rc $rc" $ok
uac hash2 -m 30 -r 30 -l 30; rc=$?
used=0
for n in 1 2 3; do r=$(relays $n); [ "${r:-0}" -gt 0 ] && used=$((used + 1)); done
ok=1; [ "$rc" = 0 ] && [ "$used" -ge 2 ] && ok=0
check "hash_callid: 30 calls with their own Call-IDs reach $used UASes (>= 2), sipp rc $rc" $ok

# failover ----------------------------------------------------------------------
start_balancer "${DESTS[@]}" --algorithm round_robin --probe-interval 1 --down-after 2 --up-after 2 \
  --probe-timeout 0.5 --timeout 1
( uac failover -m 200 -r 20 -l 40; echo $? >"$work/failover.rc" ) &
FO=$!
sleep 3
kill_uas 2
t0=$(date +%s%N)
down=
for _ in $(seq 50); do
  [ "$(state_of 2)" = down ] && { down=$((($(date +%s%N) - t0) / 1000000)); break; }
  sleep 0.1
done
md=$(metric_state 2 down)
ok=1; [ -n "$down" ] && [ "$down" -le 5000 ] && [ "$md" = 1 ] && ok=0
check "failover: UAS 2 killed, down after ${down:-never} ms (<= 5000), in /metrics: $md" $ok
start_uas 2
t0=$(date +%s%N)
up=
for _ in $(seq 60); do
  [ "$(state_of 2)" = up ] && { up=$((($(date +%s%N) - t0) / 1000000)); break; }
  sleep 0.1
done
mu=$(metric_state 2 up)
ok=1; [ -n "$up" ] && [ "$up" -le 6000 ] && [ "$mu" = 1 ] && ok=0
check "failover: UAS 2 restarted, up after ${up:-never} ms (<= 6000), in /metrics: $mu" $ok
wait "$FO"
rc=$(cat "$work/failover.rc")
fails=$(grep -o 'Failed call[^|]*|[^|]*|[ ]*[0-9]*' "$work/failover/out" | tail -1 | grep -o '[0-9]*$')
fo=$(ctl stats | sed -n 's/^dispatcher_failovers \([0-9]*\)$/\1/p')
ok=1; [ "$rc" = 0 ] && ok=0
check "failover: 200 calls, sipp rc $rc (0: no failed call; failed: ${fails:-?}), $fo failovers" $ok
grep -q "sip:127.0.0.1:5072 .* -> down" "$BLOG"
check "failover: the transition to down is logged" $?

# Prometheus scrapes the balancer ------------------------------------------------
cat >"$work/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: luasip
    static_configs:
      - targets: ["127.0.0.1:9090"]
YML
(cd "$work" && exec "${NSX[@]}" timeout -k 5 60 prometheus --config.file="$work/prometheus.yml" \
  --storage.tsdb.path="$work/prom" --web.listen-address=127.0.0.1:9091 >prometheus.log 2>&1) &
PROM_PID=$!
got=
for _ in $(seq 100); do
  got=$("${NSX[@]}" "$LUA" "$DIR/http_get.lua" \
    'http://127.0.0.1:9091/api/v1/query?query=luasip_dispatcher_destination_state%7Bstate%3D%22up%22%7D' 2>/dev/null)
  case "$got" in *'"destination":"sip:127.0.0.1:5073"'*'"1"]'*) break ;; esac
  sleep 0.2
done
ok=1
case "$got" in *'"status":"success"'*'"destination":"sip:127.0.0.1:5073"'*) ok=0 ;; esac
check "prometheus: scraped, luasip_dispatcher_destination_state read back through its API" $ok "${got:0:300}"

grep -E " (error|warn) " "$work"/balancer.*.log | grep -v "dispatcher balancer: .* -> down" >"$work/warnings"
[ -s "$work/warnings" ] && head -5 "$work/warnings"
check "the balancer logged no error (besides the down transition)" "$([ -s "$work/warnings" ] && echo 1 || echo 0)"

suite_end

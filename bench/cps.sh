#!/usr/bin/env bash
# Highest call rate (calls per second with < 0.5 % failed calls) through Wedge and
# through Kamailio (the reference: bench/kamailio/edge.cfg), measured in the same
# run on the same box, per path: UDP->UDP and TCP->UDP (SIPp caller), TLS->UDP and
# WSS->UDP (bench/loadgen.py caller). The callee is SIPp (bench/sipp/uas.xml) on UDP.
#
# Each step is one fresh set of processes (UAS, system under test, caller) run for
# --seconds at a fixed rate: rates go up by --step from --start until a step fails
# (>= 0.5 % failed calls) or the caller cannot keep the rate, then one bisection
# step between the last pass and the failure. The two systems climb side by side
# (each rate is measured for both before the next), so that load from anything
# else on the box hits both alike. Every step prints a progress line:
# failed calls, the rate the caller achieved, the CPU each process used while the
# calls were being made (% of one core, summed over a system's processes) and
# the UDP datagrams the kernel dropped for full receive buffers (box-wide
# counter). The table at the end gives both rates and their ratio (Wedge /
# Kamailio). Nothing is written to the tree: work files live in a
# temporary directory, removed at exit (--keep keeps them, with every log).
#
# Usage: bench/cps.sh [--seconds 10] [--paths "udp tcp tls wss"]
#                     [--systems "wedge kamailio"] [--workers 2] [--start 250]
#                     [--step 250] [--max 6000] [--budget-minutes 40] [--keep]
#
# Addresses: UAS 127.0.0.1:5080; Kamailio 127.0.0.2 (udp/tcp 5060, tls 5061,
# wss 8443); Wedge 127.0.0.3 (same ports). Both get --workers processes: Wedge as
# `wedge run` with `[wedge] workers` (uvloop), Kamailio with that many UDP
# workers and TCP/TLS/WS workers.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
WEDGE=${WEDGE:-$ROOT/.venv/bin/wedge}
KAMAILIO=${KAMAILIO:-/usr/sbin/kamailio}
SIPP=${SIPP:-sipp}

SECONDS_PER_STEP=10  # whole seconds, at least 3
PATHS="udp tcp tls wss"
SYSTEMS="wedge kamailio"
START=250
STEP=250
MAX=6000
BUDGET_MINUTES=40
WORKERS=2
KEEP=0
THRESHOLD=0.5   # % failed calls a passing step stays below
UAS_IP=127.0.0.1
UAS_PORT=5080
KAM_IP=127.0.0.2
WEDGE_IP=127.0.0.3

while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECONDS_PER_STEP=$2; shift 2 ;;
    --paths) PATHS=$2; shift 2 ;;
    --systems) SYSTEMS=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --start) START=$2; shift 2 ;;
    --step) STEP=$2; shift 2 ;;
    --max) MAX=$2; shift 2 ;;
    --budget-minutes) BUDGET_MINUTES=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "cps.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
done

for path in $PATHS; do
  case "$path" in udp | tcp | tls | wss) ;; *) echo "cps.sh: unknown path $path" >&2; exit 2 ;; esac
done
for system in $SYSTEMS; do
  case "$system" in wedge | kamailio) ;; *) echo "cps.sh: unknown system $system" >&2; exit 2 ;; esac
done
if ! [ "$WORKERS" -ge 1 ] 2> /dev/null || [ "$WORKERS" -gt 64 ]; then
  echo "cps.sh: --workers takes a whole number from 1 to 64" >&2
  exit 2
fi
if ! [ "$SECONDS_PER_STEP" -ge 3 ] 2> /dev/null; then
  echo "cps.sh: --seconds takes a whole number of seconds, at least 3" >&2
  exit 2
fi
for tool in "$PY" "$WEDGE" "$KAMAILIO" "$SIPP"; do
  command -v "$tool" > /dev/null || { echo "cps.sh: $tool not found" >&2; exit 2; }
done

ulimit -c 0      # a crashing process under test leaves no core file behind
WORK=$(mktemp -d /tmp/wedge-cps.XXXXXX)
PIDS=()          # every process this script started and has not yet reaped
CLK_TCK=$(getconf CLK_TCK)
BEGIN=$(date +%s)
DEADLINE=$((BEGIN + BUDGET_MINUTES * 60))

stop_pid() {     # stop_pid PID: SIGTERM, up to 2 s of grace, then SIGKILL; its children too
  local pid=$1 kids i p alive
  [ -n "$pid" ] || return 0
  kids=$(ps -o pid= --ppid "$pid" 2> /dev/null | tr '\n' ' ' || true)
  kill -TERM "$pid" 2> /dev/null || return 0
  for i in $(seq 20); do
    alive=""
    for p in $pid $kids; do kill -0 "$p" 2> /dev/null && alive="$alive $p"; done
    [ -z "$alive" ] && break
    sleep 0.1
  done
  for p in $pid $kids; do kill -KILL "$p" 2> /dev/null || true; done
  wait "$pid" 2> /dev/null || true
}

forget_pid() {   # forget_pid PID: it has been reaped
  local pid kept=()
  for pid in "${PIDS[@]}"; do [ "$pid" = "$1" ] || kept+=("$pid"); done
  PIDS=("${kept[@]}")
}

stop_all() {
  local pid
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  PIDS=()
}

cleanup() {
  stop_all
  if [ "$KEEP" = 1 ]; then echo "work files kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '[%4ds] %s\n' $(($(date +%s) - BEGIN)) "$*"; }

# -- set-up: test PKI and Wedge's policy ------------------------------------------

"$PY" "$ROOT/bench/pki.py" "$WORK/pki" > /dev/null
CA=$WORK/pki/ca.pem
CERT=$WORK/pki/server.pem
KEY=$WORK/pki/server.key

cat > "$WORK/wedge.toml" << EOF
# Written by bench/cps.sh: Wedge as an edge in front of one UDP UAS.
[wedge]
log_level = "warning"
workers = $WORKERS

# Signalling against signalling: Kamailio (edge.cfg) leaves SDP alone, so Wedge's
# media relay is off here; bench/relay.py measures the relay.
[media]
relay = "none"

[[listener]]
name = "udp"
transport = "udp"
bind = "$WEDGE_IP:5060"

[[listener]]
name = "tcp"
transport = "tcp"
bind = "$WEDGE_IP:5060"

[[listener]]
name = "tls"
transport = "tls"
bind = "$WEDGE_IP:5061"
cert = "$CERT"
key = "$KEY"

[[listener]]
name = "wss"
transport = "wss"
bind = "$WEDGE_IP:8443"
cert = "$CERT"
key = "$KEY"

[[trunk]]
name = "uas"
uri = "sip:$UAS_IP:$UAS_PORT"
transport = "udp"
listener = "udp"

[[route]]
name = "everything-to-uas"
to_trunk = "uas"
EOF

# -- processes --------------------------------------------------------------------

cpu_ticks() {    # cpu_ticks PID...: utime+stime of the processes and their children
  local pid all=""
  for pid in "$@"; do
    all="$all $pid $(ps -o pid= --ppid "$pid" 2> /dev/null | tr '\n' ' ')"
  done
  # shellcheck disable=SC2086
  for pid in $all; do cat "/proc/$pid/stat" 2> /dev/null || true; done |
    awk '{ sub(/^.*\) /, ""); t += $12 + $13 } END { print t + 0 }'
}

wait_tcp() {     # wait_tcp HOST PORT: until something listens there (5 s at most)
  local i
  for i in $(seq 50); do
    if port_busy "$1" "$2"; then return 0; fi
    sleep 0.1
  done
  return 1
}

start_uas() {
  "$SIPP" -sf "$ROOT/bench/sipp/uas.xml" -i "$UAS_IP" -p "$UAS_PORT" -nostdin -nd \
    -buff_size 4194304 -max_recv_loops 5000 > "$WORK/$TAG-uas.log" 2>&1 &
  UAS_PID=$!
  PIDS+=("$UAS_PID")
}

port_busy() {    # port_busy HOST PORT: something accepts TCP connections there
  (exec 3<> "/dev/tcp/$1/$2") 2> /dev/null
}

start_sut() {    # start_sut SYSTEM
  local ip=$WEDGE_IP i
  [ "$1" = kamailio ] && ip=$KAM_IP
  for i in $(seq 30); do port_busy "$ip" 5060 || break; sleep 0.1; done
  if port_busy "$ip" 5060; then
    echo "cps.sh: $ip:5060 is taken by another process" >&2
    exit 1
  fi
  if [ "$1" = wedge ]; then
    "$WEDGE" run --config "$WORK/wedge.toml" > "$WORK/$TAG-sut.log" 2>&1 &
    SUT_PID=$!
    SUT_IP=$WEDGE_IP
  else
    mkdir -p "$WORK/kamailio"
    # -w: its working directory (where a crash would leave a core, were core
    # dumps not off for this script).
    "$KAMAILIO" -f "$ROOT/bench/kamailio/edge.cfg" -DD -E -Y "$WORK/kamailio" -w "$WORK/kamailio" \
      -P "$WORK/kamailio/kamailio.pid" -m 512 -M 32 -A "EDGE_IP=$KAM_IP" -A "WORKERS=$WORKERS" \
      -A "UAS=\"sip:$UAS_IP:$UAS_PORT\"" -A "TLS_CERT=\"$CERT\"" -A "TLS_KEY=\"$KEY\"" \
      > "$WORK/$TAG-sut.log" 2>&1 &
    SUT_PID=$!
    SUT_IP=$KAM_IP
  fi
  PIDS+=("$SUT_PID")
  if ! wait_tcp "$SUT_IP" 5060 || ! sleep 0.5 || ! kill -0 "$SUT_PID" 2> /dev/null; then
    echo "cps.sh: $1 did not start; its log:" >&2
    tail -20 "$WORK/$TAG-sut.log" >&2
    exit 1
  fi
}

# start_client PATH RATE: the caller, in the background (CLIENT_PID): SIPp for UDP
# and TCP, bench/loadgen.py for TLS and WSS.
start_client() {
  local path=$1 rate=$2 calls=$(($2 * SECONDS_PER_STEP))
  if [ "$path" = udp ] || [ "$path" = tcp ]; then
    local transport=u1
    [ "$path" = tcp ] && transport=t1
    "$SIPP" -sf "$ROOT/bench/sipp/uac.xml" -i 127.0.0.1 -t "$transport" -nostdin -nd \
      -r "$rate" -m "$calls" -l $((rate * 10)) -recv_timeout 5000 -buff_size 4194304 \
      -max_recv_loops 5000 -timeout $((SECONDS_PER_STEP * 3 + 20)) \
      -trace_stat -stf "$WORK/$TAG-uac.csv" -fd 1 \
      -trace_err -error_file "$WORK/$TAG-uac-errors.log" \
      "$SUT_IP:5060" > "$WORK/$TAG-uac.log" 2>&1 &
  else
    local url=tls://$SUT_IP:5061
    [ "$path" = wss ] && url=wss://$SUT_IP:8443
    timeout $((SECONDS_PER_STEP * 3 + 30)) "$PY" "$ROOT/bench/loadgen.py" "$url" \
      --ca "$CA" --rate "$rate" --calls "$calls" --uvloop --json \
      > "$WORK/$TAG-loadgen.out" 2>&1 &
  fi
  CLIENT_PID=$!
  PIDS+=("$CLIENT_PID")
}

# finish_client PATH RATE: wait for the caller to end; sets ATTEMPTED FAILED
# ACHIEVED (calls started per second) and NOTE (failure reasons).
finish_client() {
  local path=$1 rate=$2 calls=$(($2 * SECONDS_PER_STEP)) out
  wait "$CLIENT_PID" 2> /dev/null || true
  forget_pid "$CLIENT_PID"
  NOTE=""
  if [ "$path" = udp ] || [ "$path" = tcp ]; then
    local ok created
    # SIPp's statistics, one row a second: the rate achieved is the calls created
    # over the time it took to create them (interpolated between two rows).
    read -r created ok ACHIEVED < <("$PY" - "$WORK/$TAG-uac.csv" << 'PYEOF'
import csv, sys
try:
    rows = list(csv.DictReader(open(sys.argv[1]), delimiter=";"))
except OSError:
    rows = []
def t(row):
    return float(row["CurrentTime"].split("\t")[-1]) - float(row["StartTime"].split("\t")[-1])
created = int(rows[-1]["OutgoingCall(C)"]) if rows else 0
ok = int(rows[-1]["SuccessfulCall(C)"]) if rows else 0
achieved = 0.0
prev = None
for row in rows:
    n = int(row["OutgoingCall(C)"])
    if n >= created and created > 1:
        if prev is None:
            when = t(row)
        else:
            n0, t0 = int(prev["OutgoingCall(C)"]), t(prev)
            when = t0 + (created - n0) / max(1, n - n0) * (t(row) - t0)
        # calls are due at 0, 1/r, ..., (n-1)/r: n-1 intervals
        achieved = (created - 1) / when if when > 0 else 0.0
        break
    prev = row
print(created, ok, round(achieved, 1))
PYEOF
)
    # Calls never started count as failed: SIPp fell behind or was cut off.
    ATTEMPTED=$calls
    FAILED=$((calls - ok))
    if [ "$created" -lt "$calls" ]; then NOTE="sipp started $created/$calls"; fi
  else
    out=$(tail -1 "$WORK/$TAG-loadgen.out")
    if [ -z "$out" ] || [ "${out:0:1}" != "{" ]; then
      echo "cps.sh: loadgen failed:" >&2
      tail -5 "$WORK/$TAG-loadgen.out" >&2
      FAILED=$calls ATTEMPTED=$calls ACHIEVED=0 NOTE="loadgen error"
      return
    fi
    read -r ATTEMPTED FAILED ACHIEVED NOTE < <(echo "$out" | "$PY" -c '
import json, sys
r = json.load(sys.stdin)
reasons = "; ".join(f"{k}={v}" for k, v in sorted(r["reasons"].items()))
print(r["attempted"], r["failed"], round(r["achieved_cps"], 1), reasons)')
  fi
}

udp_drops() {    # the kernel's count of UDP datagrams dropped for a full receive buffer
  awk '/^Udp:/ { n++; if (n == 2) print $6 }' /proc/net/snmp
}

percent() {      # percent TICKS0 TICKS1 T0 T1: CPU used in between, % of one core
  awk -v a="$1" -v b="$2" -v t0="$3" -v t1="$4" -v hz="$CLK_TCK" \
    'BEGIN { printf "%.0f", (t1 > t0) ? 100 * (b - a) / hz / (t1 - t0) : 0 }'
}

# measure SYSTEM PATH RATE: one step, repeated once if the system under test died
# in it or the caller could not set up its connections (Kamailio 5.6 with
# OpenSSL 3 now and then fails a TLS handshake): that says nothing about a call
# rate. A second time counts.
measure() {
  measure_once "$@"
  if [ "$SUT_DIED" = 1 ] || [ "$NOTE" = "loadgen error" ]; then
    log "$1: that step broke down (logs: $WORK/$TAG-*, kept with --keep); repeating it once"
    measure_once "$@"
  fi
}

# measure_once SYSTEM PATH RATE: one step; sets PASS (1/0), LIMIT (the CPU figures)
# and SUT_DIED (1 if the system under test was gone at the end).
# CPU is sampled from 1 s after the caller starts (its start-up and connections
# done) to 0.5 s before its --seconds of calls end: the load itself, not the tail.
measure_once() {
  local system=$1 path=$2 rate=$3 t0 t1 s0 s1 u0 u1 c0 c1 sut_cpu uas_cpu client_cpu pct d0
  TAG=$system-$path-$rate
  start_uas
  start_sut "$system"
  d0=$(udp_drops)
  start_client "$path" "$rate"
  sleep 1
  t0=$(date +%s.%N)
  s0=$(cpu_ticks "$SUT_PID") u0=$(cpu_ticks "$UAS_PID") c0=$(cpu_ticks "$CLIENT_PID")
  sleep "$((SECONDS_PER_STEP - 2)).5"
  t1=$(date +%s.%N)
  s1=$(cpu_ticks "$SUT_PID") u1=$(cpu_ticks "$UAS_PID") c1=$(cpu_ticks "$CLIENT_PID")
  finish_client "$path" "$rate"
  SUT_DIED=0
  kill -0 "$SUT_PID" 2> /dev/null || SUT_DIED=1
  stop_all
  sut_cpu=$(percent "$s0" "$s1" "$t0" "$t1")
  uas_cpu=$(percent "$u0" "$u1" "$t0" "$t1")
  client_cpu=$(percent "$c0" "$c1" "$t0" "$t1")
  pct=$(awk -v f="$FAILED" -v a="$ATTEMPTED" 'BEGIN { printf "%.2f", a ? 100 * f / a : 100 }')
  PASS=$(awk -v p="$pct" -v t="$THRESHOLD" -v ach="$ACHIEVED" -v r="$rate" \
    'BEGIN { print (p < t && ach >= 0.97 * r) ? 1 : 0 }')
  LIMIT="cpu: sut ${sut_cpu}% uas ${uas_cpu}% caller ${client_cpu}%, udp drops $(($(udp_drops) - d0))"
  if [ "$PASS" = 0 ] && awk -v p="$pct" -v t="$THRESHOLD" 'BEGIN { exit !(p < t) }'; then
    LIMIT="$LIMIT; caller behind (achieved $ACHIEVED/s)"
  fi
  log "$(printf '%-8s %s->udp %5d cps: %6d calls, %5d failed (%5s%%), achieved %7s/s | %s -> %s%s' \
    "$system" "$path" "$rate" "$ATTEMPTED" "$FAILED" "$pct" "$ACHIEVED" "$LIMIT" \
    "$([ "$PASS" = 1 ] && echo pass || echo FAIL)" "${NOTE:+ ($NOTE)}$([ "$SUT_DIED" = 1 ] && echo " ($system DIED)")")"
}

# climb PATH: the systems take the same steps in turn (Wedge at R, Kamailio at R,
# Wedge at R+STEP...), so that both see the box in the same state; a system
# leaves the climb at its first failing step, then gets one bisection step.
# Sets RESULT[system.path] (highest passing rate) and REASON[system.path].
declare -A RESULT REASON LOW HIGH
climb() {
  local path=$1 rate=$START system active=$SYSTEMS still mid
  for system in $SYSTEMS; do
    LOW[$system]=0 HIGH[$system]=0 REASON[$system.$path]="passed every step up to --max"
  done
  while [ -n "$active" ] && [ "$rate" -le "$MAX" ]; do
    still=""
    for system in $active; do
      if [ "$(date +%s)" -ge "$DEADLINE" ]; then
        REASON[$system.$path]="time budget spent"
        continue
      fi
      measure "$system" "$path" "$rate"
      if [ "$PASS" = 1 ]; then
        LOW[$system]=$rate
        still="$still $system"
      else
        HIGH[$system]=$rate
        REASON[$system.$path]="fails at $rate: $LIMIT"
      fi
    done
    active=$still
    rate=$((rate + STEP))
  done
  for system in $SYSTEMS; do
    mid=$(((LOW[$system] + HIGH[$system]) / 2))
    if [ "${HIGH[$system]}" -gt 0 ] && [ "$mid" -gt "${LOW[$system]}" ] &&
      [ "$(date +%s)" -lt "$DEADLINE" ]; then
      measure "$system" "$path" "$mid"
      if [ "$PASS" = 1 ]; then
        LOW[$system]=$mid
      else
        REASON[$system.$path]="fails at $mid: $LIMIT"
      fi
    fi
    RESULT[$system.$path]=${LOW[$system]}
    log "$system $path->udp: ${LOW[$system]} cps (${REASON[$system.$path]})"
  done
}

log "cps.sh: ${SECONDS_PER_STEP}s steps from $START by $STEP; paths: $PATHS; systems: $SYSTEMS; $(nproc) CPUs"
log "$("$WEDGE" --version); $("$KAMAILIO" -v | head -1); $( ("$SIPP" -v 2> /dev/null || true) | grep -o 'SIPp v[^ -]*' | head -1)"
for path in $PATHS; do
  climb "$path"
done

echo
echo "Highest call rate with < ${THRESHOLD} % failed calls (${SECONDS_PER_STEP} s steps, $(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%MZ)):"
printf '%-10s %10s %13s %8s\n' path "Wedge cps" "Kamailio cps" ratio
for path in $PATHS; do
  w=${RESULT[wedge.$path]:-}
  k=${RESULT[kamailio.$path]:-}
  ratio=$(awk -v w="$w" -v k="$k" 'BEGIN { if (w == "" || k == "" || k == 0) print "-"; else printf "%.2f", w / k }')
  printf '%-10s %10s %13s %8s\n' "$path->udp" "${w:--}" "${k:--}" "$ratio"
done
echo
echo "What stopped each climb (CPU in % of one core over the failing step):"
for path in $PATHS; do
  for system in $SYSTEMS; do
    echo "  $system $path->udp: ${REASON[$system.$path]}"
  done
done

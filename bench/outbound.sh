#!/usr/bin/env bash
# Outbound (relay) throughput: Postern vs Postfix, each relaying N messages to Postfix's
# smtp-sink on loopback.
#
#   bench/outbound.sh                      full run (both servers), 1 KiB and 100 KiB, 10 sessions
#   BENCH_QUICK=1 bench/outbound.sh        smoke test with tiny message counts
#   BENCH_REPEAT=3 bench/outbound.sh       median of 3 runs per case (figures worth quoting)
#   BENCH_ONLY=postfix bench/outbound.sh   only Postfix (BENCH_ONLY=postern: only Postern)
#
# smtp-source -> server (127.0.0.1) -> its queue -> smtp-sink (127.0.0.41:10027); msg/s is
# N / (time from the start of injection until smtp-sink has counted all N messages).
# Prints a markdown table and writes it to bench/out/outbound-latest.md. Everything lives in
# bench/out/outbound/. See bench/README.md.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
OUT=$BENCH_DIR/out
ODIR=$OUT/outbound
LOGS=$ODIR/logs

# ---------------------------------------------------------------- settings --
ONLY=${BENCH_ONLY:-both}                      # both | postfix | postern
QUICK=${BENCH_QUICK:-0}
CONCURRENCIES=${BENCH_CONCURRENCY:-10}        # smtp-source sessions, e.g. "1 10 50"
SIZE_SMALL=${BENCH_SIZE_SMALL:-1024}          # smtp-source -l: body bytes, headers not included
SIZE_LARGE=${BENCH_SIZE_LARGE:-102400}
SIZES=${BENCH_SIZES:-"$SIZE_SMALL $SIZE_LARGE"}  # which of the two to run (e.g. only "$SIZE_LARGE")
if [[ $QUICK == 1 ]]; then
  d_small=200 d_large=100 d_warm=50
else
  d_small=10000 d_large=5000 d_warm=3000
fi
MSGS_SMALL=${BENCH_MESSAGES_SMALL:-$d_small}  # messages per 1 KiB run
MSGS_LARGE=${BENCH_MESSAGES_LARGE:-$d_large}  # messages per 100 KiB run
WARMUP=${BENCH_WARMUP:-$d_warm}               # messages relayed before measuring (JIT, process pools)
REPEAT=${BENCH_REPEAT:-1}                     # runs per case and server; the table shows the median
QUIET_PCT=${BENCH_QUIET_PCT:-10}              # before each run, wait until other processes use <= this % of all CPUs
QUIET_WAIT=${BENCH_QUIET_WAIT:-30}            # ... but at most this many seconds (0: don't wait)
NOISE_PCT=${BENCH_NOISE_PCT:-15}              # flag a run if other processes used more than this % of all CPUs during it
RUN_TIMEOUT=${BENCH_RUN_TIMEOUT:-300}         # seconds, per run (injection + relay)
STALL_TIMEOUT=${BENCH_STALL_TIMEOUT:-30}      # give up a run when the sink has counted nothing new for this long
DRAIN_TIMEOUT=${BENCH_DRAIN_TIMEOUT:-60}      # seconds to wait for the server to go idle after a run
REUSE=${BENCH_REUSE:-0}                       # 1: smtp-source -d (many messages per injecting connection)
SKIP_BUILD=${BENCH_SKIP_BUILD:-0}
PF_PORT=${BENCH_OUT_POSTFIX_PORT:-10035}      # where smtp-source injects (127.0.0.1)
PN_PORT=${BENCH_OUT_POSTERN_PORT:-10036}
SINK_ADDR=${BENCH_SINK_ADDR:-127.0.0.41}      # smtp-sink, the final destination of both servers
SINK_PORT=${BENCH_SINK_PORT:-10027}
DNS_ADDR=${BENCH_DNS_ADDR:-127.0.53.41}       # NSD serving sink.test for Postern's MX lookups
DNS_PORT=${BENCH_DNS_PORT:-10053}
SINK_DOMAIN=sink.test
SENDER=${BENCH_FROM:-bench@bench.test}
RCPT=${BENCH_RCPT:-user@$SINK_DOMAIN}
PF_EXTRA=${BENCH_POSTFIX_CONF:-}              # extra main.cf lines for Postfix (Postern: use POSTERN_* variables)

PF_DIR=$ODIR/postfix
PF_CONF=$PF_DIR/conf
PN_DATA=$ODIR/postern-data
PN_CONF=$ODIR/postern.json
PN_LOG=$ODIR/postern.log
NSD_DIR=$ODIR/nsd
SINK_OUT=$ODIR/sink.out
PN_DLL=$ROOT/src/Postern/bin/Release/net10.0/postern.dll
# BENCH_ARTIFACTS=DIR: build with --artifacts-path DIR instead of into src/*/bin and obj
ARTIFACTS=${BENCH_ARTIFACTS:-}
[[ -n $ARTIFACTS ]] && { ARTIFACTS=$(mkdir -p "$ARTIFACTS" && cd "$ARTIFACTS" && pwd); PN_DLL=$ARTIFACTS/bin/Postern/release/postern.dll; }
if [[ -n ${BENCH_POSTERN_CMD:-} ]]; then read -r -a POSTERN <<<"$BENCH_POSTERN_CMD"; SKIP_BUILD=1; else POSTERN=(dotnet "$PN_DLL"); fi
SMTP_SOURCE=/usr/sbin/smtp-source
SMTP_SINK=/usr/sbin/smtp-sink
PROCSTAT=(python3 "$BENCH_DIR/procstat.py")
WATCH=(python3 "$BENCH_DIR/relaywatch.py")

case $ONLY in both|postfix|postern) ;; *) echo "BENCH_ONLY must be both, postfix or postern" >&2; exit 2 ;; esac

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

. "$BENCH_DIR/lib.sh"

mkdir -p "$OUT"
[[ $EUID -eq 0 ]] || die "run as root (Postfix needs it)"
take_lock "$OUT/.lock"   # shared with bench/run.sh: never two benchmarks at once
rm -rf "$LOGS"; mkdir -p "$ODIR" "$LOGS"
CONCURRENCIES=$(tr ' ' '\n' <<<"$CONCURRENCIES" | awk 'NF && !seen[$0]++' | xargs)
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
T_START=$(date +%s)

# ------------------------------------------------------------ cleanup trap --
PN_PID="" NSD_PID="" SINK_PID="" PN_DELIVERY="?"
PF_STARTED=0
stop_pid() { # pid name: SIGTERM, then SIGKILL after 5 s
  [[ -n $1 ]] && kill -0 "$1" 2>/dev/null || return 0
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 25); do kill -0 "$1" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$1" 2>/dev/null; then log "$2 ignored SIGTERM, killing"; kill -KILL "$1" 2>/dev/null || true; fi
  wait "$1" 2>/dev/null || true
}
cleanup() {
  set +e
  # a run in progress: stop `timeout` (which passes SIGTERM on to smtp-source), then its subshell
  [[ -n $SRC_PID ]] && { pkill -TERM -P "$SRC_PID" 2>/dev/null; kill -TERM "$SRC_PID" 2>/dev/null; wait "$SRC_PID" 2>/dev/null; }
  [[ -n $WATCH_PID ]] && { kill -TERM "$WATCH_PID" 2>/dev/null; wait "$WATCH_PID" 2>/dev/null; }
  if [[ -n $PN_PID ]]; then stop_postern; fi
  if [[ $PF_STARTED == 1 ]]; then stop_postfix; fi
  stop_pid "$SINK_PID" smtp-sink; SINK_PID=""
  stop_pid "$NSD_PID" nsd; NSD_PID=""
}
SRC_PID="" WATCH_PID=""
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------- sink and DNS zone --
ensure_nsd() {
  [[ -x /usr/sbin/nsd ]] && return
  log "installing nsd (Postern's MX lookups go to a private NSD)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y nsd >"$LOGS/apt-nsd.log" 2>&1 ||
    { DEBIAN_FRONTEND=noninteractive apt-get update >>"$LOGS/apt-nsd.log" 2>&1 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y nsd >>"$LOGS/apt-nsd.log" 2>&1; } ||
    die "apt-get install nsd failed, see $LOGS/apt-nsd.log"
  # the package's own service is not needed (and would take port 53)
  systemctl disable --now nsd >/dev/null 2>&1 || true
}

start_sink() {
  port_free "$SINK_PORT" "$SINK_ADDR" || die "$SINK_ADDR:$SINK_PORT is already in use"
  : >"$SINK_OUT"
  # -c: running counters on stdout; -m: up to 1000 simultaneous connections; backlog 1000
  log "starting smtp-sink on $SINK_ADDR:$SINK_PORT"
  "$SMTP_SINK" -c -u postfix -m 1000 "$SINK_ADDR:$SINK_PORT" 1000 >"$SINK_OUT" 2>"$LOGS/smtp-sink.err" 9>&- &
  SINK_PID=$!
  wait_port "$SINK_PORT" "$SINK_PID" 10 "$SINK_ADDR" || die "smtp-sink does not listen on $SINK_ADDR:$SINK_PORT: $(cat "$LOGS/smtp-sink.err")"
}

start_nsd() {
  rm -rf "$NSD_DIR"; mkdir -p "$NSD_DIR"
  cat >"$NSD_DIR/nsd.conf" <<EOF
server:
  ip-address: $DNS_ADDR@$DNS_PORT
  port: $DNS_PORT
  username: ""
  chroot: ""
  zonesdir: "$NSD_DIR"
  pidfile: "$NSD_DIR/nsd.pid"
  database: ""
  zonelistfile: "$NSD_DIR/zone.list"
  xfrdfile: "$NSD_DIR/xfrd.state"
  xfrdir: "$NSD_DIR"
  server-count: 1
  hide-version: yes
  verbosity: 0
  # NSD's response rate limiting (200 answers/s per client by default) drops or truncates
  # answers beyond that; Postern asks for every message, and a dropped answer costs it a
  # 5 s resolver timeout. Off: this server answers one client, on loopback.
  rrl-ratelimit: 0
  rrl-whitelist-ratelimit: 0
remote-control:
  control-enable: no
zone:
  name: "$SINK_DOMAIN"
  zonefile: "$SINK_DOMAIN.zone"
EOF
  cat >"$NSD_DIR/$SINK_DOMAIN.zone" <<EOF
\$ORIGIN $SINK_DOMAIN.
\$TTL 3600
@  IN SOA ns.$SINK_DOMAIN. admin.$SINK_DOMAIN. 1 3600 600 86400 60
@  IN NS  ns.$SINK_DOMAIN.
ns IN A   $DNS_ADDR
@  IN MX  10 mx.$SINK_DOMAIN.
mx IN A   $SINK_ADDR
EOF
  log "starting NSD on $DNS_ADDR:$DNS_PORT (zone $SINK_DOMAIN: MX 10 mx.$SINK_DOMAIN, A $SINK_ADDR)"
  /usr/sbin/nsd -d -c "$NSD_DIR/nsd.conf" >"$LOGS/nsd.log" 2>&1 9>&- &
  NSD_PID=$!
  "${WATCH[@]}" dns-ready "$DNS_ADDR" "$DNS_PORT" "$SINK_DOMAIN" 10 ||
    die "NSD does not answer on $DNS_ADDR:$DNS_PORT: $(tail -n 5 "$LOGS/nsd.log")"
}

sink_counts() { "${WATCH[@]}" counts "$SINK_OUT"; }

# ----------------------------------------------------------------- Postfix --
start_postfix() {
  prepare_postfix "$PF_PORT"
  cat >"$PF_CONF/main.cf" <<EOF
# Private Postfix instance for bench/outbound.sh: takes mail on 127.0.0.1:$PF_PORT, queues it
# durably, relays everything for other domains to smtp-sink at [$SINK_ADDR]:$SINK_PORT.
$(pf_base_main_cf "$PF_DIR" postfix-bench-out)
# the destination: every non-local domain goes to smtp-sink (default_transport = smtp)
relayhost = [$SINK_ADDR]:$SINK_PORT
# local mail (bounces to bench.test) is thrown away
local_recipient_maps =
alias_maps =
alias_database =
local_transport = discard:bench
# nothing slow or irrelevant (no DNS: the relayhost is an IP literal anyway)
$(pf_quiet_main_cf)
# Everything else is Postfix's default, in particular: cleanup fsyncs the queue file before
# smtpd says 250; default_destination_concurrency_limit = 20 (initial_destination_concurrency
# = 5, slow start); smtp_connection_cache_on_demand = yes (a connection is kept and reused only
# while the destination has a backlog in the active queue), smtp_connection_cache_time_limit
# = 2s; in_flow_delay = 1s (smtpd slows down when arrivals outpace deliveries);
# default_process_limit = 100.
$PF_EXTRA
EOF
  write_pf_master_cf "$PF_PORT"
  launch_postfix "$PF_PORT"
}

pf_queue_count() { find "$PF_DIR/queue/incoming" "$PF_DIR/queue/active" "$PF_DIR/queue/deferred" "$PF_DIR/queue/hold" -type f 2>/dev/null | wc -l; }

# ----------------------------------------------------------------- Postern --
write_postern_config() {
  cat >"$PN_CONF" <<EOF
{
  "Hostname": "postern.bench.test",
  "DataDirectory": "$PN_DATA",
  "User": "$(id -un)",
  "Domains": ["bench.test"],
  "Listeners": [ { "Name": "mx", "Endpoint": "127.0.0.1:$PN_PORT", "Role": "mx" } ],
  "Tls": { "Generate": true },
  "Relay": { "TrustedNetworks": ["127.0.0.0/8"] },
  "Dns": { "Servers": ["$DNS_ADDR:$DNS_PORT"] },
  "Limits": { "MaxConnections": 3000, "MaxConnectionsPerIp": 3000 },
  "Delivery": { "RemotePort": $SINK_PORT }
}
EOF
}

start_postern() {
  port_free "$PN_PORT" || { log "127.0.0.1:$PN_PORT is already in use"; return 1; }
  rm -rf "$PN_DATA"; mkdir -p "$PN_DATA"
  write_postern_config
  : >"$PN_LOG"
  log "starting Postern on 127.0.0.1:$PN_PORT"
  "${POSTERN[@]}" serve --config "$PN_CONF" >>"$PN_LOG" 2>&1 9>&- &
  PN_PID=$!
  if ! wait_port "$PN_PORT" "$PN_PID" 90; then
    tail -n 20 "$PN_LOG" >&2
    log "Postern did not start listening on $PN_PORT (log: $PN_LOG)"
    stop_postern; return 1
  fi
  SERVER_PID=$PN_PID
}

pn_queue_count() { find "$PN_DATA/queue/messages" -type f 2>/dev/null | wc -l; }

# ------------------------------------------------------------- measurement --
declare -A PORT SPID RATES CPUS ACCEPTS PERCONN RATE CPU ACCEPT CONNS MSGS QLEFT
FAILED=0 RUNS=0 NOISY=0
NOISE_RUNS=() NOTES=()
CLK_TCK=$(getconf CLK_TCK)

# CPU seconds of smtp-sink and NSD (neither server's, nor the client's, but not "other" either)
extra_cpu() { local t=0 p; for p in $SINK_PID $NSD_PID; do t=$(calc %.2f "$t + $("${PROCSTAT[@]}" cpu "$p")"); done; echo "$t"; }

msgs_for() { if [[ $1 == "$SIZE_SMALL" ]]; then echo "$MSGS_SMALL"; else echo "$MSGS_LARGE"; fi; }

# One relay run: smtp-source injects N messages in the background; the foreground waits until
# smtp-sink has counted N more messages. Sets R_SECS (injection start -> last message at the sink),
# R_ACCEPT (injection start -> smtp-source done); returns 1 (R_ERR says why) on failure.
relay_run() { # name sessions messages size logfile
  local name=$1 conc=$2 n=$3 size=$4 logf=$5 done_f=$LOGS/.source-done s0 q0 m0 t0 res tend s1 q1 m1 rc
  local flags=(-4 -s "$conc" -m "$n" -l "$size" -f "$SENDER" -t "$RCPT" -M client.bench.test)
  [[ $REUSE == 1 ]] && flags+=(-d)
  rm -f "$done_f"
  R_O0=$("${WATCH[@]}" open-conns "$SINK_ADDR" "$SINK_PORT")
  read -r s0 q0 m0 < <(sink_counts)
  t0=$(date +%s.%N)
  ( rc=0; timeout "$RUN_TIMEOUT" "$SMTP_SOURCE" "${flags[@]}" "127.0.0.1:${PORT[$name]}" >"$logf" 2>&1 || rc=$?
    echo "$rc $(date +%s.%N)" >"$done_f"; exit "$rc" ) 9>&- &
  SRC_PID=$!
  # in the background + `wait`, so that a signal runs the cleanup trap at once (bash holds
  # traps back while a foreground command runs)
  "${WATCH[@]}" wait "$SINK_OUT" $((m0 + n)) "$RUN_TIMEOUT" "$STALL_TIMEOUT" "$done_f" >"$LOGS/.watch" 9>&- &
  WATCH_PID=$!
  rc=0; wait "$WATCH_PID" || rc=$?
  WATCH_PID=""
  res=$(cat "$LOGS/.watch")
  wait "$SRC_PID" 2>/dev/null || true
  SRC_PID=""
  read -r tend s1 q1 m1 <<<"$res"
  if [[ $rc != 0 || ! -f $done_f || $(cut -d' ' -f1 "$done_f") != 0 ]]; then
    R_ERR="sink counted $((m1 - m0)) of $n; smtp-source: $( [[ -f $done_f ]] && echo "exit $(cut -d' ' -f1 "$done_f")" || echo "no status"), $(tail -n 2 "$logf" | tr '\n' ' ')"
    return 1
  fi
  R_SECS=$(calc %.3f "$tend - $t0")
  R_ACCEPT=$(calc %.3f "$(cut -d' ' -f2 "$done_f") - $t0")
  R_M0=$m0 R_S0=$s0
}

# After the server went idle: messages the sink counted in the run (R_MESG) and connections the
# server opened to it (R_CONNS) = sessions ended + (established now - established at the start),
# which also counts connections kept open for reuse (Postfix's cache: 2 s; Postern: 5 s).
settle_counts() {
  local s q m o
  read -r s q m < <("${WATCH[@]}" settle "$SINK_OUT" 1 5)
  o=$("${WATCH[@]}" open-conns "$SINK_ADDR" "$SINK_PORT")
  R_CONNS=$((s - R_S0 + o - R_O0)) R_MESG=$((m - R_M0))
}

warm_up() { # name
  local name=$1
  log "$name: warm-up, $WARMUP messages relayed"
  if relay_run "$name" 10 "$WARMUP" "$SIZE_SMALL" "$LOGS/$name-warmup.log"; then
    log "$name: warm-up took ${R_SECS}s ($(calc %.0f "$WARMUP / $R_SECS") msg/s)"
  else
    log "$name: warm-up failed: $R_ERR"
  fi
  "${PROCSTAT[@]}" wait-idle "${SPID[$name]}" "$DRAIN_TIMEOUT" >/dev/null
}

run_one() { # name size sessions messages rep
  local name=$1 size=$2 conc=$3 n=$4 rep=$5 pid=${SPID[$1]} key=$2:$3 c0 cm c1 k0 k1 rate cpu acc m0b m0t m1b m1t
  local log=$LOGS/$name-$size-$conc-$rep.log bg other x0 x1 span left
  bg=$("${PROCSTAT[@]}" quiet "$QUIET_PCT" "$QUIET_WAIT")
  RUNS=$((RUNS + 1))
  if (( bg > QUIET_PCT )); then log "warning: other processes use ${bg}% of the CPUs at the start of this run"; fi
  c0=$("${PROCSTAT[@]}" cpu "$pid")
  x0=$(extra_cpu)
  read -r m0b m0t < <("${PROCSTAT[@]}" machine)
  times >"$LOGS/.times0"
  if relay_run "$name" "$conc" "$n" "$size" "$log"; then
    times >"$LOGS/.times1"; k0=$(child_cpu "$LOGS/.times0"); k1=$(child_cpu "$LOGS/.times1")
    read -r m1b m1t < <("${PROCSTAT[@]}" machine)
    cm=$("${PROCSTAT[@]}" cpu "$pid")
    x1=$(extra_cpu)
    # include work the server still does after the last message reached the sink
    "${PROCSTAT[@]}" wait-idle "$pid" "$DRAIN_TIMEOUT" >/dev/null
    c1=$("${PROCSTAT[@]}" cpu "$pid")
    settle_counts
    rate=$(calc %.0f "$n / $R_SECS")
    acc=$(calc %.0f "$n / $R_ACCEPT")
    cpu=$(calc %.2f "($c1 - $c0) * 1000 / $n")
    RATES[$name:$key]+=" $rate"; CPUS[$name:$key]+=" $cpu"; ACCEPTS[$name:$key]+=" $acc"
    if (( R_CONNS > 0 )); then PERCONN[$name:$key]+=" $(calc %.2f "$R_MESG / $R_CONNS")"; fi
    if (( R_MESG != n )); then NOTES+=("$name $(sizename "$size") $conc sessions run $rep: the sink counted $R_MESG messages for $n sent (duplicates or stray mail)"); fi
    span=$(( m1t - m0t + 1 ))
    # CPU used during the run by none of: this server, smtp-source and the watcher (this
    # shell's children), smtp-sink, NSD -- in % of all CPUs
    other=$(calc %.0f "100 * (($m1b - $m0b) / $CLK_TCK - ($cm - $c0) - ($k1 - $k0) - ($x1 - $x0)) / ($span / $CLK_TCK)")
    if (( other < 0 )); then other=0; fi
    if (( bg > QUIET_PCT || other > NOISE_PCT )); then
      NOISY=$((NOISY + 1)); NOISE_RUNS+=("$name $(sizename "$size") $conc sessions: ${bg}% before, ${other}% during")
    fi
    log "$name: size=$size sessions=$conc messages=$n: relayed in ${R_SECS}s = $rate msg/s (accepted in ${R_ACCEPT}s = $acc msg/s)," \
        "CPU $cpu s/1k msg, $R_CONNS connections to the sink;" \
        "machine busy $(calc %.0f "100 * ($m1b - $m0b) / $span")%: server $(calc %.0f "100 * ($cm - $c0) / ($span / $CLK_TCK)")%," \
        "client $(calc %.0f "100 * ($k1 - $k0) / ($span / $CLK_TCK)")%, sink+dns $(calc %.0f "100 * ($x1 - $x0) / ($span / $CLK_TCK)")%, other ${other}%"
  else
    RATES[$name:$key]+=" ERR"; FAILED=1
    log "$name: size=$size sessions=$conc FAILED: $R_ERR"
    "${PROCSTAT[@]}" wait-idle "$pid" "$DRAIN_TIMEOUT" >/dev/null || true
  fi
  if [[ $name == postern ]]; then left=$(pn_queue_count); else left=$(pf_queue_count); fi
  if (( left > 0 )); then
    log "warning: $left messages still in $name's queue after the run"
    QLEFT[$name]=$(( ${QLEFT[$name]:-0} + left ))
  fi
}

run_all() { # server names...
  local size conc n rep name order
  for size in $SIZES; do
    for conc in $CONCURRENCIES; do
      n=$(msgs_for "$size"); MSGS[$size:$conc]=$n
      for rep in $(seq "$REPEAT"); do
        # alternate who goes first, so that neither server always runs on a "warmer" disk
        order=("$@"); (( rep % 2 == 0 )) && order=($(printf '%s\n' "$@" | tac))
        for name in "${order[@]}"; do run_one "$name" "$size" "$conc" "$n" "$rep"; done
      done
      for name in "$@"; do
        if [[ ${RATES[$name:$size:$conc]:-} == *ERR* ]]; then RATE[$name:$size:$conc]=ERR; CPU[$name:$size:$conc]=ERR
        else
          RATE[$name:$size:$conc]=$(median <<<"${RATES[$name:$size:$conc]:-}" | xargs printf %.0f)
          CPU[$name:$size:$conc]=$(median <<<"${CPUS[$name:$size:$conc]:-}" | xargs printf %.2f)
          ACCEPT[$name:$size:$conc]=$(median <<<"${ACCEPTS[$name:$size:$conc]:-}" | xargs printf %.0f)
          if [[ -n ${PERCONN[$name:$size:$conc]:-} ]]; then CONNS[$name:$size:$conc]=$(median <<<"${PERCONN[$name:$size:$conc]}" | xargs printf %.1f); fi
        fi
      done
    done
  done
}

# The relay path must work before anything is measured: one probe message, then the sink must
# count it.
probe_relay() { # name
  local name=$1 s0 q0 m0 reply res
  read -r s0 q0 m0 < <(sink_counts)
  if ! reply=$(probe "${PORT[$name]}" "$RCPT" 2>&1); then
    log "$name refused the probe to <$RCPT>: $reply"; NOTES+=("$name refused the probe message: $reply"); return 1
  fi
  if ! res=$("${WATCH[@]}" wait "$SINK_OUT" $((m0 + 1)) 30 30); then
    log "$name accepted the probe ($reply) but did not relay it to the sink within 30 s"
    NOTES+=("$name accepted the probe message but did not relay it to smtp-sink within 30 s")
    return 1
  fi
}

# --------------------------------------------------------------------- run --
ensure_postfix
[[ -x $SMTP_SINK ]] || die "$SMTP_SINK missing (package postfix)"
PF_VERSION=$(postconf -d -h mail_version 2>/dev/null || echo '?')
start_sink

SERVERS=()
if [[ $ONLY != postern ]]; then
  start_postfix
  PORT[postfix]=$PF_PORT; SPID[postfix]=$SERVER_PID
  if probe_relay postfix; then SERVERS+=(postfix); else FAILED=1; stop_postfix; fi
fi

if [[ $ONLY != postfix ]]; then
  ensure_nsd
  start_nsd
  if build_postern && start_postern; then
    PORT[postern]=$PN_PORT; SPID[postern]=$SERVER_PID
    # the delivery settings in force (defaults filled in, POSTERN_* overrides applied), for the report
    PN_DELIVERY=$("${POSTERN[@]}" config check --config "$PN_CONF" 2>/dev/null | python3 -c '
import json, sys
t = sys.stdin.read(); d = json.loads(t[t.index("{"):])["Delivery"]
skip = {"MaxQueueLifetime", "DelayWarningAfter", "RetryInitialDelay", "RetryMaxDelay", "Discard", "LocalConcurrency"}
print(", ".join(f"`Delivery.{k} = {v}`" for k, v in d.items() if k not in skip))' 2>/dev/null || echo '?')
    if probe_relay postern; then SERVERS+=(postern)
    else FAILED=1; tail -n 20 "$PN_LOG" >&2; stop_postern; fi
  else
    FAILED=1; NOTES+=("Postern could not be built or started: see bench/out/outbound/logs/postern-build.log and bench/out/outbound/postern.log.")
  fi
fi

if (( ${#SERVERS[@]} )); then
  for name in "${SERVERS[@]}"; do warm_up "$name"; done
  run_all "${SERVERS[@]}"
fi
for name in "${SERVERS[@]}"; do
  if [[ -n ${QLEFT[$name]:-} ]]; then NOTES+=("$name left messages in its queue after some runs (${QLEFT[$name]} in total); see its log"); fi
done
PN_VERSION=$(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo 'no commit')
PN_ENV=$(env | grep -o '^POSTERN_[^=]*=.*' | sort | tr '\n' ' ' || true)
cleanup
trap - EXIT

# ------------------------------------------------------------------ report --
cell() { local v=${1:-}; [[ -n $v ]] && echo "$v" || echo "—"; }
ratio() { if [[ ${1:-} =~ ^[0-9.]+$ && ${2:-} =~ ^[0-9.]+$ && $1 != 0 ]]; then echo "$(calc %.2f "$2 / $1")×"; else echo "—"; fi; }

REPORT=$OUT/outbound-latest.md
{
  echo "# Outbound relay: Postern vs Postfix — $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "- machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), $(awk '/MemTotal/ {printf "%.1f GiB RAM", $2/1048576}' /proc/meminfo), kernel $(uname -r), $(. /etc/os-release && echo "$PRETTY_NAME")"
  echo "- path: smtp-source → server on 127.0.0.1 (durable queue) → smtp-sink on $SINK_ADDR:$SINK_PORT; recipient <$RCPT>"
  echo "- Postfix $PF_VERSION: \`relayhost = [$SINK_ADDR]:$SINK_PORT\`, otherwise defaults (destination concurrency 20, connection cache on demand)${PF_EXTRA:+; extra: \`$(tr '\n' ';' <<<"$PF_EXTRA")\`}"
  echo "- Postern $PN_VERSION on .NET $(dotnet --version 2>/dev/null || echo '?'): MX lookup at NSD on $DNS_ADDR:$DNS_PORT, $PN_DELIVERY${PN_ENV:+; environment: \`${PN_ENV% }\`}"
  if [[ $REUSE == 1 ]]; then mode="many messages per connection (-d)"; else mode="one connection per message"; fi
  echo "- client: smtp-source, $mode; msg/s = messages / (start of injection → smtp-sink has counted all of them)"
  (( REPEAT > 1 )) && echo "- each figure is the median of $REPEAT runs; the two servers take turns for every run; warm-up $WARMUP messages each"
  (( REPEAT > 1 )) || echo "- one run per case; the two servers take turns case by case; warm-up $WARMUP messages each"
  echo "- CPU = user+sys seconds of the server's processes per 1,000 messages, receiving and relaying (Postfix: master and all its children), counted until the server is idle again"
  echo
  echo "| size | sessions | messages | Postfix msg/s | Postern msg/s | Postern/Postfix | Postfix CPU s/1k msg | Postern CPU s/1k msg |"
  echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  for size in $SIZES; do
    for conc in $CONCURRENCIES; do
      key=$size:$conc; pf=${RATE[postfix:$key]:-}; pn=${RATE[postern:$key]:-}
      echo "| $(sizename "$size") | $conc | $(cell "${MSGS[$key]:-}") | $(cell "$pf") | $(cell "$pn") | $(ratio "$pf" "$pn") | $(cell "${CPU[postfix:$key]:-}") | $(cell "${CPU[postern:$key]:-}") |"
    done
  done
  echo
  echo "Detail: \"accepted\" is the rate at which smtp-source got its 250s (the run ends only when the sink has everything); \"msgs/conn\" is messages per connection to the sink."
  echo
  echo "| size | sessions | Postfix accepted msg/s | Postern accepted msg/s | Postfix msgs/conn | Postern msgs/conn |"
  echo "| ---: | ---: | ---: | ---: | ---: | ---: |"
  for size in $SIZES; do
    for conc in $CONCURRENCIES; do
      key=$size:$conc
      echo "| $(sizename "$size") | $conc | $(cell "${ACCEPT[postfix:$key]:-}") | $(cell "${ACCEPT[postern:$key]:-}") | $(cell "${CONNS[postfix:$key]:-}") | $(cell "${CONNS[postern:$key]:-}") |"
    done
  done
  if (( NOISY )); then
    echo
    echo "- **warning**: in $NOISY of $RUNS runs other processes used more than $QUIET_PCT% of the CPUs just before or more than $NOISE_PCT% during the run; those figures are unreliable, rerun on a quiet machine:"
    for n in "${NOISE_RUNS[@]}"; do echo "  - $n"; done
  fi
  if (( ${#NOTES[@]} )); then
    echo
    for n in "${NOTES[@]}"; do echo "- note: $n"; done
  fi
  echo
  echo "- duration of the whole run: $(( $(date +%s) - T_START )) s"
  if [[ $QUICK == 1 ]]; then echo; echo "- BENCH_QUICK=1: smoke-test counts, figures are not meaningful"; fi
} >"$REPORT"
cp "$REPORT" "$ODIR/result-$(date -u +%Y%m%dT%H%M%SZ).md"
cat "$REPORT"
exit "$FAILED"

#!/usr/bin/env bash
# Postern vs Postfix throughput / CPU / idle-memory benchmark.
#
#   bench/run.sh                      full run (both servers), ~5 minutes on a quiet machine
#   BENCH_QUICK=1 bench/run.sh        smoke test with tiny message counts
#   BENCH_ONLY=postfix bench/run.sh   only Postfix (BENCH_ONLY=postern: only Postern)
#
# Prints a markdown table on stdout and writes it to bench/out/latest.md.
# Everything (configs, queues, logs) lives in bench/out/. See bench/README.md.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
OUT=$BENCH_DIR/out
LOGS=$OUT/logs

# ---------------------------------------------------------------- settings --
ONLY=${BENCH_ONLY:-both}                      # both | postfix | postern
QUICK=${BENCH_QUICK:-0}
CONCURRENCIES=${BENCH_CONCURRENCY:-"1 10 50"}
SIZE_SMALL=${BENCH_SIZE_SMALL:-1024}          # smtp-source -l: body bytes, headers not included
SIZE_LARGE=${BENCH_SIZE_LARGE:-102400}
if [[ $QUICK == 1 ]]; then
  d_small=200 d_small_c1=100 d_large=100 d_large_c1=50 d_warm=50 d_idle=100
else
  d_small=15000 d_small_c1=6000 d_large=8000 d_large_c1=3000 d_warm=5000 d_idle=1000
fi
MSGS_SMALL=${BENCH_MESSAGES_SMALL:-$d_small}            # 1 KiB, sessions > 1
MSGS_SMALL_C1=${BENCH_MESSAGES_SMALL_C1:-$d_small_c1}   # 1 KiB, 1 session
MSGS_LARGE=${BENCH_MESSAGES_LARGE:-$d_large}            # 100 KiB, sessions > 1
MSGS_LARGE_C1=${BENCH_MESSAGES_LARGE_C1:-$d_large_c1}   # 100 KiB, 1 session
WARMUP=${BENCH_WARMUP:-$d_warm}               # messages sent before measuring (JIT, process pools)
IDLE_CONNS=${BENCH_IDLE_CONNS:-$d_idle}
REPEAT=${BENCH_REPEAT:-1}                     # runs per case and server; the table shows the median
QUIET_PCT=${BENCH_QUIET_PCT:-10}              # before each run, wait until other processes use <= this % of all CPUs
QUIET_WAIT=${BENCH_QUIET_WAIT:-30}            # ... but at most this many seconds (0: don't wait)
NOISE_PCT=${BENCH_NOISE_PCT:-15}              # flag a run if other processes used more than this % of all CPUs during it
RUN_TIMEOUT=${BENCH_RUN_TIMEOUT:-300}         # seconds, per smtp-source run
DRAIN_TIMEOUT=${BENCH_DRAIN_TIMEOUT:-60}      # seconds to wait for the server to go idle after a run
REUSE=${BENCH_REUSE:-0}                       # 1: smtp-source -d (many messages per connection)
SKIP_BUILD=${BENCH_SKIP_BUILD:-0}
PF_PORT=${BENCH_POSTFIX_PORT:-10025}
PN_PORT=${BENCH_POSTERN_PORT:-10026}
SENDER=${BENCH_FROM:-bench@bench.test}
RCPT=${BENCH_RCPT:-user@bench.test}
RCPT_PASSWORD=bench-Password-4711

PF_DIR=$OUT/postfix
PF_CONF=$PF_DIR/conf
PN_DATA=$OUT/postern-data
PN_CONF=$OUT/postern.json
PN_DLL=$ROOT/src/Postern/bin/Release/net10.0/postern.dll
# BENCH_ARTIFACTS=DIR: build with --artifacts-path DIR instead of into src/*/bin and obj
# (keeps the benchmark's Release build apart from builds running in the source tree)
ARTIFACTS=${BENCH_ARTIFACTS:-}
[[ -n $ARTIFACTS ]] && { ARTIFACTS=$(mkdir -p "$ARTIFACTS" && cd "$ARTIFACTS" && pwd); PN_DLL=$ARTIFACTS/bin/Postern/release/postern.dll; }
# command that runs Postern; override e.g. with a published binary (implies BENCH_SKIP_BUILD=1)
if [[ -n ${BENCH_POSTERN_CMD:-} ]]; then read -r -a POSTERN <<<"$BENCH_POSTERN_CMD"; SKIP_BUILD=1; else POSTERN=(dotnet "$PN_DLL"); fi
SMTP_SOURCE=/usr/sbin/smtp-source
PROCSTAT=(python3 "$BENCH_DIR/procstat.py")

case $ONLY in both|postfix|postern) ;; *) echo "BENCH_ONLY must be both, postfix or postern" >&2; exit 2 ;; esac

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

# log, die, sizename, calc, median, child_cpu, take_lock, ensure_postfix, port_free, wait_port,
# probe, pf_master_pid, stop_postfix, prepare_postfix, write_pf_master_cf, launch_postfix,
# build_postern, stop_postern
. "$BENCH_DIR/lib.sh"

mkdir -p "$OUT" "$LOGS"
[[ $EUID -eq 0 ]] || die "run as root (Postfix needs it)"
# one run at a time: both would use the same ports and bench/out/ (bench/outbound.sh takes the same lock)
take_lock "$OUT/.lock"
CONCURRENCIES=$(tr ' ' '\n' <<<"$CONCURRENCIES" | awk 'NF && !seen[$0]++' | xargs)
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
(( $(ulimit -n) >= IDLE_CONNS + 256 )) || die "ulimit -n $(ulimit -n) too small for $IDLE_CONNS connections"

# ------------------------------------------------------------ cleanup trap --
PN_PID=""
PF_STARTED=0
cleanup() {
  set +e
  if [[ -n $PN_PID ]]; then stop_postern; fi
  if [[ $PF_STARTED == 1 ]]; then stop_postfix; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ----------------------------------------------------------------- Postfix --
start_postfix() {
  prepare_postfix "$PF_PORT"
  cat >"$PF_CONF/main.cf" <<EOF
# Private Postfix instance for bench/run.sh: loopback only, durable queue, discard delivery.
$(pf_base_main_cf "$PF_DIR" postfix-bench)
# accept any local part of bench.test, deliver everything to the discard transport
local_recipient_maps =
alias_maps =
alias_database =
local_transport = discard:bench
default_transport = discard:bench
relay_transport = discard:bench
virtual_transport = discard:bench
# nothing slow or irrelevant
$(pf_quiet_main_cf)
# queue files are fsync'd by cleanup before 250 (Postfix default, not changed here)
EOF
  write_pf_master_cf "$PF_PORT"
  launch_postfix "$PF_PORT"
}

# ----------------------------------------------------------------- Postern --
write_postern_config() {
  cat >"$PN_CONF" <<EOF
{
  "Hostname": "bench.test",
  "DataDirectory": "$PN_DATA",
  "User": "$(id -un)",
  "Domains": ["bench.test"],
  "Listeners": [ { "Name": "mx", "Endpoint": "127.0.0.1:$PN_PORT", "Role": "mx" } ],
  "Tls": { "Generate": true },
  "Relay": { "TrustedNetworks": ["127.0.0.0/8"] },
  "Limits": { "MaxConnections": 3000, "MaxConnectionsPerIp": 3000 },
  "Accounts": { "PasswdFile": "passwd" },
  "Aliases": {},
  "Delivery": { "Discard": true }
}
EOF
}

start_postern() { # fresh: 1 = wipe the data directory first
  port_free "$PN_PORT" || { log "127.0.0.1:$PN_PORT is already in use"; return 1; }
  if [[ ${1:-0} == 1 ]]; then
    rm -rf "$PN_DATA"; mkdir -p "$PN_DATA"
    write_postern_config
    # the benchmark recipient must be a known local account (unknown local part -> 550 5.1.1)
    if [[ $RCPT == *@bench.test && ${RCPT%@*} != postmaster ]]; then
      "${POSTERN[@]}" user add "$RCPT" --password-stdin --config "$PN_CONF" \
        <<<"$RCPT_PASSWORD" >>"$LOGS/postern-user.log" 2>&1 ||
        log "warning: 'postern user add $RCPT' failed (see $LOGS/postern-user.log)"
    fi
  fi
  log "starting Postern on 127.0.0.1:$PN_PORT"
  "${POSTERN[@]}" serve --config "$PN_CONF" >>"$OUT/postern.log" 2>&1 9>&- &
  PN_PID=$!
  if ! wait_port "$PN_PORT" "$PN_PID" 90; then
    tail -n 20 "$OUT/postern.log" >&2
    log "Postern did not start listening on $PN_PORT (log: $OUT/postern.log)"
    stop_postern; return 1
  fi
  SERVER_PID=$PN_PID
}

# ------------------------------------------------------------- measurement --
declare -A RATE CPU SECS MSGS
FAILED=0 RUNS=0 NOISY=0
NOISE_RUNS=()
CLK_TCK=$(getconf CLK_TCK)
NOTES=()

msgs_for() { # size conc
  if [[ $1 == "$SIZE_SMALL" ]]; then
    if [[ $2 == 1 ]]; then echo "$MSGS_SMALL_C1"; else echo "$MSGS_SMALL"; fi
  else
    if [[ $2 == 1 ]]; then echo "$MSGS_LARGE_C1"; else echo "$MSGS_LARGE"; fi
  fi
}

smtp_source() { # port sessions messages size rcpt logfile
  local flags=(-4 -s "$2" -m "$3" -l "$4" -f "$SENDER" -t "$5" -M client.bench.test)
  [[ $REUSE == 1 ]] && flags+=(-d)
  timeout "$RUN_TIMEOUT" "$SMTP_SOURCE" "${flags[@]}" "127.0.0.1:$1" >"$6" 2>&1
}

declare -A PORT SPID SRCPT RATES CPUS
warm_up() { # name
  local name=$1
  log "$name: warm-up, $WARMUP messages"
  smtp_source "${PORT[$name]}" 10 "$WARMUP" "$SIZE_SMALL" "${SRCPT[$name]}" "$LOGS/$name-warmup.log" ||
    log "$name: warm-up failed: $(tail -n 3 "$LOGS/$name-warmup.log" | tr '\n' ' ')"
  "${PROCSTAT[@]}" wait-idle "${SPID[$name]}" "$DRAIN_TIMEOUT" >/dev/null
}

run_one() { # name size sessions messages rep
  local name=$1 size=$2 conc=$3 n=$4 rep=$5 pid=${SPID[$1]} key=$2:$3 c0 cm c1 t0 t1 k0 k1 secs rate cpu m0b m0t m1b m1t
  local log=$LOGS/$name-$size-$conc-$rep.log bg other
  # the machine is shared: other work running now would distort the figures
  bg=$("${PROCSTAT[@]}" quiet "$QUIET_PCT" "$QUIET_WAIT")
  RUNS=$((RUNS + 1))
  if (( bg > QUIET_PCT )); then log "warning: other processes use ${bg}% of the CPUs at the start of this run"; fi
  c0=$("${PROCSTAT[@]}" cpu "$pid")
  read -r m0b m0t < <("${PROCSTAT[@]}" machine)
  times >"$LOGS/.times0"
  t0=$(date +%s.%N)
  if smtp_source "${PORT[$name]}" "$conc" "$n" "$size" "${SRCPT[$name]}" "$log"; then
    t1=$(date +%s.%N)
    times >"$LOGS/.times1"; k0=$(child_cpu "$LOGS/.times0"); k1=$(child_cpu "$LOGS/.times1")
    read -r m1b m1t < <("${PROCSTAT[@]}" machine)
    cm=$("${PROCSTAT[@]}" cpu "$pid")
    # include work the server still does after the last 250 (queue manager, delivery, GC/JIT)
    "${PROCSTAT[@]}" wait-idle "$pid" "$DRAIN_TIMEOUT" >/dev/null
    c1=$("${PROCSTAT[@]}" cpu "$pid")
    secs=$(calc %.3f "$t1 - $t0")
    rate=$(calc %.0f "$n / $secs")
    cpu=$(calc %.2f "($c1 - $c0) * 1000 / $n")
    RATES[$name:$key]+=" $rate"; CPUS[$name:$key]+=" $cpu"
    # CPU used during the run by neither this server nor smtp-source, in % of all CPUs
    # (other people's work, but also kernel threads such as jbd2 and writeback)
    other=$(calc %.0f "100 * (($m1b - $m0b) / $CLK_TCK - ($cm - $c0) - ($k1 - $k0)) / (($m1t - $m0t + 1) / $CLK_TCK)")
    (( other < 0 )) && other=0
    if (( bg > QUIET_PCT || other > NOISE_PCT )); then
      NOISY=$((NOISY + 1)); NOISE_RUNS+=("$name $(sizename "$size") $conc sessions: ${bg}% before, ${other}% during")
    fi
    log "$name: size=$size sessions=$conc messages=$n: ${secs}s, $rate msg/s, CPU $cpu s/1k msg;" \
        "machine busy $(calc %.0f "100 * ($m1b - $m0b) / ($m1t - $m0t + 1)")%: server $(calc %.0f "100 * ($cm - $c0) / (($m1t - $m0t + 1) / $CLK_TCK)")%," \
        "smtp-source $(calc %.0f "100 * ($k1 - $k0) / (($m1t - $m0t + 1) / $CLK_TCK)")%, other ${other}%"
  else
    RATES[$name:$key]+=" ERR"; FAILED=1
    log "$name: size=$size sessions=$conc FAILED: $(tail -n 3 "$log" | tr '\n' ' ')"
    "${PROCSTAT[@]}" wait-idle "$pid" "$DRAIN_TIMEOUT" >/dev/null || true
  fi
}

run_all() { # server names...
  local size conc n rep name order
  for size in "$SIZE_SMALL" "$SIZE_LARGE"; do
    for conc in $CONCURRENCIES; do
      n=$(msgs_for "$size" "$conc"); MSGS[$size:$conc]=$n
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
        fi
      done
    done
  done
}

declare -A IDLE
measure_idle() { # pid port
  log "postern: $IDLE_CONNS idle connections"
  smtp_source "$2" 5 20 "$SIZE_SMALL" "$PN_RCPT" "$LOGS/postern-idle-warmup.log" || true
  "${PROCSTAT[@]}" wait-idle "$1" "$DRAIN_TIMEOUT" >/dev/null
  sleep 1
  local line rc=0
  python3 "$BENCH_DIR/idle_conns.py" --port "$2" --pid "$1" --count "$IDLE_CONNS" --settle 3 \
    >"$LOGS/postern-idle.log" 2>>"$LOGS/postern-idle.err" || rc=$?
  while IFS= read -r line; do IDLE[${line%%=*}]=${line#*=}; done <"$LOGS/postern-idle.log"
  if [[ $rc != 0 ]]; then
    FAILED=1; log "idle connections: only ${IDLE[alive]:-0} of $IDLE_CONNS stayed open ($(head -n 3 "$LOGS/postern-idle.err" | tr '\n' ' '))"
  fi
}

# --------------------------------------------------------------------- run --
rm -rf "$LOGS"; mkdir -p "$LOGS"
: >"$OUT/postern.log"
ensure_postfix
PF_VERSION=$(postconf -d -h mail_version 2>/dev/null || echo '?')

# Both servers run side by side and each case is measured on one, then the other, so that slow
# drifts of the machine (disk, page cache, noisy neighbours) hit both alike. The idle server
# costs next to nothing and its CPU is not counted for the other.
SERVERS=()
if [[ $ONLY != postern ]]; then
  start_postfix
  probe "$PF_PORT" "$RCPT" >/dev/null || die "Postfix refused the probe message"
  PORT[postfix]=$PF_PORT; SPID[postfix]=$SERVER_PID; SRCPT[postfix]=$RCPT; SERVERS+=(postfix)
fi

PN_RCPT=$RCPT
if [[ $ONLY != postfix ]]; then
  if build_postern && start_postern 1; then
    if reply=$(probe "$PN_PORT" "$PN_RCPT" 2>&1); then
      SERVERS+=(postern)
    else
      log "Postern refused the probe to $PN_RCPT: $reply"
      if [[ $PN_RCPT != postmaster@bench.test ]] && probe "$PN_PORT" postmaster@bench.test >/dev/null 2>&1; then
        PN_RCPT=postmaster@bench.test; SERVERS+=(postern)
        NOTES+=("Postern refused <$RCPT> ($reply); its runs used <postmaster@bench.test> instead.")
        log "using $PN_RCPT for Postern"
      else
        FAILED=1; NOTES+=("Postern refused the probe message: $reply")
        stop_postern
      fi
    fi
    PORT[postern]=$PN_PORT; SPID[postern]=$SERVER_PID; SRCPT[postern]=$PN_RCPT
  else
    FAILED=1; NOTES+=("Postern could not be built or started: see bench/out/logs/postern-build.log and bench/out/postern.log.")
  fi
fi

if (( ${#SERVERS[@]} )); then
  for name in "${SERVERS[@]}"; do warm_up "$name"; done
  run_all "${SERVERS[@]}"
fi
[[ $PF_STARTED == 1 ]] && stop_postfix
if [[ " ${SERVERS[*]} " == *" postern "* ]]; then
  # fresh process for the memory measurement, so that heap left over from the load runs
  # does not hide (or inflate) the per-connection cost
  stop_postern
  if start_postern 0; then measure_idle "$SERVER_PID" "$PN_PORT"; else FAILED=1; fi
  stop_postern
fi

# ------------------------------------------------------------------ report --
cell() { local v=${1:-}; [[ -n $v ]] && echo "$v" || echo "—"; }
human() { awk -v k="$1" 'BEGIN { if (k >= 1024*1024) printf "%.2f GiB", k/1048576; else if (k >= 1024) printf "%.1f MiB", k/1024; else printf "%d KiB", k }'; }

REPORT=$OUT/latest.md
{
  echo "# Postern vs Postfix — $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "- machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), $(awk '/MemTotal/ {printf "%.1f GiB RAM", $2/1048576}' /proc/meminfo), kernel $(uname -r), $(. /etc/os-release && echo "$PRETTY_NAME")"
  echo "- Postfix $PF_VERSION (private instance on 127.0.0.1:$PF_PORT, durable queue, discard transport); Postern $(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo 'no commit') on .NET $(dotnet --version 2>/dev/null || echo '?') (127.0.0.1:$PN_PORT, Delivery.Discard)"
  if [[ $REUSE == 1 ]]; then mode="many messages per connection (-d)"; else mode="one connection per message"; fi
  echo "- client: smtp-source, $mode, 1 recipient, HELO/MAIL/RCPT/DATA/QUIT; msg/s = messages / wall time of the smtp-source run"
  (( REPEAT > 1 )) && echo "- each figure is the median of $REPEAT runs; the two servers take turns for every run"
  (( REPEAT > 1 )) || echo "- one run per case; the two servers take turns case by case"
  echo "- CPU = user+sys seconds of the server's processes per 1,000 messages (Postfix: master and all its children), counted until the server is idle again"
  echo
  echo "| size | sessions | messages | Postfix msg/s | Postern msg/s | Postern/Postfix | Postfix CPU s/1k msg | Postern CPU s/1k msg |"
  echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  for size in "$SIZE_SMALL" "$SIZE_LARGE"; do
    for conc in $CONCURRENCIES; do
      key=$size:$conc
      pf=${RATE[postfix:$key]:-}; pn=${RATE[postern:$key]:-}
      ratio="—"
      if [[ $pf =~ ^[0-9]+$ && $pn =~ ^[0-9]+$ && $pf != 0 ]]; then ratio="$(calc %.2f "$pn / $pf")×"; fi
      echo "| $(sizename "$size") | $conc | $(cell "${MSGS[$key]:-}") | $(cell "$pf") | $(cell "$pn") | $ratio | $(cell "${CPU[postfix:$key]:-}") | $(cell "${CPU[postern:$key]:-}") |"
    done
  done
  if [[ $ONLY != postfix ]]; then
    echo
    echo "| Postern idle connections | still open | RSS before | RSS with connections | delta | per connection |"
    echo "| ---: | ---: | ---: | ---: | ---: | ---: |"
    if [[ -n ${IDLE[rss_after_kib]:-} ]]; then
      echo "| $IDLE_CONNS | ${IDLE[alive]} | $(human "${IDLE[rss_before_kib]}") | $(human "${IDLE[rss_after_kib]}") | $(human "${IDLE[delta_kib]}") | ${IDLE[per_conn_kib]} KiB |"
    else
      echo "| $IDLE_CONNS | — | — | — | — | — |"
    fi
  fi
  if (( NOISY )); then
    echo
    echo "- **warning**: in $NOISY of $RUNS runs other processes used more than $QUIET_PCT% of the CPUs just before or more than $NOISE_PCT% during the run; those figures are unreliable, rerun on a quiet machine:"
    for n in "${NOISE_RUNS[@]}"; do echo "  - $n"; done
  fi
  if (( ${#NOTES[@]} )); then
    echo
    for n in "${NOTES[@]}"; do echo "- note: $n"; done
  fi
  if [[ $QUICK == 1 ]]; then echo; echo "- BENCH_QUICK=1: smoke-test counts, figures are not meaningful"; fi
} >"$REPORT"
cp "$REPORT" "$OUT/result-$(date -u +%Y%m%dT%H%M%SZ).md"
cat "$REPORT"
exit "$FAILED"

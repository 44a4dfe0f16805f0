# Shell functions shared by bench/run.sh and bench/outbound.sh (sourced, not run).
#
# The functions read the caller's globals at call time:
#   OUT, LOGS             output and log directories
#   SMTP_SOURCE           path of smtp-source
#   SENDER                envelope sender of probe messages
#   PF_DIR, PF_CONF       the private Postfix instance (queue in $PF_DIR/queue, config in $PF_CONF)
#   PF_STARTED            1 while that instance runs (set here)
#   ROOT, SKIP_BUILD, ARTIFACTS, PN_DLL, BENCH_POSTERN_CMD   building Postern
#   PN_PID                the running Postern's pid ("" when none; cleared here)

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
sizename() { if (( $1 % 1024 == 0 )); then echo "$(( $1 / 1024 )) KiB"; else echo "$1 B"; fi; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; }   # calc FORMAT EXPRESSION, e.g. calc %.1f '3 / 2'  -> 1.5
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# One benchmark at a time (bench/run.sh and bench/outbound.sh share the lock): they would fight
# over the two CPUs, and run.sh over its ports and bench/out/.
take_lock() { # lock-file
  exec 9>"$1"
  if ! flock -n 9; then
    log "another benchmark (bench/run.sh or bench/outbound.sh) is running; waiting for it (at most ${BENCH_LOCK_WAIT:-900} s)"
    flock -w "${BENCH_LOCK_WAIT:-900}" 9 || die "another benchmark is still running"
  fi
}

# CPU seconds (user+sys) of this shell's waited-for children, from a file written by `times`:
# `times` must run in this shell, not in a $(...) subshell (a fork starts with zero counts).
child_cpu() {
  awk 'function s(x) { sub(/s$/, "", x); split(x, a, "m"); return a[1] * 60 + a[2] } NR == 2 { printf "%.3f", s($1) + s($2) }' "$1"
}

# ------------------------------------------------------------ dependencies --
# The start of a private instance's main.cf: its own queue, data and log under DIR, loopback only,
# bench.test as its domain and mynetworks. pf_base_main_cf DIR SYSLOG_NAME
pf_base_main_cf() {
  cat <<MAINCF
compatibility_level = 3.6
queue_directory = $1/queue
data_directory = $1/data
mail_owner = postfix
setgid_group = postdrop
syslog_name = $2
maillog_file = $1/maillog
maillog_file_prefixes = $1
myhostname = postfix.bench.test
mydomain = bench.test
myorigin = bench.test
mydestination = bench.test
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
MAINCF
}

# main.cf lines both benchmarks' Postfix instances share: nothing slow or irrelevant to the
# measurement (no DNS, no client/helo/sender checks, no TLS, no biff), relaying only for mynetworks.
pf_quiet_main_cf() {
  cat <<'MAINCF'
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
smtp_host_lookup = native
smtpd_client_restrictions =
smtpd_helo_restrictions =
smtpd_sender_restrictions =
smtpd_recipient_restrictions =
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_tls_security_level = none
smtp_tls_security_level = none
biff = no
append_dot_mydomain = no
readme_directory = no
smtpd_banner = $myhostname ESMTP
MAINCF
}

ensure_postfix() {
  # An apt run started elsewhere (log /tmp/apt.log ending in a "done" line) may still be busy.
  local waited=0
  if [[ -f /tmp/apt.log ]]; then
    while ! tail -n 1 /tmp/apt.log | grep -q '^done' && (( waited < 900 )); do
      (( waited % 30 == 0 )) && log "waiting for the apt run logging to /tmp/apt.log to finish..."
      sleep 2; waited=$((waited + 2))
    done
  fi
  if [[ -x $SMTP_SOURCE && -x /usr/sbin/postfix ]]; then return; fi
  waited=0
  while pgrep -x apt-get >/dev/null || pgrep -x apt >/dev/null || pgrep -x dpkg >/dev/null; do
    (( waited < 900 )) || die "apt/dpkg still busy after 900 s"
    (( waited % 30 == 0 )) && log "waiting for a running apt/dpkg to finish..."
    sleep 2; waited=$((waited + 2))
  done
  if [[ ! -x $SMTP_SOURCE || ! -x /usr/sbin/postfix ]]; then
    log "installing postfix (for postfix + smtp-source)"
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    DEBIAN_FRONTEND=noninteractive apt-get install -y postfix >"$LOGS/apt.log" 2>&1 ||
      { DEBIAN_FRONTEND=noninteractive apt-get update >>"$LOGS/apt.log" 2>&1 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y postfix >>"$LOGS/apt.log" 2>&1; } ||
      die "apt-get install postfix failed, see $LOGS/apt.log"
  fi
  [[ -x $SMTP_SOURCE ]] || die "$SMTP_SOURCE missing after installing postfix"
}

port_free() { ! (exec 3<>"/dev/tcp/${2:-127.0.0.1}/$1") 2>/dev/null; } # port [host]

wait_port() { # port pid-to-watch(optional) timeout [host]
  local port=$1 pid=${2:-} t=${3:-60} host=${4:-127.0.0.1} i=0
  while ! (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; do
    if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then return 1; fi
    (( i < t * 5 )) || return 1
    sleep 0.2; i=$((i + 1))
  done
}

# One SMTP transaction with Python's smtplib, printing the failing reply if any.
probe() { # port rcpt
  python3 - "$1" "$2" "$SENDER" <<'EOF'
import smtplib, sys
port, rcpt, sender = int(sys.argv[1]), sys.argv[2], sys.argv[3]
try:
    with smtplib.SMTP("127.0.0.1", port, local_hostname="probe.bench.test", timeout=30) as s:
        s.ehlo()
        code, msg = s.mail(sender)
        if code != 250: raise SystemExit(f"MAIL FROM: {code} {msg.decode()}")
        code, msg = s.rcpt(rcpt)
        if code not in (250, 251): raise SystemExit(f"RCPT TO:<{rcpt}>: {code} {msg.decode()}")
        code, msg = s.data(b"Subject: bench probe\r\nFrom: <%s>\r\nTo: <%s>\r\n\r\nprobe\r\n" % (sender.encode(), rcpt.encode()))
        if code != 250: raise SystemExit(f"DATA: {code} {msg.decode()}")
        print(f"250 {msg.decode()}")
except (OSError, smtplib.SMTPException) as e:
    raise SystemExit(f"{type(e).__name__}: {e}")
EOF
}

# ----------------------------------------------------------------- Postfix --
pf_master_pid() {
  local f=$PF_DIR/queue/pid/master.pid
  [[ -f $f ]] && tr -d ' \n' <"$f"
}

stop_postfix() {
  local pid
  pid=$(pf_master_pid || true)
  [[ -d $PF_CONF ]] && postfix -c "$PF_CONF" stop >>"$LOGS/postfix-ctl.log" 2>&1
  if [[ -n $pid ]]; then
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  fi
  PF_STARTED=0
}

# Stops a leftover instance of an interrupted run, checks the port, and makes fresh, empty
# $PF_CONF, $PF_DIR/queue and $PF_DIR/data; the caller then writes main.cf (and master.cf with
# write_pf_master_cf) and calls launch_postfix.
prepare_postfix() { # port
  if [[ -n $(pf_master_pid 2>/dev/null || true) ]] && kill -0 "$(pf_master_pid)" 2>/dev/null; then
    log "stopping a leftover private Postfix instance"; stop_postfix
  fi
  port_free "$1" || die "127.0.0.1:$1 is already in use"
  rm -rf "$PF_DIR"
  mkdir -p "$PF_CONF" "$PF_DIR/queue" "$PF_DIR/data"
  chown postfix: "$PF_DIR/data"; chmod 700 "$PF_DIR/data"
}

# master.cf: the stock services, no chroot, smtpd only on 127.0.0.1:PORT
write_pf_master_cf() { # port
  cat >"$PF_CONF/master.cf" <<EOF
127.0.0.1:$1 inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
}

# Checks and starts the instance, waits for its port; sets SERVER_PID to master's pid.
launch_postfix() { # port
  log "starting private Postfix on 127.0.0.1:$1 (config $PF_CONF)"
  postfix -c "$PF_CONF" check >>"$LOGS/postfix-ctl.log" 2>&1 || die "postfix check failed, see $LOGS/postfix-ctl.log"
  postfix -c "$PF_CONF" start >>"$LOGS/postfix-ctl.log" 2>&1 9>&- || die "postfix start failed, see $LOGS/postfix-ctl.log"
  PF_STARTED=1
  wait_port "$1" "" 30 || die "Postfix does not listen on $1, see $PF_DIR/maillog"
  SERVER_PID=$(pf_master_pid)
  [[ -n $SERVER_PID ]] || die "no Postfix master pid"
}

# ----------------------------------------------------------------- Postern --
build_postern() {
  if [[ $SKIP_BUILD != 1 ]]; then
    log "building Postern (Release)"
    local extra=()
    [[ -n $ARTIFACTS ]] && extra=(--artifacts-path "$ARTIFACTS")
    (cd "$ROOT" && dotnet build -c Release "${extra[@]}" src/Postern/Postern.csproj) >"$LOGS/postern-build.log" 2>&1 ||
      { tail -n 30 "$LOGS/postern-build.log" >&2; log "Postern build failed, see $LOGS/postern-build.log"; return 1; }
  fi
  [[ -n ${BENCH_POSTERN_CMD:-} || -f $PN_DLL ]] || { log "$PN_DLL not found"; return 1; }
}

stop_postern() {
  [[ -n $PN_PID ]] || return 0
  kill -TERM "$PN_PID" 2>/dev/null || true
  for _ in $(seq 75); do kill -0 "$PN_PID" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$PN_PID" 2>/dev/null; then log "Postern ignored SIGTERM for 15 s, killing"; kill -KILL "$PN_PID" 2>/dev/null || true; fi
  wait "$PN_PID" 2>/dev/null || true
  PN_PID=""
}

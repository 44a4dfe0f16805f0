#!/usr/bin/env bash
# Issue 12: 10,000 idle connections on port 25 of a real `postern serve` with its DEFAULT limits
# (Limits.MaxConnections 10,000 per mx listener, 20 per address: the idle clients come from 500
# loopback addresses 127.1.x.y), memory per idle connection, and legitimate mail on 587 (STARTTLS,
# AUTH) and on 25 meanwhile (bench/hold10k.py). Bounded: 240 s for the clients.
#
#   bench/hold10k.sh                      10,000 idle, 20 messages per route
#   BENCH_IDLE=N BENCH_MESSAGES=N BENCH_KEEPALIVE=S    the knobs (keep-alive 0: never a NOOP)
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
OUT=$BENCH_DIR/out
ADIR=$OUT/hold10k
LOGS=$ADIR/logs
IDLE=${BENCH_IDLE:-10000}
MESSAGES=${BENCH_MESSAGES:-20}
KEEPALIVE=${BENCH_KEEPALIVE:-5}
MX_PORT=${BENCH_MX_PORT:-10031}
SUB_PORT=${BENCH_SUB_PORT:-10032}
SKIP_BUILD=${BENCH_SKIP_BUILD:-0}
ARTIFACTS=
PN_DATA=$ADIR/data
PN_CONF=$ADIR/postern.json
PN_DLL=$ROOT/src/Postern/bin/Release/net10.0/postern.dll
POSTERN=(dotnet "$PN_DLL")
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

. "$BENCH_DIR/lib.sh"

mkdir -p "$OUT" "$LOGS"
take_lock "$OUT/.lock"
ulimit -n "$(ulimit -Hn)"
PN_PID=
trap 'stop_postern' EXIT

build_postern
rm -rf "$PN_DATA"; mkdir -p "$PN_DATA"
# Default limits and triage; only Delivery.Discard, so that the disk is not what is measured.
cat >"$PN_CONF" <<JSON
{
  "Hostname": "mx.bench.test",
  "DataDirectory": "$PN_DATA",
  "User": "$(id -un)",
  "Domains": ["bench.test"],
  "Listeners": [
    { "Name": "mx", "Endpoint": "127.0.0.1:$MX_PORT", "Role": "mx" },
    { "Name": "submission", "Endpoint": "127.0.0.1:$SUB_PORT", "Role": "submission" }
  ],
  "Tls": { "Generate": true },
  "Delivery": { "Discard": true }
}
JSON
"${POSTERN[@]}" user add user@bench.test --password-stdin --config "$PN_CONF" <<<"bench-Password-4711" >"$LOGS/user.log" 2>&1
log "starting Postern (mx 127.0.0.1:$MX_PORT, submission 127.0.0.1:$SUB_PORT)"
"${POSTERN[@]}" serve --config "$PN_CONF" >"$LOGS/postern.log" 2>&1 9>&- &
PN_PID=$!
wait_port "$MX_PORT" "$PN_PID" 90 || die "Postern did not start (see $LOGS/postern.log)"
log "holding $IDLE idle connections on port 25, then $MESSAGES messages on 587 and on 25"
timeout 300 python3 "$BENCH_DIR/hold10k.py" --mx "$MX_PORT" --submission "$SUB_PORT" --pid "$PN_PID" \
  --user user@bench.test --password bench-Password-4711 --idle "$IDLE" --messages "$MESSAGES" --keepalive "$KEEPALIVE" \
  >"$LOGS/hold.out" 2>"$LOGS/hold.err" || { cat "$LOGS/hold.err" >&2; die "hold10k.py failed"; }
cat "$LOGS/hold.out"
grep -o 'event=open_files_limit.*' "$LOGS/postern.log" | head -1 || true
echo "shed_logged=$(grep -c 'event=connection_shed' "$LOGS/postern.log" || true)"

#!/usr/bin/env bash
# Postern under attack (issue 4): memory with 10,000 idle connections, and the msgs/s of
# well-behaved clients before and while one address floods the server.
#
#   bench/abuse.sh                       full run (10,000 idle, 20 clients x 200 messages, 50 flood tasks)
#   BENCH_QUICK=1 bench/abuse.sh         smoke test (1,000 idle, 20 x 20)
#   BENCH_IDLE=N BENCH_CLIENTS=N BENCH_MESSAGES=N BENCH_FLOOD=N    the knobs
#   BENCH_ARTIFACTS=DIR                  build with --artifacts-path DIR
#
# Postern runs with its default limits and triage (only MaxConnections raised to hold the idle
# connections, and Delivery.Discard so that the disk is not what is measured); the clients are
# bench/abuse.py. Writes bench/out/abuse-latest.md. Postern only: Postfix has no such defaults
# to compare with (postscreen and anvil are opt-in), so there is no ratio here.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
OUT=$BENCH_DIR/out
ADIR=$OUT/abuse
LOGS=$ADIR/logs
QUICK=${BENCH_QUICK:-0}
if [[ $QUICK == 1 ]]; then d_idle=1000 d_msgs=20; else d_idle=10000 d_msgs=200; fi
IDLE=${BENCH_IDLE:-$d_idle}
CLIENTS=${BENCH_CLIENTS:-20}
MESSAGES=${BENCH_MESSAGES:-$d_msgs}
FLOOD=${BENCH_FLOOD:-50}
PN_PORT=${BENCH_POSTERN_PORT:-10028}
SKIP_BUILD=${BENCH_SKIP_BUILD:-0}
PN_DATA=$ADIR/data
PN_CONF=$ADIR/postern.json
PN_DLL=$ROOT/src/Postern/bin/Release/net10.0/postern.dll
ARTIFACTS=${BENCH_ARTIFACTS:-}
[[ -n $ARTIFACTS ]] && { ARTIFACTS=$(mkdir -p "$ARTIFACTS" && cd "$ARTIFACTS" && pwd); PN_DLL=$ARTIFACTS/bin/Postern/release/postern.dll; }
POSTERN=(dotnet "$PN_DLL")
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

. "$BENCH_DIR/lib.sh"

mkdir -p "$OUT" "$LOGS"
take_lock "$OUT/.lock"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
PN_PID=
trap 'stop_postern' EXIT

build_postern
rm -rf "$PN_DATA"; mkdir -p "$PN_DATA"
cat >"$PN_CONF" <<JSON
{
  "Hostname": "mx.bench.test",
  "DataDirectory": "$PN_DATA",
  "User": "$(id -un)",
  "Domains": ["bench.test"],
  "Listeners": [ { "Name": "mx", "Endpoint": "127.0.0.1:$PN_PORT", "Role": "mx" } ],
  "Tls": { "Generate": true },
  "Limits": { "MaxConnections": $((IDLE + 1000)) },
  "Delivery": { "Discard": true }
}
JSON
"${POSTERN[@]}" user add user@bench.test --password-stdin --config "$PN_CONF" <<<"bench-Password-4711" >"$LOGS/user.log" 2>&1
log "starting Postern on 127.0.0.1:$PN_PORT"
"${POSTERN[@]}" serve --config "$PN_CONF" >"$LOGS/postern.log" 2>&1 9>&- &
PN_PID=$!
wait_port "$PN_PORT" "$PN_PID" 90 || die "Postern did not start (see $LOGS/postern.log)"
log "idle $IDLE, then $CLIENTS clients x $MESSAGES messages, calm and under a flood of $FLOOD tasks"
started=$(date +%s)
python3 "$BENCH_DIR/abuse.py" --port "$PN_PORT" --pid "$PN_PID" --idle "$IDLE" --clients "$CLIENTS" \
  --messages "$MESSAGES" --flood "$FLOOD" >"$LOGS/abuse.out" 2>"$LOGS/abuse.err" || { cat "$LOGS/abuse.err" >&2; die "abuse.py failed"; }
declare -A R
while IFS= read -r line; do R[${line%%=*}]=${line#*=}; done <"$LOGS/abuse.out"
version=$(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo unknown)
{
  echo "## Postern under attack ($(date -u +%Y-%m-%d), $version)"
  echo
  echo "\`bench/abuse.sh\`: default limits and triage; $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)."
  echo
  echo "| idle connections | still open | server RSS before | with them | per connection | in total |"
  echo "| ---: | ---: | ---: | ---: | ---: | ---: |"
  echo "| $IDLE | ${R[idle_open]} | $(calc %.1f "${R[rss_before_kib]} / 1024") MiB | $(calc %.1f "${R[rss_idle_kib]} / 1024") MiB | ${R[idle_per_conn_kib]} KiB | $(calc %.1f "(${R[rss_idle_kib]} - ${R[rss_before_kib]}) / 1024") MiB |"
  echo
  echo "| $CLIENTS well-behaved clients, $((CLIENTS * MESSAGES)) x 1 KiB | msg/s | flood connections greeted | refused (421) | failed |"
  echo "| --- | ---: | ---: | ---: | ---: |"
  echo "| calm (beside the idle connections) | ${R[calm_msgs_per_s]} | | | |"
  echo "| while $FLOOD tasks flood from one address | ${R[flood_msgs_per_s]} | ${R[flood_greeted]} | ${R[flood_refused]} | ${R[flood_errors]} |"
  echo
  echo "- under the flood, well-behaved throughput is $(calc %.0f "100 * ${R[flood_msgs_per_s]} / ${R[calm_msgs_per_s]}") % of the calm figure; server RSS at the end $(calc %.1f "${R[rss_end_kib]} / 1024") MiB"
  echo "- duration: $(( $(date +%s) - started )) s"
} | tee "$OUT/abuse-latest.md"

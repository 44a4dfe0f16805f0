#!/usr/bin/env bash
# Issue 12, whole messages in memory on delivery: a sending Postern takes 20 messages of 20 MiB
# from an authenticated user (submission, STARTTLS), DKIM-signs them (a key of bench.test) and
# relays them through Relay.Smarthost to a second Postern (the peer, mx role, STARTTLS), which
# files them in a Maildir. Figure: the growth of the sender's VmHWM (peak RSS) from after one
# small warm-up message to when the peer has all 20 (bench/delivery-memory.py).
#
#   bench/attack-delivery.sh                               this tree's Release build
#   BENCH_DLL=/path/postern.dll BENCH_SKIP_BUILD=1 ...      another build (e.g. main's), sender and peer
#   BENCH_COUNT=20 BENCH_SIZE=20                             messages and MiB each
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
OUT=$BENCH_DIR/out
ADIR=$OUT/delivery
LOGS=$ADIR/logs
SEND_PORT=${BENCH_SEND_PORT:-10232}
PEER_PORT=${BENCH_PEER_PORT:-10233}
COUNT=${BENCH_COUNT:-20}
SIZE=${BENCH_SIZE:-20}
SKIP_BUILD=${BENCH_SKIP_BUILD:-0}
PN_DLL=${BENCH_DLL:-$ROOT/src/Postern/bin/Release/net10.0/postern.dll}
ARTIFACTS=
POSTERN=(dotnet "$PN_DLL")
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

. "$BENCH_DIR/lib.sh"

mkdir -p "$OUT" "$LOGS"
PN_PID= PEER_PID=
trap 'stop_postern; [[ -n $PEER_PID ]] && { kill -TERM "$PEER_PID" 2>/dev/null; wait "$PEER_PID" 2>/dev/null; } || true' EXIT
build_postern
port_free "$SEND_PORT" && port_free "$PEER_PORT" || die "port $SEND_PORT or $PEER_PORT is in use (BENCH_SEND_PORT, BENCH_PEER_PORT)"
rm -rf "$ADIR/send" "$ADIR/peer"; mkdir -p "$ADIR/send" "$ADIR/peer"
cat >"$ADIR/peer.json" <<JSON
{
  "Hostname": "mx.peer.test", "DataDirectory": "$ADIR/peer", "User": "$(id -un)", "Domains": ["peer.test"],
  "Listeners": [ { "Name": "mx", "Endpoint": "127.0.0.1:$PEER_PORT", "Role": "mx" } ],
  "Tls": { "Generate": true }, "Dns": { "Servers": ["127.0.0.1:9"], "Timeout": "00:00:01" },
  "Limits": { "MaxMessageSize": $(( (SIZE + 2) * 1048576 )) }
}
JSON
cat >"$ADIR/send.json" <<JSON
{
  "Hostname": "mx.bench.test", "DataDirectory": "$ADIR/send", "User": "$(id -un)", "Domains": ["bench.test"],
  "Listeners": [ { "Name": "submission", "Endpoint": "127.0.0.1:$SEND_PORT", "Role": "submission" } ],
  "Tls": { "Generate": true }, "Dns": { "Servers": ["127.0.0.1:9"], "Timeout": "00:00:01" },
  "Limits": { "MaxMessageSize": $(( (SIZE + 2) * 1048576 )) },
  "Relay": { "Smarthost": { "Host": "127.0.0.1", "Port": $PEER_PORT, "Tls": "starttls", "VerifyCertificate": false } }
}
JSON
"${POSTERN[@]}" user add someone@peer.test --password-stdin --config "$ADIR/peer.json" <<<"peer-Password-4711" >"$LOGS/user.log" 2>&1
"${POSTERN[@]}" user add user@bench.test --password-stdin --config "$ADIR/send.json" <<<"bench-Password-4711" >>"$LOGS/user.log" 2>&1
"${POSTERN[@]}" dkim keygen --domain bench.test --config "$ADIR/send.json" >"$LOGS/dkim.log" 2>&1
"${POSTERN[@]}" serve --config "$ADIR/peer.json" >"$LOGS/peer.log" 2>&1 9>&- &
PEER_PID=$!
"${POSTERN[@]}" serve --config "$ADIR/send.json" >"$LOGS/send.log" 2>&1 9>&- &
PN_PID=$!
wait_port "$PEER_PORT" "$PEER_PID" 90 || die "peer did not start (see $LOGS/peer.log)"
wait_port "$SEND_PORT" "$PN_PID" 90 || die "sender did not start (see $LOGS/send.log)"
log "$COUNT x $SIZE MiB submitted, signed, relayed"
python3 "$BENCH_DIR/delivery-memory.py" --port "$SEND_PORT" --pid "$PN_PID" --count "$COUNT" --size "$SIZE" --peer-dir "$ADIR/peer" \
  >"$LOGS/client.out" 2>"$LOGS/client.err" || { cat "$LOGS/client.err" >&2; die "delivery-memory.py failed"; }
declare -A R
while IFS= read -r line; do R[${line%%=*}]=${line#*=}; done <"$LOGS/client.out"
signed=$(grep -rl "^DKIM-Signature:" "$ADIR/peer" --include='*' 2>/dev/null | wc -l)
version=$(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo unknown)
{
  echo "| messages | delivered | DKIM-signed at the peer (with the warm-up) | sender peak RSS growth | seconds |"
  echo "| --- | ---: | ---: | ---: | ---: |"
  echo "| $COUNT x $SIZE MiB | ${R[delivered]} | $signed | $(calc %.0f "${R[growth_kib]} / 1024") MiB | ${R[seconds]} |"
  echo
  echo "Postern $version ($PN_DLL), $(nproc) CPUs."
} | tee "$OUT/delivery-latest.md"

#!/usr/bin/env bash
# Issue 12, the MIME bomb on port 25: the server's peak memory growth (VmHWM) for one message of
# empty MIME parts, 7 MB and 21 MB, and 7 MB with an ARC-Seal field, sent by bench/mimebomb.py
# over SMTP to a real `postern serve` on the mx role with mail authentication on (so DKIM, ARC
# and DMARC read the message before the 250). A fresh server per case, so that one case's peak
# does not hide the next one's.
#
#   bench/attack-mimebomb.sh                  this tree's Release build (built first)
#   BENCH_DLL=/path/postern.dll BENCH_SKIP_BUILD=1 bench/attack-mimebomb.sh   another build (e.g. main's)
#   BENCH_CASES="7 21 7arc"                   the cases
#
# Writes bench/out/mimebomb-latest.md.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
OUT=$BENCH_DIR/out
ADIR=$OUT/mimebomb
LOGS=$ADIR/logs
PN_PORT=${BENCH_POSTERN_PORT:-10031}
SKIP_BUILD=${BENCH_SKIP_BUILD:-0}
CASES=${BENCH_CASES:-7 21 7arc}
PN_DATA=$ADIR/data
PN_CONF=$ADIR/postern.json
PN_DLL=${BENCH_DLL:-$ROOT/src/Postern/bin/Release/net10.0/postern.dll}
ARTIFACTS=
POSTERN=(dotnet "$PN_DLL")
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

. "$BENCH_DIR/lib.sh"

mkdir -p "$OUT" "$LOGS"
PN_PID=
trap 'stop_postern' EXIT
build_postern

# Dns.Servers: a closed port on loopback, so that every query fails at once (SPF and DKIM say
# temperror); what is measured is the reading of the message, not the network.
# MailAuth.SkipTrustedNetworks off: the client is on loopback.
write_config() {
  rm -rf "$PN_DATA"; mkdir -p "$PN_DATA"
  cat >"$PN_CONF" <<JSON
{
  "Hostname": "mx.bench.test",
  "DataDirectory": "$PN_DATA",
  "User": "$(id -un)",
  "Domains": ["bench.test"],
  "Listeners": [ { "Name": "mx", "Endpoint": "127.0.0.1:$PN_PORT", "Role": "mx" } ],
  "Tls": { "Generate": true },
  "Dns": { "Servers": ["127.0.0.1:9"], "Timeout": "00:00:01" },
  "MailAuth": { "SkipTrustedNetworks": false },
  "Delivery": { "Discard": true }
}
JSON
  "${POSTERN[@]}" user add user@bench.test --password-stdin --config "$PN_CONF" <<<"bench-Password-4711" >"$LOGS/user.log" 2>&1
}

version=$(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo unknown)
{
  echo "| message | octets | reply | peak RSS growth | seconds |"
  echo "| --- | ---: | --- | ---: | ---: |"
} >"$OUT/mimebomb-latest.md"
for c in $CASES; do
  size=${c%arc}; arc=(); [[ $c == *arc ]] && arc=(--arc)
  write_config
  "${POSTERN[@]}" serve --config "$PN_CONF" >"$LOGS/postern-$c.log" 2>&1 9>&- &
  PN_PID=$!
  wait_port "$PN_PORT" "$PN_PID" 90 || die "Postern did not start (see $LOGS/postern-$c.log)"
  log "case $c: $size MB of empty MIME parts ${arc[*]}"
  python3 "$BENCH_DIR/mimebomb.py" --port "$PN_PORT" --pid "$PN_PID" --size "$size" "${arc[@]}" >"$LOGS/$c.out" 2>"$LOGS/$c.err" ||
    { cat "$LOGS/$c.err" >&2; die "mimebomb.py failed"; }
  declare -A R=()
  while IFS= read -r line; do R[${line%%=*}]=${line#*=}; done <"$LOGS/$c.out"
  echo "| $size MB empty parts${arc:+ + ARC-Seal} | ${R[octets]} | ${R[reply]:0:40} | $(calc %.0f "${R[growth_kib]} / 1024") MiB | ${R[seconds]} |" >>"$OUT/mimebomb-latest.md"
  stop_postern
done
echo >>"$OUT/mimebomb-latest.md"
echo "Postern $version ($PN_DLL), $(nproc) CPUs." >>"$OUT/mimebomb-latest.md"
cat "$OUT/mimebomb-latest.md"

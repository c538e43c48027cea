#!/usr/bin/env bash
# benches/apply.sh — `ksec apply` of 500 encrypted Secrets across 50
# namespaces vs (a) `sops decrypt FILE | kubectl apply --server-side -f -` per
# file and (b) one `kubectl apply --server-side` of the same Secrets in
# plaintext (the API-bound limit). Against the real kube-apiserver from
# scripts/kube-up.sh (started here unless KSEC_TEST_KUBECONFIG is set).
#
#   CARGO_TARGET_DIR=/tmp/ksec-rel cargo build --release
#   KSEC=/tmp/ksec-rel/release/ksec benches/apply.sh [N_SECRETS] [N_NAMESPACES]
#
# Each tool applies into its own fresh namespaces so every run is a
# first apply (creates); the no-op re-apply of ksec is timed too.
# Plaintext exists only for (a)'s input pipe and (b)'s file, in a private tmpfs dir.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${1:-500}
NS=${2:-50}
KSEC=${KSEC:-/tmp/ksec-rel/release/ksec}
SOPS=${SOPS:-$ROOT/.test-deps/venv/bin/sops}
KUBECTL=${KUBECTL:-/usr/bin/kubectl}
export SOPS_DISABLE_VERSION_CHECK=1
for b in "$KSEC" "$SOPS" "$KUBECTL"; do [ -x "$b" ] || { echo "missing $b" >&2; exit 1; }; done

WORK=$(mktemp -d)
PLAIN=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d)
KUBE=""
cleanup() {
  rm -rf "$WORK" "$PLAIN"
  if [ -n "$KUBE" ]; then "$ROOT/scripts/kube-down.sh" "$KUBE"; fi
}
trap cleanup EXIT
if [ -z "${KSEC_TEST_KUBECONFIG:-}" ]; then
  KUBE=$(mktemp -d)
  eval "$("$ROOT/scripts/kube-up.sh" "$KUBE")"
fi
KC=$KSEC_TEST_KUBECONFIG
k() { "$KUBECTL" --kubeconfig "$KC" "$@" 2>/dev/null; }

RUN=$(date +%s | tail -c 5)
mkdir -p "$WORK/repo/.git" "$WORK/repo/recipients" "$WORK/repo/secrets"
age-keygen -o "$WORK/key.txt" 2>/dev/null
PUB=$(age-keygen -y "$WORK/key.txt")
printf 'namespaces: ["bench-*"]\nage:\n  - %s\n' "$PUB" > "$WORK/repo/recipients/bench.yaml"
export SOPS_AGE_KEY_FILE="$WORK/key.txt"

# 500 Secrets in 50 namespaces per tool: bench-<tool>-<run>-<i>.
gen() { # tool dir
  local tool=$1 dir=$2 i ns
  mkdir -p "$dir"
  for ((i = 0; i < N; i++)); do
    ns="bench-$tool-$RUN-$((i % NS))"
    printf 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: s%d\n  namespace: %s\ntype: Opaque\nstringData:\n  username: user%d\n  password: pw-%d-%s\n  url: postgres://db%d.example:5432/app\n' \
      "$i" "$ns" "$i" "$i" "$RANDOM$RANDOM" "$i" > "$dir/s$i.yaml"
  done
  for ((i = 0; i < NS; i++)); do
    printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: bench-%s-%s-%d\n---\n' "$tool" "$RUN" "$i"
  done | "$KUBECTL" --kubeconfig "$KC" apply -f - >/dev/null 2>&1
}

gen ksec "$WORK/repo/secrets/ksec"
"$KSEC" encrypt -i "$WORK/repo/secrets/ksec" >/dev/null 2>&1
gen sops "$WORK/repo/secrets/sops"
"$KSEC" encrypt -i "$WORK/repo/secrets/sops" >/dev/null 2>&1  # same SOPS format; sops decrypts it
gen plain "$PLAIN/plain"

t() { local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); echo "$e - $s" | bc; }

T_KSEC=$(t "$KSEC" apply --kubeconfig "$KC" --identity "$WORK/key.txt" -q "$WORK/repo/secrets/ksec")
T_KSEC_NOOP=$(t "$KSEC" apply --kubeconfig "$KC" --identity "$WORK/key.txt" -q "$WORK/repo/secrets/ksec")
loop() {
  for f in "$WORK"/repo/secrets/sops/*.yaml; do
    "$SOPS" decrypt "$f" | "$KUBECTL" --kubeconfig "$KC" apply --server-side -f - >/dev/null 2>&1
  done
}
T_LOOP=$(t loop)
T_KUBECTL=$(t sh -c "'$KUBECTL' --kubeconfig '$KC' apply --server-side -f '$PLAIN/plain' 2>/dev/null")

cnt() { k get secrets -A -o custom-columns=NS:.metadata.namespace,N:.metadata.name --no-headers \
  | awk -v p="bench-$1-$RUN-" 'index($1, p) == 1 && $2 ~ /^s[0-9]+$/' | grep -c . || true; }
echo "secrets created: ksec=$(cnt ksec) sops-loop=$(cnt sops) kubectl=$(cnt plain) (want $N each)"
printf 'N=%s namespaces=%s\n' "$N" "$NS"
printf '%-52s %8.2f s\n' "ksec apply (first apply, decrypt in memory)" "$T_KSEC"
printf '%-52s %8.2f s\n' "ksec apply (no-op re-apply)" "$T_KSEC_NOOP"
printf '%-52s %8.2f s\n' "sops decrypt | kubectl apply --server-side, per file" "$T_LOOP"
printf '%-52s %8.2f s\n' "kubectl apply --server-side, one plaintext dir" "$T_KUBECTL"
printf 'ksec vs kubectl limit: %.2fx   per-file loop vs ksec: %.1fx\n' \
  "$(echo "$T_KSEC / $T_KUBECTL" | bc -l)" "$(echo "$T_LOOP / $T_KSEC" | bc -l)"

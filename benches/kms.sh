#!/usr/bin/env bash
# KMS benchmark (issue 3): encrypt and decrypt N (default 200) Secret manifests
# with an AWS KMS recipient against a local moto server: ksec in one process
# (concurrent key-service calls) vs a `sops` loop (one process per file).
# Then the same with a GCP KMS recipient against the in-repo fake
# (tests/support/gcp_fake.py, TLS, service-account JWT login): ksec only,
# because sops 3.11 speaks gRPC to GCP KMS with no endpoint override.
# Usage: benches/kms.sh [KSEC_BIN]   (default: target/release/ksec)
# Writes benches/RESULTS-kms.md; no timing assertions.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KSEC=${1:-$ROOT/target/release/ksec}
PROFILE_DIR=$(dirname "$KSEC")
[ -x "$KSEC" ] || (cd "$ROOT" && cargo build --release --bin ksec)
MANY="$PROFILE_DIR/examples/decrypt_many"
if [ ! -x "$MANY" ] || [ "$MANY" -ot "$KSEC" ]; then
  if [ "$(basename "$PROFILE_DIR")" = release ]; then (cd "$ROOT" && cargo build --release --example decrypt_many); else (cd "$ROOT" && cargo build --example decrypt_many); fi
fi
"$ROOT/scripts/test-deps.sh"
export PATH="$ROOT/.test-deps/venv/bin:$PATH" SOPS_DISABLE_VERSION_CHECK=1
N=${N:-200}
W=$(mktemp -d)
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
moto_server -H 127.0.0.1 -p "$PORT" >/dev/null 2>&1 &
MOTO=$!
GCPFAKE=""
trap 'kill "$MOTO" $GCPFAKE 2>/dev/null; rm -rf "$W"' EXIT
export AWS_ENDPOINT_URL=http://127.0.0.1:$PORT AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
  AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
for _ in $(seq 1 100); do python3 -c "import socket;socket.create_connection(('127.0.0.1',$PORT),0.2)" 2>/dev/null && break; sleep 0.1; done
ARN=$(python3 -c 'import boto3;print(boto3.client("kms").create_key(Description="bench")["KeyMetadata"]["Arn"])')
cd "$W"
secret() { printf 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: s%s\n  namespace: prod\ntype: Opaque\nstringData:\n  username: user%s\n  password: pw-%s-%s\n' "$1" "$1" "$1" "$RANDOM"; }
for t in ksec sops; do mkdir -p "tree-$t"; for i in $(seq 1 "$N"); do secret "$i" > "tree-$t/secret-$i.yaml"; done; done
now() { date +%s.%N; }
el() { printf "%.2f" "$(echo "$2 - $1" | bc)"; }

t0=$(now); "$KSEC" encrypt -i --kms "$ARN" tree-ksec >/dev/null 2>&1; t1=$(now); KE=$(el "$t0" "$t1")
t0=$(now)
for f in tree-sops/*.yaml; do sops encrypt -i --encrypted-regex '^(data|stringData)$' --kms "$ARN" "$f"; done
t1=$(now); SE=$(el "$t0" "$t1")
grep -q 'kms:' tree-ksec/secret-1.yaml && grep -q 'kms:' tree-sops/secret-1.yaml

t0=$(now); "$MANY" tree-ksec/*.yaml >/dev/null; t1=$(now); KD=$(el "$t0" "$t1")
t0=$(now); for f in tree-ksec/*.yaml; do "$KSEC" decrypt "$f" >/dev/null; done; t1=$(now); KL=$(el "$t0" "$t1")
t0=$(now); for f in tree-sops/*.yaml; do sops decrypt "$f" >/dev/null; done; t1=$(now); SD=$(el "$t0" "$t1")
# Cross-check: each tool opens the other's files.
"$MANY" tree-sops/*.yaml >/dev/null
sops decrypt tree-ksec/secret-1.yaml >/dev/null

# GCP KMS against the fake (its own CA; the service-account file's token_uri is the fake).
mkdir -p "$W/gcp"
python3 "$ROOT/tests/support/gcp_fake.py" "$W/gcp" > "$W/gcp/ready" 2>"$W/gcp/log" &
GCPFAKE=$!
for _ in $(seq 1 300); do [ -s "$W/gcp/ready" ] && break; sleep 0.1; done
[ -s "$W/gcp/ready" ] || { cat "$W/gcp/log" >&2; exit 1; }
GPORT=$(python3 -c "import json;print(json.load(open('$W/gcp/ready'))['port'])")
GID=projects/bench/locations/global/keyRings/ksec/cryptoKeys/bench
python3 - "$GPORT" "$GID" "$W/gcp/ca.pem" <<'PY'
import json, ssl, sys, urllib.request
port, gid, ca = sys.argv[1:]
req = urllib.request.Request(f"https://127.0.0.1:{port}/_fake/keys", data=json.dumps({"name": gid}).encode(), method="POST")
urllib.request.urlopen(req, context=ssl.create_default_context(cafile=ca)).read()
PY
gcp_env() { env GOOGLE_APPLICATION_CREDENTIALS="$W/gcp/sa.json" KSEC_GCP_KMS_ENDPOINT="https://127.0.0.1:$GPORT" SSL_CERT_FILE="$W/gcp/ca.pem" "$@"; }
mkdir -p tree-gcp; for i in $(seq 1 "$N"); do secret "$i" > "tree-gcp/secret-$i.yaml"; done
t0=$(now); gcp_env "$KSEC" encrypt -i --gcp-kms "$GID" tree-gcp >/dev/null 2>&1; t1=$(now); GE=$(el "$t0" "$t1")
grep -q 'gcp_kms:' tree-gcp/secret-1.yaml
t0=$(now); gcp_env "$MANY" tree-gcp/*.yaml >/dev/null; t1=$(now); GD=$(el "$t0" "$t1")
t0=$(now); for f in tree-gcp/*.yaml; do gcp_env "$KSEC" decrypt "$f" >/dev/null; done; t1=$(now); GL=$(el "$t0" "$t1")

ratio() { python3 -c "print(f'{$1/$2:.1f}x')"; }
OUT=${OUT:-"$ROOT/benches/RESULTS-kms.md"}
{
  echo "# KMS benchmark: $N Secret manifests, AWS KMS recipient, moto on 127.0.0.1"
  echo
  echo "Command: \`benches/kms.sh\` (N=$N), $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, ksec binary \`${KSEC#$ROOT/}\`, sops $(sops --version 2>/dev/null | head -1 | awk '{print $2}'), moto $(python3 -c 'import moto;print(moto.__version__)')."
  echo
  echo "| operation | ksec | sops loop | sops / ksec |"
  echo "|---|---|---|---|"
  echo "| encrypt $N files (\`ksec encrypt -i --kms ARN DIR\`, one process) | ${KE} s | ${SE} s | $(ratio "$SE" "$KE") |"
  echo "| decrypt $N files, one process, concurrent (\`examples/decrypt_many\`) | ${KD} s | ${SD} s | $(ratio "$SD" "$KD") |"
  echo "| decrypt $N files, one \`ksec decrypt\` process per file | ${KL} s | ${SD} s | $(ratio "$SD" "$KL") |"
  echo
  echo "moto answers KMS calls in a few milliseconds, so this measures process start-up and"
  echo "per-call overhead, not a real AWS round trip (≈10–30 ms), where ksec's concurrency"
  echo "(bounded by KSEC_KEY_SERVICE_CONCURRENCY, default 16) matters more."
  echo
  echo "## GCP KMS: $N Secret manifests against the in-repo fake (TLS, service-account JWT)"
  echo
  echo "| operation | ksec |"
  echo "|---|---|"
  echo "| encrypt $N files (\`ksec encrypt -i --gcp-kms ID DIR\`, one process) | ${GE} s |"
  echo "| decrypt $N files, one process, concurrent (\`examples/decrypt_many\`) | ${GD} s |"
  echo "| decrypt $N files, one \`ksec decrypt\` process per file (each logs in anew) | ${GL} s |"
  echo
  echo "No sops column: sops $(sops --version 2>/dev/null | head -1 | awk '{print $2}') talks to GCP KMS over gRPC only and has no"
  echo "endpoint override (\`SOPS_GCP_KMS_CLIENT_TYPE=rest\` / \`SOPS_GCP_KMS_ENDPOINT\` arrived in 3.12),"
  echo "so it cannot reach the fake. The fake is a Python ThreadingHTTPServer;"
  echo "one process signs one JWT and reuses the token for all files."
} > "$OUT"
cat "$OUT"

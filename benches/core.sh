#!/usr/bin/env bash
# Core benchmark (issue 2): decrypt one Secret manifest, and encrypt a tree of
# 1,000 Secret manifests, ksec vs sops (and rops-cli when it is installed).
# Usage: benches/core.sh [KSEC_BIN]   (default: target/release/ksec)
# Prints a Markdown table; no timing assertions anywhere.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KSEC=${1:-$ROOT/target/release/ksec}
[ -x "$KSEC" ] || (cd "$ROOT" && cargo build --release --bin ksec)
"$ROOT/scripts/test-deps.sh"
export PATH="$ROOT/.test-deps/venv/bin:$PATH" SOPS_DISABLE_VERSION_CHECK=1
command -v hyperfine >/dev/null || { apt-get update -q >/dev/null; apt-get install -y -q hyperfine >/dev/null; }
N=${N:-1000}
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
cd "$W"
age-keygen -o key.txt 2>/dev/null; PUB=$(age-keygen -y key.txt)
export SOPS_AGE_KEY_FILE=$W/key.txt
secret() { printf 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: s%s\n  namespace: prod\n  labels: {app: shop}\ntype: Opaque\nstringData:\n  username: user%s\n  password: pw-%s-%s\n  url: postgres://db%s:5432/app\n' "$1" "$1" "$1" "$RANDOM" "$1"; }
secret one > one.yaml
"$KSEC" encrypt --age "$PUB" one.yaml > one.enc.yaml
echo "## decrypt one Secret manifest (hyperfine, mean of runs)"
hyperfine -N --warmup 5 --runs 50 --export-json dec.json \
  "$KSEC decrypt one.enc.yaml" \
  "sops decrypt one.enc.yaml" >/dev/null
python3 - dec.json <<'PY'
import json,sys
r=json.load(open(sys.argv[1]))["results"]
k=r[0]["mean"]; s=r[1]["mean"]
print(f"| ksec decrypt | {k*1000:.2f} ms |\n| sops decrypt | {s*1000:.2f} ms |\n| ratio sops/ksec | {s/k:.1f}x |")
PY
echo "## decrypt one Secret manifest, PGP recipient (both through gpg)"
# A throw-away GnuPG home (short path: the agent socket length is limited)
# with one passphrase-less key; its agent is killed on exit.
export GNUPGHOME=$(mktemp -d /tmp/kgb.XXXXXX)
trap 'gpgconf --kill gpg-agent 2>/dev/null; rm -rf "$W" "$GNUPGHOME"' EXIT
gpg --batch --passphrase '' --quick-gen-key "bench <bench@example.com>" futuredefault default never 2>/dev/null
FP=$(gpg --with-colons --list-keys 2>/dev/null | awk -F: '/^fpr:/ {print $10; exit}')
"$KSEC" encrypt --pgp "$FP" one.yaml > one.pgp.yaml
hyperfine -N --warmup 5 --runs 50 --export-json pgp.json \
  "$KSEC decrypt one.pgp.yaml" \
  "sops decrypt one.pgp.yaml" >/dev/null
python3 - pgp.json <<'PY'
import json,sys
r=json.load(open(sys.argv[1]))["results"]
k=r[0]["mean"]; s=r[1]["mean"]
print(f"| ksec decrypt (PGP) | {k*1000:.2f} ms |\n| sops decrypt (PGP) | {s*1000:.2f} ms |\n| ratio sops/ksec | {s/k:.1f}x |")
PY
echo "## encrypt one Secret manifest"
hyperfine -N --warmup 5 --runs 50 --export-json enc.json \
  "$KSEC encrypt --age $PUB one.yaml" \
  "sops encrypt --encrypted-regex ^(data|stringData)\$ --age $PUB one.yaml" >/dev/null
python3 - enc.json <<'PY'
import json,sys
r=json.load(open(sys.argv[1]))["results"]
k=r[0]["mean"]; s=r[1]["mean"]
print(f"| ksec encrypt | {k*1000:.2f} ms |\n| sops encrypt | {s*1000:.2f} ms |\n| ratio sops/ksec | {s/k:.1f}x |")

PY
if command -v rops >/dev/null; then
  # rops refuses a file argument when stdin is not a terminal: feed it stdin.
  # (Debian's hyperfine has no --input: go through the shell, whose spawn time hyperfine subtracts)
  hyperfine --warmup 5 --runs 50 --export-json rops.json \
    "rops encrypt -f yaml --encrypted-regex '^(data|stringData)\$' --age $PUB < one.yaml" >/dev/null
  python3 - enc.json rops.json <<'PY'
import json,sys
k=json.load(open(sys.argv[1]))["results"][0]["mean"]; r=json.load(open(sys.argv[2]))["results"][0]["mean"]
print(f"| rops-cli encrypt | {r*1000:.2f} ms |\n| ratio rops/ksec | {r/k:.1f}x |")
PY
fi
echo "## encrypt a tree of $N Secret manifests"
for t in ksec sops rops; do mkdir -p "tree-$t"; for i in $(seq 1 "$N"); do d="tree-$t/app$((i % 50))"; mkdir -p "$d"; secret "$i" > "$d/secret-$i.yaml"; done; done
t0=$(date +%s.%N); "$KSEC" encrypt -i --age "$PUB" tree-ksec >/dev/null 2>&1; t1=$(date +%s.%N)
K=$(echo "$t1 - $t0" | bc)
t0=$(date +%s.%N)
find tree-sops -name '*.yaml' -print0 | while IFS= read -r -d '' f; do sops encrypt -i --encrypted-regex '^(data|stringData)$' --age "$PUB" "$f"; done
t1=$(date +%s.%N); S=$(echo "$t1 - $t0" | bc)
echo "| ksec, one process | ${K} s |"
echo "| sops, loop of $N | ${S} s |"
echo "| ratio | $(echo "scale=1; $S / $K" | bc)x |"
if command -v rops >/dev/null; then
  t0=$(date +%s.%N)
  find tree-rops -name '*.yaml' -print0 | while IFS= read -r -d '' f; do rops encrypt -f yaml --encrypted-regex '^(data|stringData)$' --age "$PUB" < "$f" > "$f.enc" && mv "$f.enc" "$f"; done
  t1=$(date +%s.%N); R=$(echo "$t1 - $t0" | bc)
  echo "| rops-cli, loop of $N | ${R} s |"
else
  echo "| rops-cli | not installed (cargo install rops-cli) |"
fi
# correctness spot check: sops opens a ksec file from the tree
f=$(find tree-ksec -name "*.yaml" -print -quit); sops decrypt "$f" >/dev/null && echo "(sops decrypts ksec's tree output: ok)"

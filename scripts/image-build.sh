#!/usr/bin/env bash
# Builds the controller image offline (README, "An image"):
#   scripts/image-build.sh [TAG]        default TAG: localhost/ksec:0.1.0
# Builds ksec in release mode, stages it with the shared libraries it links
# and the CA bundle, builds Containerfile with buildah (podman if buildah is
# missing; vfs storage and chroot isolation, so it needs no daemon and works
# in an unprivileged build container), then starts the image once:
# `ksec controller --help` must answer. Push with
#   buildah push TAG docker://REGISTRY/ksec:0.1.0
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TAG=${1:-localhost/ksec:0.1.0}
cd "$ROOT"
if command -v buildah >/dev/null; then
  B=(buildah --storage-driver vfs)
  BUILD=("${B[@]}" bud --isolation chroot)
elif command -v podman >/dev/null; then
  B=(podman --storage-driver vfs)
  BUILD=("${B[@]}" build --isolation chroot)
else
  echo "image-build: needs buildah or podman (apt-get install buildah)" >&2
  exit 2
fi
cargo build --release --locked --bin ksec
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/ksec
STAGE=$(mktemp -d "${TMPDIR:-/tmp}/ksec-image.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
install -D -m 0755 "$BIN" "$STAGE/usr/local/bin/ksec"
# The dynamic loader and every library ldd resolves, at their own paths.
for lib in $(ldd "$BIN" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
  cp --parents -L "$lib" "$STAGE"
done
cp --parents -L /etc/ssl/certs/ca-certificates.crt "$STAGE"
mkdir -p "$STAGE/tmp"
"${BUILD[@]}" -f "$ROOT/Containerfile" -t "$TAG" "$STAGE"
# Smoke: the image starts and answers, as its non-root user.
if [ "${B[0]}" = buildah ]; then
  CTR=$("${B[@]}" from "$TAG")
  trap '"${B[@]}" rm "$CTR" >/dev/null; rm -rf "$STAGE"' EXIT
  "${B[@]}" run --isolation chroot "$CTR" -- /usr/local/bin/ksec controller --help | head -3
else
  "${B[@]}" run --rm "$TAG" controller --help | head -3
fi
echo "image-build: $TAG" >&2

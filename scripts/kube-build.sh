#!/usr/bin/env bash
# Builds kube-apiserver and kube-controller-manager v1.20.2 from Debian's
# `kubernetes` source package (offline: Debian's archive only), with the
# required reflect2 fix, into $KSEC_KUBE_BIN (default .test-deps/kube).
# Cached: a second run only checks. Recipe: ../shared/spec/test-infra.md §1.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${KSEC_KUBE_BIN:-$ROOT/.test-deps/kube}
if [ -x "$OUT/kube-apiserver" ] && [ -x "$OUT/kube-controller-manager" ]; then exit 0; fi
mkdir -p "$OUT"
WORK=${WORK:-$ROOT/.test-deps/kube-src}
mkdir -p "$WORK/apt/lists/partial" "$WORK/apt/cache/archives/partial" "$WORK/apt/sources.list.d"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q golang-go golang-github-modern-go-reflect2-dev dpkg-dev make rsync jq etcd-server etcd-client >/dev/null
sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources > "$WORK/apt/sources.list.d/debian-src.sources"
AO=(-o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$WORK/apt/sources.list.d"
    -o Dir::State::Lists="$WORK/apt/lists" -o Dir::Cache="$WORK/apt/cache")
if ! ls -d "$WORK"/kubernetes-*/ >/dev/null 2>&1; then
  apt-get "${AO[@]}" update -q >/dev/null
  (cd "$WORK" && apt-get "${AO[@]}" source -q kubernetes >/dev/null 2>&1)
fi
SRC=$(ls -d "$WORK"/kubernetes-*/ | head -1); cd "$SRC"
# vendored reflect2 v1.0.1 segfaults under Go >= 1.18; use Debian's 1.0.2
rm -rf vendor/github.com/modern-go/reflect2
cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 vendor/github.com/modern-go/reflect2
find vendor/github.com/modern-go/reflect2 -name '*_test.go' -delete
mkdir -p .go/src/k8s.io && ln -sfn ../../.. .go/src/k8s.io/kubernetes
for what in kube-apiserver kube-controller-manager; do
  if [ ! -x "$OUT/$what" ]; then
    env GOPATH="$SRC/.go" CGO_ENABLED=0 GOPROXY=off GOFLAGS= HOME="$WORK/home" GOCACHE="$WORK/gocache" make WHAT=cmd/$what >/dev/null
    install -m 0755 "_output/bin/$what" "$OUT/$what"
  fi
done
echo "kube binaries in $OUT" >&2

#!/usr/bin/env bash
# kube-up.sh DIR — starts a real, throwaway Kubernetes control plane for the
# tests and benchmarks: etcd + kube-apiserver (token auth, RBAC) +
# kube-controller-manager (so Deployments really get ReplicaSets and Pods),
# all on 127.0.0.1 free ports, state under DIR. Writes DIR/kubeconfig with
# two contexts: `admin` (system:masters, the default) and `limited` (a user
# with no permissions until a test grants some), waits until the API server
# is ready and the controllers run, then prints the environment to use.
# Stop it with scripts/kube-down.sh DIR. Nothing runs pods (no kubelet,
# no scheduler): the tests play the kubelet where they need to.
# Binaries: scripts/kube-build.sh (cached in .test-deps/kube).
#
# For resilience tests: KSEC_KUBE_APISERVER_ARGS adds API server flags (e.g.
# --watch-cache=false, so a compacted resourceVersion reaches watchers as
# 410 Gone); DIR/apiserver.cmd holds the API server's command line and
# DIR/etcd.url etcd's client URL (for etcdctl compact/defrag);
# `kube-up.sh --restart-apiserver DIR` kills the API server (SIGKILL) and
# starts it again on the same port, and `--kill-apiserver DIR` /
# `--start-apiserver DIR` do the two halves.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)

wait_apiserver() {
  local d=$1 port
  port=$(sed -n 's#.*server: https://127.0.0.1:\([0-9]*\).*#\1#p' "$d/kubeconfig")
  for _ in $(seq 1 300); do
    if ! kill -0 "$(cat "$d/kube-apiserver.pid")" 2>/dev/null; then break; fi
    if [ -f "$d/certs/apiserver.crt" ] && \
       [ "$(curl -s --cacert "$d/certs/apiserver.crt" -H 'Authorization: Bearer admin-token' \
            "https://127.0.0.1:$port/readyz" 2>/dev/null)" = ok ]; then return 0; fi
    sleep 0.2
  done
  echo "kube-up: kube-apiserver did not become ready; see $d/log/kube-apiserver.log:" >&2
  tail -20 "$d/log/kube-apiserver.log" >&2
  return 1
}

case "${1:-}" in
  --kill-apiserver|--start-apiserver|--restart-apiserver)
    D=$(cd "${2:?usage: kube-up.sh $1 DIR}" && pwd)
    if [ "$1" != --start-apiserver ]; then
      pid=$(cat "$D/kube-apiserver.pid")
      kill -KILL "$pid" 2>/dev/null || true
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    if [ "$1" != --kill-apiserver ]; then
      bash "$D/apiserver.cmd" >>"$D/log/kube-apiserver.log" 2>&1 &
      echo $! > "$D/kube-apiserver.pid"
      wait_apiserver "$D"
    fi
    exit 0 ;;
esac

D=${1:?usage: kube-up.sh DIR}
mkdir -p "$D"
D=$(cd "$D" && pwd)
BIN=${KSEC_KUBE_BIN:-$ROOT/.test-deps/kube}
ETCD=$(command -v etcd || echo /usr/bin/etcd)
for b in "$BIN/kube-apiserver" "$BIN/kube-controller-manager" "$ETCD"; do
  [ -x "$b" ] || { echo "kube-up: $b is missing; run scripts/kube-build.sh" >&2; exit 1; }
done

# Three free loopback ports (etcd client, etcd peer, API server).
read -r P_ETCD P_PEER P_API < <(python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
)

mkdir -p "$D/etcd" "$D/certs" "$D/log"
openssl genrsa -out "$D/sa.key" 2048 2>/dev/null
openssl rsa -in "$D/sa.key" -pubout -out "$D/sa.pub" 2>/dev/null
printf 'admin-token,admin,1,"system:masters"\nlimited-token,limited,2,\n' > "$D/tokens.csv"

"$ETCD" --data-dir "$D/etcd" --listen-client-urls "http://127.0.0.1:$P_ETCD" \
  --advertise-client-urls "http://127.0.0.1:$P_ETCD" --listen-peer-urls "http://127.0.0.1:$P_PEER" \
  --initial-advertise-peer-urls "http://127.0.0.1:$P_PEER" \
  --initial-cluster "default=http://127.0.0.1:$P_PEER" \
  >"$D/log/etcd.log" 2>&1 &
echo $! > "$D/etcd.pid"

echo "http://127.0.0.1:$P_ETCD" > "$D/etcd.url"
# The API server's command line, so a test can restart it on the same port.
{
  printf 'exec'
  printf ' %q' "$BIN/kube-apiserver" --etcd-servers="http://127.0.0.1:$P_ETCD" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$P_API" --insecure-port=0 \
    --cert-dir="$D/certs" --token-auth-file="$D/tokens.csv" --authorization-mode=RBAC \
    --service-account-issuer=https://kubernetes.default.svc --service-account-key-file="$D/sa.pub" \
    --service-account-signing-key-file="$D/sa.key" --service-cluster-ip-range=10.96.0.0/24 \
    --endpoint-reconciler-type=none --disable-admission-plugins=ServiceAccount \
    ${KSEC_KUBE_APISERVER_ARGS:-}
  printf '\n'
} > "$D/apiserver.cmd"
bash "$D/apiserver.cmd" >"$D/log/kube-apiserver.log" 2>&1 &
echo $! > "$D/kube-apiserver.pid"

cat > "$D/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: ksec-test
  cluster:
    server: https://127.0.0.1:$P_API
    certificate-authority: $D/certs/apiserver.crt
users:
- name: admin
  user: {token: admin-token}
- name: limited
  user: {token: limited-token}
contexts:
- name: admin
  context: {cluster: ksec-test, user: admin, namespace: default}
- name: limited
  context: {cluster: ksec-test, user: limited, namespace: default}
current-context: admin
EOF

if ! wait_apiserver "$D"; then
  "$ROOT/scripts/kube-down.sh" "$D" || true
  exit 1
fi

# The controller manager talks to the API server as admin.
"$BIN/kube-controller-manager" --kubeconfig="$D/kubeconfig" --leader-elect=false \
  --port=0 --secure-port=0 --service-account-private-key-file="$D/sa.key" \
  --root-ca-file="$D/certs/apiserver.crt" --use-service-account-credentials=false \
  --controllers='*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle,-service,-route,-attachdetach,-persistentvolume-binder,-persistentvolume-expander,-pvc-protection,-pv-protection,-ttl,-csrsigning,-csrapproving,-csrcleaner' \
  >"$D/log/kube-controller-manager.log" 2>&1 &
echo $! > "$D/kube-controller-manager.pid"

# Controllers are up once the service-account controller has made `default`.
ready=0
for _ in $(seq 1 300); do
  if ! kill -0 "$(cat "$D/kube-controller-manager.pid")" 2>/dev/null; then break; fi
  if curl -sf --cacert "$D/certs/apiserver.crt" -H 'Authorization: Bearer admin-token' \
       "https://127.0.0.1:$P_API/api/v1/namespaces/default/serviceaccounts/default" >/dev/null 2>&1; then
    ready=1; break
  fi
  sleep 0.2
done
if [ $ready != 1 ]; then
  echo "kube-up: kube-controller-manager did not start; see $D/log/kube-controller-manager.log:" >&2
  tail -20 "$D/log/kube-controller-manager.log" >&2
  "$ROOT/scripts/kube-down.sh" "$D" || true
  exit 1
fi
echo "kube-up: API server https://127.0.0.1:$P_API ready (state in $D)" >&2
echo "export KSEC_TEST_KUBECONFIG=$D/kubeconfig"

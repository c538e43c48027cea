#!/usr/bin/env bash
# benches/rotation.sh — the rotation handler (`ksec controller --watch-secrets`)
# at scale, on a private control plane from scripts/kube-up.sh (real
# kube-apiserver, etcd, kube-controller-manager):
#
#  (i)   N watched Secrets (opted in with ksec.io/watch: "true") in NS
#        namespaces, one Deployment each (0 replicas: no kubelet here, so a
#        rollout completes once the controller manager observes it);
#        ROTATE of them rotated at once (one `kubectl apply --server-side`).
#        Time from the last Secret write to every consumer rolled and verified
#        (the controller's own verified counter), and API requests per rotation
#        (the API server's apiserver_request_total);
#  (ii)  the runbook's alternative: `kubectl rollout restart` then
#        `kubectl rollout status` for the same ROTATE Deployments, one by one;
#  (iii) controller RSS (VmRSS, VmHWM) with 0, 5,000 and 10,000 unrelated
#        Secrets (1 KiB each) created in its namespaces.
#
#   CARGO_TARGET_DIR=/tmp/ksec-rel cargo build --release --bin ksec
#   KSEC=/tmp/ksec-rel/release/ksec benches/rotation.sh [N] [NS] [ROTATE]
# (LOG=FILE keeps the controller's log; RUST_LOG sets its level.)
set -euo pipefail
N=${1:-1000}
NS=${2:-100}
ROTATE=${3:-200}
KSEC=${KSEC:-/tmp/ksec-rel/release/ksec}
KUBECTL=${KUBECTL:-/usr/bin/kubectl}
# shellcheck source=benches/control-plane.sh
. "$(dirname "$0")/control-plane.sh"

mkdir -p "$WORK/recipients"
age-keygen -o "$WORK/key.txt" 2>/dev/null
printf 'namespaces: ["rot-*"]\nage:\n  - %s\n' "$(age-keygen -y "$WORK/key.txt")" > "$WORK/recipients/bench.yaml"

# Namespaces, Secrets and Deployments as one List each (python writes them).
objects() { # what round -> JSON List on stdout
  python3 - "$1" "$2" "$N" "$NS" "$ROTATE" <<'EOF'
import base64, json, os, sys
what, rnd, n, ns, rot = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
nsname = lambda i: f"rot-{i % ns:03d}"
items = []
if what == "namespaces":
    items = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"rot-{i:03d}"}} for i in range(ns)]
elif what in ("secrets", "rotate"):
    count = n if what == "secrets" else rot
    items = [{"apiVersion": "v1", "kind": "Secret",
              "metadata": {"name": f"s{i}", "namespace": nsname(i), "annotations": {"ksec.io/watch": "true"}},
              "stringData": {"username": f"user{i}", "password": f"pw-{rnd}-{i}-{os.urandom(8).hex()}"}}
             for i in range(count)]
elif what == "deployments":
    items = [{"apiVersion": "apps/v1", "kind": "Deployment",
              "metadata": {"name": f"d{i}", "namespace": nsname(i)},
              "spec": {"replicas": 0, "selector": {"matchLabels": {"app": f"d{i}"}},
                       "template": {"metadata": {"labels": {"app": f"d{i}"}},
                                    "spec": {"containers": [{"name": "app", "image": "example.invalid/app:1",
                                        "env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": f"s{i}", "key": "password"}}}]}]}}}}
             for i in range(n)]
elif what == "unrelated":
    a, b = map(int, rnd.split(":"))
    items = [{"apiVersion": "v1", "kind": "Secret",
              "metadata": {"name": f"unrelated-{i}", "namespace": nsname(i)},
              "data": {"blob": base64.b64encode(os.urandom(1024)).decode()}} for i in range(a, b)]
json.dump({"apiVersion": "v1", "kind": "List", "items": items}, sys.stdout)
EOF
}
put() { objects "$1" "$2" > "$WORK/$1.json"; k apply --server-side --force-conflicts -f "$WORK/$1.json" >/dev/null; }
put namespaces 0
put secrets 0
put deployments 0
# The controller manager writes a ReplicaSet and a status per Deployment at
# its client rate (kube-api-qps 20 by default): both measurements start once
# it has caught up, so neither pays for the setup.
settled() {
  k get deploy -A -o json | python3 -c 'import json,sys; d=json.load(sys.stdin)["items"]; print(sum(1 for x in d if x.get("status",{}).get("observedGeneration",0) >= x["metadata"]["generation"]))'
}
until [ "$(settled)" -ge "$N" ]; do sleep 1; done

requests() { # API requests served so far, all clients
  curl -s --cacert "$KUBE/certs/apiserver.crt" -H "Authorization: Bearer admin-token" "$API/metrics" |
    awk -F'[{}]' '/^apiserver_request_total\{/ { t += $3 } END { print t }'
}

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
RUST_LOG=${RUST_LOG:-warn} "$KSEC" controller --kubeconfig "$KC" --env bench --recipients-dir "$WORK/recipients" \
  --identity "$WORK/key.txt" --metrics-addr "127.0.0.1:$PORT" --rollout-timeout 120s \
  --watch-secrets --watch-debounce 2s --eso-interval 0 >"$WORK/controller.log" 2>&1 &
CTL_PID=$!
metric() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -v m="$1" 'index($0, m) == 1 { s += $NF } END { print s + 0 }'; }
until [ "$(metric ksec_controller_watched_secrets)" -ge "$N" ] 2>/dev/null; do
  kill -0 "$CTL_PID" || { cat "$WORK/controller.log"; exit 1; }
  sleep 0.2
done
sleep 3 # first sight rolls nothing; let the start settle

# (i) rotate ROTATE Secrets at once.
objects rotate 1 > "$WORK/rotate.json"
R0=$(requests)
k apply --server-side --force-conflicts -f "$WORK/rotate.json" >/dev/null
T0=$(now)
until [ "$(metric 'ksec_controller_rotation_rollouts_total{')" -ge "$ROTATE" ] 2>/dev/null; do
  kill -0 "$CTL_PID" || { cat "$WORK/controller.log"; exit 1; }
  sleep 0.05
done
T_CTL=$(echo "$(now) - $T0" | bc)
R1=$(requests)
VERIFIED=$(metric 'ksec_controller_rotation_rollouts_total{namespace="rot-000",result="verified"}')
ALL_VERIFIED=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^ksec_controller_rotation_rollouts_total\{.*result="verified"/ { s += $NF } END { print s + 0 }')
ROLLED=$(k get deploy -A -o json | python3 -c 'import json,sys; d=json.load(sys.stdin)["items"]; print(sum(1 for x in d if (x["spec"]["template"]["metadata"].get("annotations") or {})))')
sleep 5
EXTRA=$(metric 'ksec_controller_rotation_rollouts_total{')

# (ii) the runbook's loop over the same Deployments, once all have settled.
until [ "$(settled)" -ge "$N" ]; do sleep 1; done
s=$(now)
for ((i = 0; i < ROTATE; i++)); do
  k -n "$(printf 'rot-%03d' $((i % NS)))" rollout restart "deploy/d$i" >/dev/null
done
for ((i = 0; i < ROTATE; i++)); do
  k -n "$(printf 'rot-%03d' $((i % NS)))" rollout status "deploy/d$i" --timeout 120s >/dev/null
done
T_LOOP=$(echo "$(now) - $s" | bc)

# (iii) RSS with unrelated Secrets in the watched namespaces.
rss() { awk '/^VmRSS|^VmHWM/ {printf "%s %.1f MiB  ", $1, $2/1024}' "/proc/$CTL_PID/status"; }
RSS0=$(rss)
put unrelated 0:5000; sleep 5
RSS5=$(rss)
put unrelated 5000:10000; sleep 5
RSS10=$(rss)

echo "N=$N watched Secrets in $NS namespaces, $ROTATE rotated at once"
printf '%-62s %8.2f s\n' "last Secret write -> $ROTATE consumers rolled and verified" "$T_CTL"
printf '%-62s %8.2f s\n' "kubectl rollout restart + rollout status loop ($ROTATE)" "$T_LOOP"
printf 'loop / controller: %.1fx\n' "$(echo "$T_LOOP / $T_CTL" | bc -l)"
printf 'rollouts counted %s (verified %s, of which rot-000 %s); Deployments with a content hash %s; after 5 s more: %s (no second rollout)\n' \
  "$ROTATE" "$ALL_VERIFIED" "$VERIFIED" "$ROLLED" "$EXTRA"
printf 'API requests during the rotation: %s (%.2f per rotated Secret, including the %s writes of the rotation itself)\n' \
  "$((R1 - R0))" "$(echo "($R1 - $R0) / $ROTATE" | bc -l)" "$ROTATE"
echo "RSS with 0 unrelated Secrets:      $RSS0"
echo "RSS with 5,000 unrelated Secrets:  $RSS5"
echo "RSS with 10,000 unrelated Secrets: $RSS10"

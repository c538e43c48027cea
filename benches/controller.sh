#!/usr/bin/env bash
# benches/controller.sh — `ksec controller` at scale, on a private control
# plane from scripts/kube-up.sh (real kube-apiserver, etcd, controller manager):
#
#  (i)   N EncryptedSecrets (age recipient) in NS namespaces: time from
#        controller start to all Ready, vs one `kubectl apply --server-side -f`
#        of the equivalent N plaintext Secrets into fresh namespaces (the API-bound limit);
#  (ii)  controller RSS (VmRSS, VmHWM) with 0, 5,000 and 10,000 unrelated
#        Secrets (1 KiB each) created in its namespaces;
#  (iii) latency of a spec change of one EncryptedSecret → Secret updated and
#        the consumer's rollout triggered (pod-template annotation changed), over ROUNDS changes.
#
#   CARGO_TARGET_DIR=/tmp/ksec-rel cargo build --release
#   KSEC=/tmp/ksec-rel/release/ksec benches/controller.sh [N] [NS] [ROUNDS]
set -euo pipefail
N=${1:-1000}
NS=${2:-100}
ROUNDS=${3:-20}
KSEC=${KSEC:-/tmp/ksec-rel/release/ksec}
KUBECTL=${KUBECTL:-/usr/bin/kubectl}
# shellcheck source=benches/control-plane.sh
. "$(dirname "$0")/control-plane.sh"
PLAIN=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d)
CLEAN+=("$PLAIN")

mkdir -p "$WORK/repo/.git" "$WORK/repo/recipients" "$WORK/repo/src"
age-keygen -o "$WORK/key.txt" 2>/dev/null
PUB=$(age-keygen -y "$WORK/key.txt")
printf 'namespaces: ["bench-*"]\nage:\n  - %s\n' "$PUB" > "$WORK/repo/recipients/bench.yaml"
export SOPS_AGE_KEY_FILE="$WORK/key.txt"

namespaces() { # prefix
  for ((i = 0; i < NS; i++)); do
    printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s-%03d\n---\n' "$1" "$i"
  done | k apply -f - >/dev/null
}
secret() { # i ns
  printf 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: s%d\n  namespace: %s\ntype: Opaque\nstringData:\n  username: user%d\n  password: pw-%d-%s\n  url: postgres://db%d.example:5432/app\n' \
    "$1" "$2" "$1" "$1" "$RANDOM$RANDOM" "$1"
}
namespaces bench
namespaces plain
for ((i = 0; i < N; i++)); do
  secret "$i" "$(printf 'bench-%03d' $((i % NS)))" > "$WORK/repo/src/s$i.yaml"
  secret "$i" "$(printf 'plain-%03d' $((i % NS)))" > "$PLAIN/s$i.yaml"
done
"$KSEC" encrypt -i "$WORK/repo/src" >/dev/null 2>&1
"$KSEC" controller crd | k apply -f - >/dev/null
k wait --for condition=established crd/encryptedsecrets.ksec.io >/dev/null

# EncryptedSecret manifests (one file): spec.encrypted = the encrypted file, verbatim.
python3 - "$WORK/repo/src" "$WORK/crs.json" <<'EOF'
import json, os, re, sys
src, out = sys.argv[1], sys.argv[2]
items = []
for f in sorted(os.listdir(src)):
    text = open(os.path.join(src, f)).read()
    ns = re.search(r"^\s+namespace: (\S+)$", text, re.M).group(1)
    name = re.search(r"^\s+name: (\S+)$", text, re.M).group(1)
    items.append({"apiVersion": "ksec.io/v1alpha1", "kind": "EncryptedSecret",
                  "metadata": {"name": name, "namespace": ns}, "spec": {"encrypted": text}})
json.dump({"apiVersion": "v1", "kind": "List", "items": items}, open(out, "w"))
EOF
k apply --server-side -f "$WORK/crs.json" >/dev/null

# The consumer for (iii): a Deployment with 0 replicas (no kubelet here), so
# its rollout completes as soon as the controller manager observes it.
k apply -f - >/dev/null <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: lat, namespace: bench-000}
spec:
  replicas: 0
  selector: {matchLabels: {app: lat}}
  template:
    metadata: {labels: {app: lat}}
    spec:
      containers:
        - name: app
          image: example.invalid/app:1
          env: [{name: P, valueFrom: {secretKeyRef: {name: s0, key: password}}}]
EOF

# (i) baseline: one kubectl apply --server-side of the plaintext Secrets.
s=$(now)
k apply --server-side -f "$PLAIN" >/dev/null
T_KUBECTL=$(echo "$(now) - $s" | bc)
rm -rf "$PLAIN"

# API requests by verb and resource, from the API server's own counter.
requests() {
  curl -s --cacert "$KUBE/certs/apiserver.crt" -H "Authorization: Bearer admin-token" "$API/metrics" |
    awk -F'[{}]' '/^apiserver_request_total\{/ {
      split($2, l, ","); v = ""; r = ""; sr = "";
      for (i in l) { split(l[i], kv, "="); gsub(/"/, "", kv[2]);
        if (kv[1] == "verb") v = kv[2]; if (kv[1] == "resource") r = kv[2]; if (kv[1] == "subresource" && kv[2] != "") sr = "/" kv[2] }
      n[v " " r sr] += $3 } END { for (k in n) print k, n[k] }' | sort
}

# (i) the controller, cluster-wide for environment `bench`.
REQ0=$(requests)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
s=$(now)
RUST_LOG=warn "$KSEC" controller --kubeconfig "$KC" --env bench --recipients-dir "$WORK/repo/recipients" \
  --identity "$WORK/key.txt" --metrics-addr "127.0.0.1:$PORT" --rollout-timeout 60s \
  >"$WORK/controller.log" 2>&1 &
CTL_PID=$!
# One ciphertext-age series per EncryptedSecret synced successfully (these have no consumers: Ready).
synced() { curl -s "http://127.0.0.1:$PORT/metrics" | grep -c '^ksec_controller_ciphertext_age_seconds{' || true; }
until [ "$(synced)" -ge "$N" ]; do
  kill -0 "$CTL_PID" || { cat "$WORK/controller.log"; exit 1; }
  sleep 0.05
done
T_CTL=$(echo "$(now) - $s" | bc)
REQ1=$(requests)
READY=$(k get encryptedsecrets -A -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c True)
SECRETS=$(k get secrets -A -l ksec.io/encryptedsecret --no-headers | wc -l)

# (ii) RSS with unrelated Secrets in its namespaces.
rss() { awk '/^VmRSS|^VmHWM/ {printf "%s %.1f MiB  ", $1, $2/1024}' "/proc/$CTL_PID/status"; }
RSS0=$(rss)
unrelated() { # from to
  python3 - "$1" "$2" "$NS" > "$WORK/unrelated.json" <<'EOF'
import base64, json, os, sys
a, b, ns = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
items = [{"apiVersion": "v1", "kind": "Secret",
          "metadata": {"name": f"unrelated-{i}", "namespace": f"bench-{i % ns:03d}"},
          "data": {"blob": base64.b64encode(os.urandom(1024)).decode()}} for i in range(a, b)]
json.dump({"apiVersion": "v1", "kind": "List", "items": items}, sys.stdout)
EOF
  k apply --server-side -f "$WORK/unrelated.json" >/dev/null
  sleep 5
}
unrelated 0 5000
RSS5=$(rss)
unrelated 5000 10000
RSS10=$(rss)

# (iii) latency: ksec set → apply the CR → poll the Secret and the Deployment.
python3 - "$API" "$KUBE/certs/apiserver.crt" "$KSEC" "$WORK/repo/src/s0.yaml" "$ROUNDS" <<'EOF'
import json, ssl, subprocess, sys, time, urllib.request
api, ca, ksec, f, rounds = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
ctx = ssl.create_default_context(cafile=ca)
H = {"Authorization": "Bearer admin-token"}
def req(method, path, body=None, ctype=None):
    h = dict(H)
    if ctype: h["Content-Type"] = ctype
    r = urllib.request.Request(api + path, data=body, method=method, headers=h)
    with urllib.request.urlopen(r, context=ctx) as resp:
        return json.load(resp)
def state():
    s = req("GET", "/api/v1/namespaces/bench-000/secrets/s0")
    d = req("GET", "/apis/apps/v1/namespaces/bench-000/deployments/lat")
    return (s["metadata"].get("annotations", {}).get("ksec.io/content-hash"),
            (d["spec"]["template"]["metadata"].get("annotations") or {}).get("secret.ksec.io/s0"))
secret_lat, rollout_lat = [], []
for r in range(rounds):
    subprocess.run([ksec, "set", f, '["stringData"]["password"]', json.dumps(f"rotated-{r}-{time.time()}")],
                   check=True, stdout=subprocess.DEVNULL)
    before = state()
    cr = {"apiVersion": "ksec.io/v1alpha1", "kind": "EncryptedSecret",
          "metadata": {"name": "s0", "namespace": "bench-000"}, "spec": {"encrypted": open(f).read()}}
    t0 = time.monotonic()
    req("PATCH", "/apis/ksec.io/v1alpha1/namespaces/bench-000/encryptedsecrets/s0?fieldManager=bench&force=true",
        json.dumps(cr).encode(), "application/apply-patch+yaml")
    ts = tr = None
    while tr is None or ts is None:
        h, t = state()
        now = time.monotonic() - t0
        if ts is None and h != before[0]: ts = now
        if tr is None and t is not None and t != before[1] and t == h: tr = now
        if now > 60: sys.exit("no change within 60 s")
        time.sleep(0.01)
    secret_lat.append(ts); rollout_lat.append(tr)
    time.sleep(0.5)
def pct(v, p):
    v = sorted(v); return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]
for name, v in (("secret updated", secret_lat), ("rollout triggered", rollout_lat)):
    print(f"latency {name:18s} median {pct(v,50)*1000:7.0f} ms  p95 {pct(v,95)*1000:7.0f} ms  max {max(v)*1000:7.0f} ms  (n={len(v)})")
EOF

echo "N=$N namespaces=$NS  Ready=$READY generated Secrets=$SECRETS"
printf '%-58s %8.2f s\n' "controller start -> all $N EncryptedSecrets Ready" "$T_CTL"
printf '%-58s %8.2f s\n' "kubectl apply --server-side -f (plaintext, fresh namespaces)" "$T_KUBECTL"
printf 'controller vs kubectl limit: %.2fx (target <= 2x)\n' "$(echo "$T_CTL / $T_KUBECTL" | bc -l)"
echo "API requests while the controller synced (verb resource: count, per EncryptedSecret):"
join -a2 -e0 -o 0,1.2,2.2 <(echo "$REQ0" | sed 's/ \([0-9.e+]*\)$/|\1/; s/ /_/g; s/|/ /') \
  <(echo "$REQ1" | sed 's/ \([0-9.e+]*\)$/|\1/; s/ /_/g; s/|/ /') |
  awk -v n="$N" '{ d = $3 - $2; if (d >= n / 10) printf "  %-40s %7d  %5.2f\n", $1, d, d / n }'
echo "RSS with     0 unrelated Secrets: $RSS0"
echo "RSS with  5000 unrelated Secrets: $RSS5"
echo "RSS with 10000 unrelated Secrets: $RSS10"

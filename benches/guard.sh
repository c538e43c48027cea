#!/usr/bin/env bash
# Guard benchmark (issue 4). Not a test: prints Markdown, asserts nothing.
#  1. A generated repository of 5,000 manifests with a commit staging 50:
#     `ksec check --staged` vs `detect-secrets-hook` and
#     `kingfisher scan --staged --no-validate` on the same index.
#  2. A history of 2,000 commits: `ksec scan --history` vs `kingfisher scan`.
#  3. How many corpus cases (tests/fixtures/guard/expected.txt) each tool
#     judges right (BLOCK = flagged, anything else = not flagged).
# Usage: benches/guard.sh [KSEC_BIN]   (default: target/release/ksec)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KSEC=${1:-$ROOT/target/release/ksec}
[ -x "$KSEC" ] || (cd "$ROOT" && cargo build --release --bin ksec)
"$ROOT/scripts/test-deps.sh"
export PATH="$ROOT/.test-deps/venv/bin:$PATH"
command -v hyperfine >/dev/null || { apt-get update -q >/dev/null; apt-get install -y -q hyperfine >/dev/null; }
KF="kingfisher"
KF_FLAGS=(--no-validate --no-update-check)
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
FIX="$ROOT/tests/fixtures/guard"
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
gitq() { git -c user.email=b@example.com -c user.name=bench -c commit.gpgsign=false "$@"; }

echo "# Guard benchmark ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores)"
echo
echo "ksec: $("$KSEC" --version); $(detect-secrets --version | head -1 | sed 's/^/detect-secrets /'); $($KF --version 2>&1 | head -1)"
echo

# ---------------------------------------------------------------- 1. staged
R="$W/repo"; mkdir -p "$R"; cd "$R"; gitq init -q -b main
python3 - "$R" "$FIX/C02-regex-enc.yaml" <<'PY'
import os, random, sys
root, enc = sys.argv[1], open(sys.argv[2]).read()
random.seed(4)
for i in range(5000):
    d = os.path.join(root, f"apps/team{i % 50:02d}/svc{i:04d}")
    os.makedirs(d, exist_ok=True)
    k = i % 5
    if k == 0:
        body = enc.replace("name: db", f"name: db{i}")
        name = "secret.yaml"
    elif k == 1:
        body = f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg{i}\ndata:\n  LOG_LEVEL: info\n  FEATURE_X: \"true\"\n"
        name = "configmap.yaml"
    elif k == 2:
        body = f"apiVersion: v1\nkind: Service\nmetadata:\n  name: svc{i}\nspec:\n  ports:\n  - port: 80\n    targetPort: 8080\n  selector: {{app: svc{i}}}\n"
        name = "service.yaml"
    elif k == 3:
        body = f"apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- deployment.yaml\n"
        name = "kustomization.yaml"
    else:
        body = (f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: svc{i}\n  labels: {{app: svc{i}}}\nspec:\n  replicas: 2\n"
                f"  selector:\n    matchLabels: {{app: svc{i}}}\n  template:\n    metadata:\n      labels: {{app: svc{i}}}\n    spec:\n"
                f"      containers:\n      - name: app\n        image: registry.example.com/svc{i}:1.{i % 9}.0\n        env:\n        - name: DB_HOST\n          value: db.internal\n")
        name = "deployment.yaml"
    open(os.path.join(d, name), "w").write(body)
PY
gitq add -A >/dev/null; gitq commit -q --no-verify -m init
# Stage 50 changes: 48 edits of clean manifests, one plaintext Secret, one new ConfigMap.
STAGED=()
for f in $(git ls-files | awk 'NR % 100 == 7' | head -48); do echo "# touched" >> "$f"; STAGED+=("$f"); done
cp "$FIX/A02-plain-stringdata.yaml" apps/team00/leak.yaml; STAGED+=(apps/team00/leak.yaml)
cp "$FIX/E09-configmap-password.yaml" apps/team01/cm.yaml; STAGED+=(apps/team01/cm.yaml)
gitq add "${STAGED[@]}"
echo "Generated: $(git ls-files | wc -l) files committed, ${#STAGED[@]} staged."
detect-secrets scan --exclude-files '\.git/' > .secrets.baseline 2>/dev/null || true
echo
echo "## 1. Staged check (5,000-manifest repository, 50 staged files)"
echo
# Exit codes are 1/200 when the planted leak is found: ignore failures.
hyperfine -N -i --warmup 3 --runs 20 --export-json "$W/staged.json" \
  -n "ksec check --staged" "$KSEC check --staged" \
  -n "detect-secrets-hook (50 files)" "detect-secrets-hook --baseline .secrets.baseline ${STAGED[*]}" \
  -n "kingfisher scan --staged --no-validate" "$KF scan . --staged ${KF_FLAGS[*]}" >/dev/null 2>&1
python3 - "$W/staged.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
k = r[0]["mean"]
print("| tool | mean | min | vs ksec |\n|---|---|---|---|")
for x in r:
    print(f"| {x['command']} | {x['mean']*1000:.1f} ms | {x['min']*1000:.1f} ms | {x['mean']/k:.1f}x |")
PY
echo
echo "Finds the planted plaintext Secret (apps/team00/leak.yaml)?"
echo
printf '| tool | found |\n|---|---|\n'
found() { grep -q 'leak.yaml' <<<"$1" && echo yes || echo no; }
out_k=$("$KSEC" check --staged 2>&1 || true)
out_d=$(detect-secrets-hook --baseline .secrets.baseline "${STAGED[@]}" 2>&1 || true)
out_f=$($KF scan . --staged "${KF_FLAGS[@]}" 2>&1 || true)
printf '| ksec | %s |\n| detect-secrets-hook | %s |\n| kingfisher | %s |\n' "$(found "$out_k")" "$(found "$out_d")" "$(found "$out_f")"

echo
echo "## 1b. Whole tree (5,000 manifests): ksec check, ksec doctor, detect-secrets scan"
echo
hyperfine -N -i --warmup 2 --runs 10 --export-json "$W/tree.json" \
  -n "ksec check ." "$KSEC check ." \
  -n "ksec doctor ." "$KSEC doctor ." \
  -n "detect-secrets scan" "detect-secrets scan --exclude-files '\.git/'" >/dev/null 2>&1
python3 - "$W/tree.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
k = r[0]["mean"]
print("| tool | mean | min | vs ksec check |\n|---|---|---|---|")
for x in r:
    print(f"| {x['command']} | {x['mean']*1000:.1f} ms | {x['min']*1000:.1f} ms | {x['mean']/k:.1f}x |")
PY

# ---------------------------------------------------------------- 2. history
H="$W/hist"; mkdir -p "$H"; cd "$H"; gitq init -q -b main
python3 - "$FIX" <<'PY' | git fast-import --quiet
import os, random, sys
fix = sys.argv[1]
random.seed(2000)
enc = open(os.path.join(fix, "C02-regex-enc.yaml")).read()
leak = open(os.path.join(fix, "A01-plain-data.yaml")).read()
def blob(data):
    b = data.encode()
    return f"data {len(b)}\n".encode() + b + b"\n"
out = sys.stdout.buffer
t = 1700000000
for c in range(2000):
    t += 60
    msg = f"change {c}".encode()
    out.write(b"commit refs/heads/main\n")
    out.write(f"committer bench <b@example.com> {t} +0000\n".encode())
    out.write(f"data {len(msg)}\n".encode() + msg + b"\n")
    for _ in range(3):
        i = random.randrange(500)
        p = f"apps/svc{i:03d}"
        if i % 4 == 0:
            body = enc.replace("name: db", f"name: db{i}-{c}")
            path = f"{p}/secret.yaml"
        else:
            body = f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: svc{i}\nspec:\n  replicas: {c % 7 + 1}\n  template:\n    spec:\n      containers:\n      - name: app\n        image: registry.example.com/svc{i}:{c}\n"
            path = f"{p}/deployment.yaml"
        out.write(f"M 100644 inline {path}\n".encode() + blob(body))
    if c in (500, 1500):
        out.write(b"M 100644 inline leaked/secret.yaml\n" + blob(leak.replace("name: db", f"name: leak{c}")))
    if c in (501, 1501):
        out.write(b"D leaked/secret.yaml\n")
PY
gitq checkout -q main
echo
echo "## 2. History scan ($(git rev-list --count HEAD) commits, $(git rev-list --objects --all | wc -l) objects)"
echo
hyperfine -N -i --warmup 1 --runs 5 --export-json "$W/hist.json" \
  -n "ksec scan --history" "$KSEC scan --history" \
  -n "kingfisher scan (git history)" "$KF scan . ${KF_FLAGS[*]}" >/dev/null 2>&1
python3 - "$W/hist.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
k = r[0]["mean"]
print("| tool | mean | min | vs ksec |\n|---|---|---|---|")
for x in r:
    print(f"| {x['command']} | {x['mean']*1000:.0f} ms | {x['min']*1000:.0f} ms | {x['mean']/k:.1f}x |")
PY
echo
hk=$("$KSEC" scan --history --output json || true)
hf=$($KF scan . "${KF_FLAGS[@]}" --format json 2>/dev/null || true)
nk=$(python3 -c 'import json,sys; print(len({f["commit"] for f in json.load(sys.stdin)["findings"] if f["severity"]=="error"}))' <<<"$hk")
nf=$(python3 -c '
import json,sys
t=sys.stdin.read()
try:
    d=json.loads(t); items=d if isinstance(d,list) else d.get("findings",d.get("matches",[]))
except Exception:
    items=[json.loads(l) for l in t.splitlines() if l.strip().startswith("{")]
print(len(items))' <<<"$hf" 2>/dev/null || echo "?")
echo "Leaks found in history (2 planted, each deleted one commit later): ksec $nk commits with findings, kingfisher $nf findings"

# ---------------------------------------------------------------- 3. corpus
echo
echo "## 3. Corpus verdicts (tests/fixtures/guard/expected.txt, without keys)"
echo
C="$W/corpus"; cp -r "$FIX" "$C"; cd "$C"; rm -f make-fixtures.py expected.txt
echo 'guard: {}' > "$W/neutral.yaml"
total=0; ok_k=0; ok_d=0; ok_f=0; rows=""
while read -r id target verdict _; do
  case "$id" in ''|\#*) continue;; esac
  total=$((total+1))
  want=0; [ "$verdict" = BLOCK ] && want=1
  "$KSEC" check --guard-config "$W/neutral.yaml" "$target" >/dev/null 2>&1 && k=0 || k=1
  detect-secrets-hook "$target" >/dev/null 2>&1 && d=0 || d=1
  set +e; $KF scan "$target" "${KF_FLAGS[@]}" --git-history none >/dev/null 2>&1; rc=$?; set -e
  f=0; [ $rc -ne 0 ] && f=1
  [ $k = $want ] && ok_k=$((ok_k+1))
  [ $d = $want ] && ok_d=$((ok_d+1))
  [ $f = $want ] && ok_f=$((ok_f+1))
  mark() { [ "$1" = "$want" ] && echo ok || echo WRONG; }
  rows+="| $id | $verdict | $(mark $k) | $(mark $d) | $(mark $f) |"$'\n'
done < "$FIX/expected.txt"
echo "| tool | right | of |"
echo "|---|---|---|"
echo "| ksec check | $ok_k | $total |"
echo "| detect-secrets-hook | $ok_d | $total |"
echo "| kingfisher scan | $ok_f | $total |"
echo
echo "<details><summary>Per case</summary>"
echo
echo "| case | expected | ksec | detect-secrets | kingfisher |"
echo "|---|---|---|---|---|"
printf '%s' "$rows"
echo
echo "</details>"

#!/usr/bin/env bash
# kube-down.sh DIR — stops what scripts/kube-up.sh DIR started (by the PIDs
# it recorded, controllers first), waits for the processes to exit, and
# removes DIR unless KSEC_KEEP_KUBE=1.
set -uo pipefail
D=${1:?usage: kube-down.sh DIR}
[ -d "$D" ] || exit 0
for name in kube-controller-manager kube-apiserver etcd; do
  f="$D/$name.pid"
  [ -f "$f" ] || continue
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$f"
done
[ "${KSEC_KEEP_KUBE:-0}" = 1 ] || rm -rf "$D"

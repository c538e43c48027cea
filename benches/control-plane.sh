# Sourced by the cluster benches (controller.sh, rotation.sh): checks
# $KSEC and $KUBECTL, starts a private control plane (scripts/kube-up.sh:
# kube-apiserver, etcd, kube-controller-manager) and takes it down on exit,
# with the controller started as $CTL_PID (its log copied to $LOG when set)
# and every folder in CLEAN. Sets ROOT WORK KUBE KC API; defines k (kubectl
# on that cluster) and now (seconds, fractional).
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
for b in "$KSEC" "$KUBECTL"; do [ -x "$b" ] || { echo "missing $b" >&2; exit 1; }; done
WORK=$(mktemp -d)
KUBE=$(mktemp -d)
CTL_PID=""
CLEAN=("$WORK")
cleanup() {
  # Nothing here may fail before kube-down: a control plane left running
  # skews every later measurement on this machine.
  if [ -n "$CTL_PID" ]; then kill "$CTL_PID" 2>/dev/null || true; wait "$CTL_PID" 2>/dev/null || true; fi
  if [ -n "${LOG:-}" ]; then cp "$WORK/controller.log" "$LOG" 2>/dev/null || true; fi
  "$ROOT/scripts/kube-down.sh" "$KUBE" || true
  rm -rf "${CLEAN[@]}"
}
trap cleanup EXIT
eval "$("$ROOT/scripts/kube-up.sh" "$KUBE")"
KC=$KSEC_TEST_KUBECONFIG
k() { "$KUBECTL" --kubeconfig "$KC" "$@"; }
API=$(sed -n 's#.*server: \(https://[^ ]*\).*#\1#p' "$KC")
now() { date +%s.%N; }

#!/usr/bin/env bash
# The local test cluster: the real kube-apiserver, kube-controller-manager, kube-scheduler and etcd
# (built by hack/build-control-plane.sh) started by kwokctl's binary runtime, with kwok simulating
# the kubelets of two CPU nodes and two GPU nodes. State and kubeconfig live in .cluster/.
#   hack/kwok-cluster.sh up | down | status
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
K8S_VERSION=${K8S_VERSION:-1.37.2}
ETCD_VERSION=${ETCD_VERSION:-3.6.16}
KWOK_VERSION=${KWOK_VERSION:-0.8.0}
BIN=${MLP_CACHE:-$HOME/.cache/mlpipeline}/bin
NAME=${MLP_CLUSTER_NAME:-mlpipeline}
STATE=$ROOT/.cluster
KUBECONFIG_FILE=$STATE/kubeconfig
export KWOK_WORKDIR=$STATE/kwok
KWOKCTL=$BIN/kwokctl-v$KWOK_VERSION/kwokctl
KUBECTL=${KUBECTL:-$ROOT/.venv/bin/kubectl}

kubectl() { "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" "$@"; }

healthy() {
  [[ -f $KUBECONFIG_FILE ]] && kubectl get --raw /readyz >/dev/null 2>&1
}

up() {
  if healthy; then
    echo "cluster $NAME is already up ($KUBECONFIG_FILE)"
    return
  fi
  [[ -x $KWOKCTL ]] || { echo "missing $KWOKCTL: run 'make control-plane'" >&2; exit 1; }
  mkdir -p "$STATE"
  "$KWOKCTL" delete cluster --name "$NAME" >/dev/null 2>&1 || true
  "$KWOKCTL" create cluster --name "$NAME" --runtime binary \
    --kube-apiserver-binary "$BIN/k8s-v$K8S_VERSION/kube-apiserver" \
    --kube-controller-manager-binary "$BIN/k8s-v$K8S_VERSION/kube-controller-manager" \
    --kube-scheduler-binary "$BIN/k8s-v$K8S_VERSION/kube-scheduler" \
    --etcd-binary "$BIN/etcd-v$ETCD_VERSION/etcd" \
    --kwok-controller-binary "$BIN/kwok-v$KWOK_VERSION/kwok" \
    --config "$ROOT/hack/kwok/stages.yaml" \
    --kubeconfig "$KUBECONFIG_FILE" \
    --wait 3m >"$STATE/kwokctl-create.log" 2>&1 || { cat "$STATE/kwokctl-create.log" >&2; exit 1; }
  kubectl apply -f "$ROOT/hack/kwok/nodes.yaml" >/dev/null
  for _ in $(seq 1 120); do
    ready=$(kubectl get nodes -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c True || true)
    sa=$(kubectl get serviceaccount default -o name 2>/dev/null || true)
    [[ $ready -ge 4 && -n $sa ]] && break
    sleep 0.5
  done
  [[ $ready -ge 4 ]] || { echo "nodes did not become Ready" >&2; kubectl get nodes >&2; exit 1; }
  echo "cluster $NAME is up: KUBECONFIG=$KUBECONFIG_FILE"
  kubectl get nodes -L nvidia.com/gpu.present
}

down() {
  [[ -x $KWOKCTL ]] && "$KWOKCTL" delete cluster --name "$NAME" >/dev/null 2>&1 || true
  rm -rf "$STATE"
  echo "cluster $NAME is down"
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) if healthy; then kubectl get nodes; else echo "cluster $NAME is down"; exit 1; fi ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac

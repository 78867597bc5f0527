#!/usr/bin/env bash
# The local test cluster, started by kwokctl's binary runtime from the binaries that
# hack/build-control-plane.sh built (nothing is downloaded here):
#   - the real etcd, kube-apiserver, kube-controller-manager (Job controller, garbage collector, ...)
#     and kube-scheduler;
#   - kwok standing in for kubelets of cpu-0, cpu-1 (32 cpu, 128Gi) and gpu-0, gpu-1 (8 fake
#     nvidia.com/gpu each, tainted nvidia.com/gpu=present:NoSchedule): hack/kwok/nodes.yaml;
#   - kwok Stages (hack/kwok/stages.yaml): pods Running ~1 s after binding, pods of Jobs Succeeded
#     ~1 s later, or Failed with the exit code in annotation mlpipeline.dev/fake-exit-code.
#     kwok manages only nodes annotated kwok.x-k8s.io/node=fake, so that a real node (hack/node.sh)
#     can join; the API server reaches kubelets by InternalIP with the admin client certificate.
# State (kwokctl workdir, component logs, etcd data) and the kubeconfig live in .cluster/.
#
#   hack/cluster.sh up       create the cluster unless it is already up and healthy
#   hack/cluster.sh down     delete the cluster and .cluster/
#   hack/cluster.sh status   exit 0 and list the nodes when the cluster is up and healthy
#   hack/cluster.sh restart  stop every control-plane process, start them again (MLP_RESTART_PAUSE s later)
#
# Environment: K8S_VERSION, ETCD_VERSION, KWOK_VERSION, MLP_CACHE (as hack/build-control-plane.sh),
# MLP_CLUSTER_NAME (mlpipeline), MLP_CLUSTER_DIR (<repo>/.cluster), KUBECTL (<repo>/.venv/bin/kubectl),
# MLP_CLUSTER_TIMEOUT (seconds to wait for readiness, 120).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
K8S_VERSION=${K8S_VERSION:-1.37.2}
ETCD_VERSION=${ETCD_VERSION:-3.6.16}
KWOK_VERSION=${KWOK_VERSION:-0.8.0}
BIN=${MLP_CACHE:-$HOME/.cache/mlpipeline}/bin
NAME=${MLP_CLUSTER_NAME:-mlpipeline}
STATE=${MLP_CLUSTER_DIR:-$ROOT/.cluster}
# kube-apiserver's default --service-cluster-ip-range is 10.0.0.0/24; the Service "kubernetes" takes its first IP.
API_SERVICE_IP=10.0.0.1
TIMEOUT=${MLP_CLUSTER_TIMEOUT:-120}
KUBECONFIG_FILE=$STATE/kubeconfig
KUBECTL=${KUBECTL:-$ROOT/.venv/bin/kubectl}
KWOKCTL=$BIN/kwokctl-v$KWOK_VERSION/kwokctl
NODES_YAML=$ROOT/hack/kwok/nodes.yaml
STAGES_YAML=$ROOT/hack/kwok/stages.yaml
COMPONENTS_YAML=$STATE/kwokctl-components.yaml
NODE_COUNT=4
# kwokctl keeps every cluster under $KWOK_WORKDIR/clusters/<name> (default ~/.kwok).
export KWOK_WORKDIR=$STATE/kwok

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

kctl() { "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" --request-timeout 10s "$@"; }
# fd 9 holds the `up` lock: close it, or the component daemons that kwokctl starts inherit it.
kwokctl() { "$KWOKCTL" --name "$NAME" "$@" 9>&-; }

check_binaries() {
  local b
  for b in "$KWOKCTL" "$BIN/kwok-v$KWOK_VERSION/kwok" "$BIN/etcd-v$ETCD_VERSION/etcd" \
           "$BIN/k8s-v$K8S_VERSION/kube-apiserver" "$BIN/k8s-v$K8S_VERSION/kube-controller-manager" \
           "$BIN/k8s-v$K8S_VERSION/kube-scheduler" "$KUBECTL"; do
    [[ -x $b ]] || die "missing $b (run hack/build-control-plane.sh, or make control-plane)"
  done
}

apiserver_ready() {
  [[ -f $KUBECONFIG_FILE ]] && kctl get --raw /readyz >/dev/null 2>&1
}

ready_nodes() {
  kctl get nodes -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' 2>/dev/null \
    | grep -c '^True$' || true
}

nodes_ready() { (( $(ready_nodes) >= NODE_COUNT )); }

# Ready: the API server answers /readyz, the nodes are Ready, the scheduler and the controller
# manager hold their leader leases, and the controller manager has made the default service account
# (without it no pod can be created).
healthy() {
  apiserver_ready || return 1
  nodes_ready || return 1
  kctl -n kube-system get lease kube-scheduler kube-controller-manager >/dev/null 2>&1 || return 1
  kctl -n default get serviceaccount default >/dev/null 2>&1
}

wait_for() {  # description, command...
  local what=$1; shift
  local deadline=$((SECONDS + TIMEOUT))
  until "$@"; do
    (( SECONDS < deadline )) || return 1
    sleep 0.5
  done
  log "$what ($SECONDS s)"
}

# Component flags on top of kwokctl's: a second --config with componentsPatches.
write_components_config() {
  local pki=$KWOK_WORKDIR/clusters/$NAME/pki
  cat >"$COMPONENTS_YAML" <<EOF
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  # The ClusterIP of the Service "kubernetes" (the first of the default range): pods on the real node
  # reach the API server through it, as in any cluster.
  kubeApiserverCertSANs: ["$API_SERVICE_IP"]
componentsPatches:
- name: kwok-controller
  extraArgs:
  - {key: manage-all-nodes, value: "false", override: true}
  - {key: manage-nodes-with-annotation-selector, value: kwok.x-k8s.io/node=fake}
- name: kube-apiserver
  extraArgs:
  - {key: kubelet-preferred-address-types, value: "InternalIP,Hostname"}
  - {key: kubelet-client-certificate, value: $pki/admin.crt}
  - {key: kubelet-client-key, value: $pki/admin.key}
  # OpenShift's default: setting blockOwnerDeletion on an owner reference needs update on the owner's
  # finalizers (the chart grants it; the real tier's chart test runs under this).
  - {key: enable-admission-plugins, value: OwnerReferencesPermissionEnforcement}
EOF
}

create() {
  mkdir -p "$STATE"
  write_components_config
  # Leftovers of a cluster that is no longer healthy (e.g. processes gone after a reboot).
  if [[ -d $KWOK_WORKDIR/clusters/$NAME ]]; then
    log "removing the unhealthy cluster $NAME"
    kwokctl delete cluster --kubeconfig "$KUBECONFIG_FILE" >>"$STATE/kwokctl.log" 2>&1 || true
    rm -rf "${KWOK_WORKDIR:?}/clusters/$NAME" "$KUBECONFIG_FILE"
  fi
  log "creating cluster $NAME (kwokctl $KWOK_VERSION, kubernetes $K8S_VERSION, etcd $ETCD_VERSION) in $KWOK_WORKDIR"
  # Every *-binary flag names a local file, which kwokctl copies into the cluster's bin/: no
  # component is downloaded. A Stage in --config replaces all of kwokctl's default stages.
  if ! kwokctl create cluster --runtime binary \
      --kube-apiserver-binary "$BIN/k8s-v$K8S_VERSION/kube-apiserver" \
      --kube-controller-manager-binary "$BIN/k8s-v$K8S_VERSION/kube-controller-manager" \
      --kube-scheduler-binary "$BIN/k8s-v$K8S_VERSION/kube-scheduler" \
      --etcd-binary "$BIN/etcd-v$ETCD_VERSION/etcd" \
      --kwok-controller-binary "$BIN/kwok-v$KWOK_VERSION/kwok" \
      --config "$COMPONENTS_YAML" \
      --config "$STAGES_YAML" \
      --disable-qps-limits \
      --kubeconfig "$KUBECONFIG_FILE" \
      --wait "${TIMEOUT}s" >>"$STATE/kwokctl.log" 2>&1; then
    tail -n 20 "$STATE/kwokctl.log" >&2
    die "kwokctl create cluster failed: see $STATE/kwokctl.log and $KWOK_WORKDIR/clusters/$NAME/logs/"
  fi
  # kwokctl added its context to $KUBECONFIG_FILE; write it afresh in case that file was lost.
  [[ -s $KUBECONFIG_FILE ]] || kwokctl get kubeconfig >"$KUBECONFIG_FILE"
  chmod 600 "$KUBECONFIG_FILE"
}

up() {
  check_binaries
  mkdir -p "$STATE"
  # Serialise concurrent `up`s (e.g. parallel test workers).
  if command -v flock >/dev/null; then
    exec 9>"$STATE/.lock"
    flock 9
  fi
  if healthy; then
    log "cluster $NAME is already up"
    echo "$KUBECONFIG_FILE"
    return
  fi
  if ! apiserver_ready; then
    create
  fi
  wait_for "API server ready" apiserver_ready || die "the API server did not become ready"
  kctl apply -f "$NODES_YAML" >/dev/null
  wait_for "$NODE_COUNT nodes Ready" nodes_ready \
    || { kctl get nodes >&2 || true; die "the nodes did not become Ready"; }
  wait_for "scheduler, controller manager and default service account up" healthy \
    || die "kube-scheduler or kube-controller-manager did not start: see $KWOK_WORKDIR/clusters/$NAME/logs/"
  log "cluster $NAME is up; export KUBECONFIG=$KUBECONFIG_FILE"
  echo "$KUBECONFIG_FILE"
}

down() {
  # A real node (hack/node.sh) mounts and runs things under $STATE: stop it first.
  if [[ -d $STATE/node ]]; then
    "$ROOT/hack/node.sh" down || die "hack/node.sh down failed: not removing $STATE"
  fi
  if [[ -x $KWOKCTL && -d $KWOK_WORKDIR/clusters/$NAME ]]; then
    mkdir -p "$STATE"
    kwokctl delete cluster --kubeconfig "$KUBECONFIG_FILE" >>"$STATE/kwokctl.log" 2>&1 \
      || log "kwokctl delete cluster failed (see $STATE/kwokctl.log); removing the state anyway"
  fi
  rm -rf "${STATE:?}"
  log "cluster $NAME is down"
}

# Every control-plane process (etcd, kube-apiserver, controller-manager, scheduler, kwok) stopped
# and started again on the same data: what a control-plane upgrade or a crashed master does to clients.
restart() {
  check_binaries
  log "stopping cluster $NAME"
  kwokctl stop cluster >>"$STATE/kwokctl.log" 2>&1 || die "kwokctl stop cluster failed (see $STATE/kwokctl.log)"
  if [[ -n ${MLP_RESTART_PAUSE:-} ]]; then sleep "$MLP_RESTART_PAUSE"; fi
  log "starting cluster $NAME"
  kwokctl start cluster >>"$STATE/kwokctl.log" 2>&1 || die "kwokctl start cluster failed (see $STATE/kwokctl.log)"
  local waited=0
  until healthy; do
    (( waited++ < TIMEOUT )) || die "cluster $NAME not healthy ${TIMEOUT}s after its restart"
    sleep 1
  done
  log "cluster $NAME restarted"
}

status() {
  if healthy; then
    log "cluster $NAME is up; KUBECONFIG=$KUBECONFIG_FILE"
    kctl get nodes -L nvidia.com/gpu.present,accelerator,mlpipeline.dev/real-node
  else
    log "cluster $NAME is not up (or not healthy)"
    return 1
  fi
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) status ;;
  restart) restart ;;
  *) echo "usage: $0 up|down|status|restart" >&2; exit 2 ;;
esac

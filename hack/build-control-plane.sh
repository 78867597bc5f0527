#!/usr/bin/env bash
# Builds the real Kubernetes control plane (kube-apiserver, kube-controller-manager, kube-scheduler),
# etcd, kwok/kwokctl and helm from Go modules, once, into a cache keyed by version; the
# Prometheus Operator's ServiceMonitor CRD (the chart's ServiceMonitor is tested with it); and the
# KubeRay operator with its CRDs (spec.train.distributed is tested with it).
# No container engine or release download is needed: only the Go module proxy.
#   hack/build-control-plane.sh [core|extras|all]
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-1.37.2}
ETCD_VERSION=${ETCD_VERSION:-3.6.16}
KWOK_VERSION=${KWOK_VERSION:-0.8.0}
HELM_VERSION=${HELM_VERSION:-3.21.4}
PROMETHEUS_OPERATOR_VERSION=${PROMETHEUS_OPERATOR_VERSION:-0.85.0}
KUBERAY_VERSION=${KUBERAY_VERSION:-1.5.0}
CACHE=${MLP_CACHE:-$HOME/.cache/mlpipeline}
BIN=$CACHE/bin
mkdir -p "$BIN"
export GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0

log() { printf '[build-control-plane] %s\n' "$*" >&2; }

source "$(dirname "${BASH_SOURCE[0]}")/lib/build-k8s.sh"

build_etcd() {
  local out=$BIN/etcd-v$ETCD_VERSION
  if [[ -x $out/etcd ]]; then log "etcd v$ETCD_VERSION cached"; return; fi
  local work; work=$(mktemp -d)
  log "building etcd v$ETCD_VERSION in $work"
  (
    cd "$work"
    go mod init mlpipeline.local/etcd-wrapper >/dev/null 2>&1
    for mod in api/v3 client/pkg/v3 client/v3 pkg/v3; do
      go mod edit -replace "go.etcd.io/etcd/$mod=go.etcd.io/etcd/$mod@v$ETCD_VERSION"
    done
    go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION"
    mkdir -p "$out.tmp"
    go build -trimpath -ldflags "-s -w" -o "$out.tmp/etcd" go.etcd.io/etcd/server/v3
  )
  rm -rf "$out" && mv "$out.tmp" "$out" && rm -rf "$work"
}

go_install() {  # name module version
  local out=$BIN/$1-v$3
  if [[ -x $out/$1 ]]; then log "$1 v$3 cached"; return; fi
  log "installing $1 v$3"
  mkdir -p "$out.tmp"
  GOBIN=$out.tmp go install -trimpath -ldflags "-s -w" "$2@v$3"
  rm -rf "$out" && mv "$out.tmp" "$out"
}

fetch_servicemonitor_crd() {  # the chart's ServiceMonitor needs it: taken from the Prometheus Operator's Go module
  local out=$CACHE/crds/prometheus-operator-v$PROMETHEUS_OPERATOR_VERSION
  if [[ -f $out/servicemonitors.yaml ]]; then log "ServiceMonitor CRD v$PROMETHEUS_OPERATOR_VERSION cached"; return; fi
  log "fetching the ServiceMonitor CRD of prometheus-operator v$PROMETHEUS_OPERATOR_VERSION"
  local dir; dir=$(module_dir github.com/prometheus-operator/prometheus-operator "$PROMETHEUS_OPERATOR_VERSION")
  mkdir -p "$out"
  cp "$dir/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml" "$out/servicemonitors.yaml.tmp"
  mv "$out/servicemonitors.yaml.tmp" "$out/servicemonitors.yaml"
}

module_dir() {  # module version -> where `go mod download` put it
  go mod download -json "$1@v$2" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'
}

fetch_kuberay_crds() {  # RayCluster, RayJob, RayService: shipped inside KubeRay's Go module
  local out=$CACHE/crds/kuberay-v$KUBERAY_VERSION
  if [[ -f $out/ray.io_rayjobs.yaml ]]; then log "KubeRay CRDs v$KUBERAY_VERSION cached"; return; fi
  local dir; dir=$(module_dir github.com/ray-project/kuberay/ray-operator "$KUBERAY_VERSION")
  rm -rf "$out.tmp" && mkdir -p "$out.tmp"
  cp "$dir"/config/crd/bases/ray.io_*.yaml "$out.tmp/"
  chmod u+w "$out.tmp"/*.yaml
  rm -rf "$out" && mv "$out.tmp" "$out"
}

# core: what the cluster needs to start; extras: what only some tests need (helm, KubeRay's operator),
# so that `make test` starts the cluster tier while they build. Default: both.
part=${1:-all}
if [[ $part == core || $part == all ]]; then
  go_install kwok sigs.k8s.io/kwok/cmd/kwok "$KWOK_VERSION"
  go_install kwokctl sigs.k8s.io/kwok/cmd/kwokctl "$KWOK_VERSION"
  build_etcd
  build_k8s "$BIN/k8s-v$K8S_VERSION" kube-apiserver kube-controller-manager kube-scheduler
  fetch_servicemonitor_crd
  fetch_kuberay_crds
fi
if [[ $part == extras || $part == all ]]; then
  go_install helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION"
  go_install ray-operator github.com/ray-project/kuberay/ray-operator "$KUBERAY_VERSION"
fi
log "done ($part): $BIN"

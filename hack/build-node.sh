#!/usr/bin/env bash
# Builds what the real node of the test cluster (hack/node.sh) runs, once, into the cache keyed by
# version, beside what hack/build-control-plane.sh built:
#   - kubelet and kube-proxy (k8s.io/kubernetes, in the same kind of wrapper module as the control
#     plane) into bin/k8s-node-v<version>, beside the control plane's bin/k8s-v<version>;
#   - containerd, containerd-shim-runc-v2 and ctr (github.com/containerd/containerd/v2);
#   - the pause image: build/pause/linux/pause.c of the k8s.io/kubernetes module, linked statically
#     and packed by umoci as an OCI archive (pause-<tag>.tar);
#   - weed, SeaweedFS's single binary (Apache-2.0): the S3-compatible artifact store the real pods share;
#   - CoreDNS with only the plugins the node's cluster DNS uses (a main package importing kubernetes,
#     forward, cache, errors, bind, ready): pods find Services by name (KubeRay's workers find their
#     head only so);
#   - Prometheus with Kubernetes service discovery (Debian's package is built without it), and only
#     that one (build tags remove_all_sd enable_kubernetes_sd): it finds the model pods through the
#     API server as a platform's Prometheus does.
# Installs the Debian packages the node needs when they are missing: runc, containernetworking-plugins,
# iptables (kube-proxy, the bridge plugin), umoci, gcc and libc6-dev (static pause).
# Only the Go module proxy and the Debian archive are used.
#   hack/build-node.sh [others|k8s|all]
# k8s: kubelet and kube-proxy only (after the control plane's build they reuse most of its compiled
# packages from Go's build cache); others: everything else, which shares nothing with it, so
# `make test` builds it from the start beside the control plane. Default: all.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-1.37.2}
CONTAINERD_VERSION=${CONTAINERD_VERSION:-2.4.2}
PAUSE_TAG=${PAUSE_TAG:-3.10.2}
# SeaweedFS publishes no semver tags on the module proxy: a pseudo-version of its main branch.
SEAWEEDFS_VERSION=${SEAWEEDFS_VERSION:-v0.0.0-20261109003541-7506e5f91cd6}
# Prometheus 3.x's Go module is versioned v0.<major><minor>.<patch>: v0.316.0 is Prometheus 3.16.0.
PROMETHEUS_VERSION=${PROMETHEUS_VERSION:-3.16.0}
COREDNS_VERSION=${COREDNS_VERSION:-1.15.0}
CACHE=${MLP_CACHE:-$HOME/.cache/mlpipeline}
BIN=$CACHE/bin
APT_PACKAGES=(runc containernetworking-plugins iptables umoci gcc libc6-dev)
mkdir -p "$BIN"
export GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0

log() { printf '[build-node] %s\n' "$*" >&2; }

timed() {  # description, command...: runs the command and logs how long it took
  local what=$1 start=$SECONDS; shift
  "$@"
  log "$what: $((SECONDS - start)) s"
}

apt_packages() {
  local missing=() p
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if (( ${#missing[@]} == 0 )); then log "Debian packages installed"; return; fi
  log "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

source "$(dirname "${BASH_SOURCE[0]}")/lib/build-k8s.sh"

build_containerd() {
  local out=$BIN/containerd-v$CONTAINERD_VERSION
  if [[ -x $out/containerd && -x $out/containerd-shim-runc-v2 && -x $out/ctr ]]; then
    log "containerd v$CONTAINERD_VERSION cached in $out"; return
  fi
  # Its go.mod has no replace directives: `go install mod/cmd/x@version` works without a wrapper.
  local mod=github.com/containerd/containerd/v2
  local ldflags="-s -w -X $mod/version.Version=v$CONTAINERD_VERSION -X $mod/version.Package=github.com/containerd/containerd"
  log "building containerd v$CONTAINERD_VERSION"
  rm -rf "$out.tmp" && mkdir -p "$out.tmp"
  GOBIN=$out.tmp go install -trimpath -tags "no_btrfs urfave_cli_no_docs" -ldflags "$ldflags" \
    "$mod/cmd/containerd@v$CONTAINERD_VERSION" "$mod/cmd/containerd-shim-runc-v2@v$CONTAINERD_VERSION" \
    "$mod/cmd/ctr@v$CONTAINERD_VERSION"
  rm -rf "$out" && mv "$out.tmp" "$out"
}

# An OCI image layout holding one layer with the static /pause, packed as a tar archive, the form
# `ctr images import` reads. Its ref name (the tag) is $PAUSE_TAG.
build_pause() {
  local out=$BIN/pause-$PAUSE_TAG
  if [[ -s $out/pause.tar ]]; then log "pause $PAUSE_TAG cached in $out"; return; fi
  local src; src=$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  local work; work=$(mktemp -d)
  log "building pause $PAUSE_TAG from $src/build/pause/linux/pause.c"
  mkdir -p "$work/rootfs"
  gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_TAG-mlpipeline" -o "$work/rootfs/pause" "$src/build/pause/linux/pause.c"
  strip "$work/rootfs/pause"
  tar --numeric-owner --owner=0 --group=0 -C "$work/rootfs" -cf "$work/layer.tar" pause
  (
    cd "$work"
    umoci init --layout oci
    umoci new --image "oci:$PAUSE_TAG"
    umoci raw add-layer --image "oci:$PAUSE_TAG" layer.tar
    umoci config --image "oci:$PAUSE_TAG" --config.entrypoint /pause --config.user 65535:65535
    umoci gc --layout oci
    mkdir -p "$out.tmp"
    tar -C oci -cf "$out.tmp/pause.tar" .
  )
  rm -rf "$out" && mv "$out.tmp" "$out" && rm -rf "$work"
}

build_seaweedfs() {
  local out=$BIN/seaweedfs-$SEAWEEDFS_VERSION
  if [[ -x $out/weed ]]; then log "seaweedfs $SEAWEEDFS_VERSION cached in $out"; return; fi
  local work; work=$(mktemp -d)
  log "building seaweedfs $SEAWEEDFS_VERSION in $work"
  (
    cd "$work"
    go mod init mlpipeline.local/seaweedfs-wrapper >/dev/null 2>&1
    go get "github.com/seaweedfs/seaweedfs@$SEAWEEDFS_VERSION"
    rm -rf "$out.tmp" && mkdir -p "$out.tmp"
    go build -trimpath -ldflags "-s -w" -o "$out.tmp/weed" github.com/seaweedfs/seaweedfs/weed
  )
  rm -rf "$out" && mv "$out.tmp" "$out" && rm -rf "$work"
}

build_coredns() {
  local out=$BIN/coredns-v$COREDNS_VERSION
  if [[ -x $out/coredns ]]; then log "coredns v$COREDNS_VERSION cached in $out"; return; fi
  local work; work=$(mktemp -d)
  log "building coredns v$COREDNS_VERSION (plugins: kubernetes forward cache errors bind ready) in $work"
  (
    cd "$work"
    go mod init mlpipeline.local/coredns-wrapper >/dev/null 2>&1
    cat >main.go <<'GO'
// CoreDNS with the plugins of the real node's cluster DNS only: a Corefile naming another fails.
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/ready"
)

func main() { coremain.Run() }
GO
    go get "github.com/coredns/coredns@v$COREDNS_VERSION"
    rm -rf "$out.tmp" && mkdir -p "$out.tmp"
    go build -trimpath -ldflags "-s -w" -o "$out.tmp/coredns" .
  )
  rm -rf "$out" && mv "$out.tmp" "$out" && rm -rf "$work"
}

build_prometheus() {
  local out=$BIN/prometheus-v$PROMETHEUS_VERSION
  if [[ -x $out/prometheus ]]; then log "prometheus v$PROMETHEUS_VERSION cached in $out"; return; fi
  local major=${PROMETHEUS_VERSION%%.*} rest=${PROMETHEUS_VERSION#*.}
  local module=v0.$((major * 100 + ${rest%%.*})).${rest#*.}
  log "building prometheus v$PROMETHEUS_VERSION (module $module)"
  rm -rf "$out.tmp" && mkdir -p "$out.tmp"
  GOBIN=$out.tmp go install -trimpath -tags "remove_all_sd enable_kubernetes_sd" \
    -ldflags "-s -w -X github.com/prometheus/common/version.Version=$PROMETHEUS_VERSION" \
    "github.com/prometheus/prometheus/cmd/prometheus@$module"
  rm -rf "$out" && mv "$out.tmp" "$out"
}

start=$SECONDS
part=${1:-all}
if [[ $part == others || $part == all ]]; then
  timed "Debian packages" apt_packages
fi
if [[ $part == k8s || $part == all ]]; then
  timed "kubelet, kube-proxy" build_k8s "$BIN/k8s-node-v$K8S_VERSION" kubelet kube-proxy
fi
if [[ $part == others || $part == all ]]; then
  timed "containerd" build_containerd
  timed "pause image" build_pause
  timed "seaweedfs" build_seaweedfs
  timed "prometheus" build_prometheus
  timed "coredns" build_coredns
fi
log "done ($part) in $((SECONDS - start)) s: $BIN"

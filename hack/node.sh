#!/usr/bin/env bash
# A real node, real-0, beside kwok's fake nodes in the local test cluster (hack/cluster.sh): containerd
# (runc, a CNI bridge), kubelet and kube-proxy (iptables mode) run on this host from the binaries that
# hack/build-node.sh built. Pods reach it through the node label mlpipeline.dev/real-node=true (a
# nodeSelector); kwok leaves it alone because it lacks the annotation kwok.x-k8s.io/node=fake.
# Images come from OCI archives (`import`): nothing is pulled. Pods must use imagePullPolicy
# IfNotPresent or Never.
# Beside it runs the pods' shared artifact store: SeaweedFS's S3 API on $NODE_IP:18333, bucket
# `mlpipeline`, one identity whose keys are generated at `up`; `store-env` prints what a client needs
# (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, MLP_STORE_BUCKET), the keys of the
# Secret a pipeline names in spec.artifacts.secretRef.
# And the cluster's DNS: CoreDNS on $NODE_IP:53 (the kubelet's clusterDNS), serving cluster.local
# from the API server (Services, EndpointSlices) and forwarding the rest to the host's resolver.
# State (configs, certificates, logs, containerd's and the kubelet's dirs) lives in .cluster/node/.
#
#   hack/node.sh up                    start the node unless it is up; wait until it is Ready
#   hack/node.sh down                  delete its pods, stop it, leave nothing mounted or running
#   hack/node.sh status                exit 0 when the node is Ready
#   hack/node.sh import ARCHIVE NAME   import an OCI archive as NAME:<its tag> (`ctr images import
#                                      --base-name NAME`; the tag is the archive's ref name)
#   hack/node.sh store-env             the S3 store's endpoint, keys and bucket (KEY=value lines)
#
# Environment: K8S_VERSION, CONTAINERD_VERSION, PAUSE_TAG, MLP_CACHE (as hack/build-node.sh),
# MLP_CLUSTER_NAME, MLP_CLUSTER_DIR, KUBECTL (as hack/cluster.sh), MLP_NODE_NAME (real-0),
# MLP_NODE_IP (the source address of the default route), MLP_NODE_POD_CIDR (10.244.50.0/24),
# MLP_NODE_TIMEOUT (seconds to wait for readiness, 60), SEAWEEDFS_VERSION, MLP_STORE_PORT (18333; the
# store's master, volume and filer listen 1000, 2000 and 3000 below it, their gRPC 10000 above those).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
K8S_VERSION=${K8S_VERSION:-1.37.2}
CONTAINERD_VERSION=${CONTAINERD_VERSION:-2.4.2}
PAUSE_TAG=${PAUSE_TAG:-3.10.2}
SEAWEEDFS_VERSION=${SEAWEEDFS_VERSION:-v0.0.0-20261109003541-7506e5f91cd6}
COREDNS_VERSION=${COREDNS_VERSION:-1.15.0}
STORE_PORT=${MLP_STORE_PORT:-18333}
STORE_BUCKET=mlpipeline
BIN=${MLP_CACHE:-$HOME/.cache/mlpipeline}/bin
STATE=${MLP_CLUSTER_DIR:-$ROOT/.cluster}
CLUSTER_DIR=$STATE/kwok/clusters/${MLP_CLUSTER_NAME:-mlpipeline}
KUBECTL=${KUBECTL:-$ROOT/.venv/bin/kubectl}
NODE_NAME=${MLP_NODE_NAME:-real-0}
POD_CIDR=${MLP_NODE_POD_CIDR:-10.244.50.0/24}
TIMEOUT=${MLP_NODE_TIMEOUT:-60}
NODE_LABEL=mlpipeline.dev/real-node=true
NODE_DIR=$STATE/node
TEMPLATES=$ROOT/hack/node
KUBE_BIN=$BIN/k8s-node-v$K8S_VERSION
CONTAINERD_BIN=$BIN/containerd-v$CONTAINERD_VERSION
WEED=$BIN/seaweedfs-$SEAWEEDFS_VERSION/weed
COREDNS=$BIN/coredns-v$COREDNS_VERSION/coredns
DNS_READY_PORT=18181
STORE_DIR=$NODE_DIR/store
PAUSE_ARCHIVE=$BIN/pause-$PAUSE_TAG/pause.tar
SANDBOX_IMAGE=localhost/mlpipeline/pause:$PAUSE_TAG
CONTAINERD_SOCK=$NODE_DIR/containerd/containerd.sock
BRIDGE=mlp0
RUNC=/usr/sbin/runc
CNI_BIN_DIR=/usr/lib/cni
# Kernel settings the node changes (the kubelet sets the vm./kernel. ones on start); `down` restores them.
SYSCTLS=(net.ipv4.ip_forward vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
         kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
# Host paths the kubelet, containerd, runc and the CNI plugins use whatever their configuration says.
HOST_DIRS=(/var/log/pods /var/log/containers /var/lib/kubelet/device-plugins)
DAEMONS=(coredns weed kube-proxy kubelet containerd)  # in stopping order

log() { printf '[node] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f s", b - a }'; }

kctl() { "$KUBECTL" --kubeconfig "$STATE/kubeconfig" --request-timeout 10s "$@"; }
# ctr, without the cgroup v1 deprecation warning that it prints on every call on this machine.
ctr() {
  local err rc=0
  err=$("$CONTAINERD_BIN/ctr" --address "$CONTAINERD_SOCK" --namespace k8s.io "$@" 2>&1 >&3) || rc=$?
  [[ -z $err ]] || grep -v 'DEPRECATION: The support for cgroup v1' <<<"$err" >&2 || true
  return "$rc"
} 3>&1

binary_of() {
  case $1 in
    containerd) echo "$CONTAINERD_BIN/containerd" ;;
    weed) echo "$WEED" ;;
    coredns) echo "$COREDNS" ;;
    *) echo "$KUBE_BIN/$1" ;;
  esac
}

pid_of() {  # name: the pid of the running daemon, or fail
  local pid
  pid=$(cat "$NODE_DIR/pids/$1.pid" 2>/dev/null) || return 1
  [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == "$(binary_of "$1")" ]] && echo "$pid"
}

running() { pid_of "$1" >/dev/null; }

start_daemon() {  # name, args...: runs the daemon detached, logging to logs/NAME.log
  local name=$1; shift
  mkdir -p "$NODE_DIR/logs" "$NODE_DIR/pids"
  # Binaries first on PATH: containerd finds the shim there (before any distribution's shim).
  PATH=$CONTAINERD_BIN:$PATH setsid "$(binary_of "$name")" "$@" </dev/null >>"$NODE_DIR/logs/$name.log" 2>&1 8>&- &
  echo $! >"$NODE_DIR/pids/$name.pid"
}

stop_daemon() {
  local pid i
  pid=$(pid_of "$1") || { rm -f "$NODE_DIR/pids/$1.pid"; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$NODE_DIR/pids/$1.pid"
  log "stopped $1 ($pid)"
}

wait_for() {  # description, command...
  local what=$1 t0=$EPOCHREALTIME; shift
  local deadline=$((SECONDS + TIMEOUT))
  until "$@"; do
    (( SECONDS < deadline )) || return 1
    sleep 0.2
  done
  log "$what ($(since "$t0"))"
}

node_ready() {
  [[ $(kctl get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}

containerd_up() { ctr version >/dev/null 2>&1; }

apiserver_ready() { [[ -f $STATE/kubeconfig ]] && kctl get --raw /readyz >/dev/null 2>&1; }

render() {  # sed arguments: replaces @VARS@
  sed -e "s|@NODE_DIR@|$NODE_DIR|g" -e "s|@NODE_NAME@|$NODE_NAME|g" -e "s|@NODE_IP@|$NODE_IP|g" \
      -e "s|@POD_CIDR@|$POD_CIDR|g" -e "s|@BRIDGE@|$BRIDGE|g" -e "s|@CONTAINERD_SOCK@|$CONTAINERD_SOCK|g" \
      -e "s|@RUNC@|$RUNC|g" -e "s|@CNI_BIN_DIR@|$CNI_BIN_DIR|g" -e "s|@SANDBOX_IMAGE@|$SANDBOX_IMAGE|g" \
      -e "s|@CLUSTER_CA@|$CLUSTER_DIR/pki/ca.crt|g" -e "s|@DNS_READY_PORT@|$DNS_READY_PORT|g" "$@"
}

# A client certificate signed by the cluster's CA and a kubeconfig using it.
kubeconfig_for() {  # component, subject
  local name=$1 subject=$2 pki=$NODE_DIR/pki
  mkdir -p "$pki"
  openssl req -new -newkey rsa:2048 -nodes -keyout "$pki/$name.key" -subj "$subject" 2>/dev/null \
    | openssl x509 -req -days 3650 -CA "$CLUSTER_DIR/pki/ca.crt" -CAkey "$CLUSTER_DIR/pki/ca.key" \
        -set_serial "0x$(openssl rand -hex 16)" -out "$pki/$name.crt" 2>/dev/null \
        -extfile <(printf 'keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n')
  local server; server=$(kctl config view --minify -o jsonpath='{.clusters[0].cluster.server}')
  render -e "s|@SERVER@|$server|g" -e "s|@USER@|$name|g" -e "s|@CERT@|$pki/$name.crt|g" \
    -e "s|@KEY@|$pki/$name.key|g" "$TEMPLATES/kubeconfig.yaml" >"$NODE_DIR/$name.kubeconfig"
}

check_prerequisites() {
  local b
  for b in "$KUBE_BIN/kubelet" "$KUBE_BIN/kube-proxy" "$CONTAINERD_BIN/containerd" \
           "$CONTAINERD_BIN/containerd-shim-runc-v2" "$CONTAINERD_BIN/ctr" "$RUNC" "$CNI_BIN_DIR/bridge" "$WEED" "$COREDNS"; do
    [[ -x $b ]] || die "missing $b (run hack/build-node.sh, or make node-binaries)"
  done
  [[ -s $PAUSE_ARCHIVE ]] || die "missing $PAUSE_ARCHIVE (run hack/build-node.sh)"
  command -v iptables >/dev/null || die "missing iptables (run hack/build-node.sh)"
  [[ -x $KUBECTL ]] || die "missing $KUBECTL (make install)"
  apiserver_ready || die "the cluster is not up (hack/cluster.sh up)"
  # hack/cluster.sh creates the cluster so that kwok manages only the fake nodes and the API server
  # reaches kubelets by IP with a client certificate, and its certificate names the ClusterIP of the
  # Service "kubernetes"; a cluster made before that cannot host the node's pods.
  local conf=$CLUSTER_DIR/kwok.yaml
  if ! grep -q -- '--manage-nodes-with-annotation-selector=' "$conf" || ! grep -q -- '--kubelet-client-certificate=' "$conf" \
      || ! grep -q 'kubeApiserverCertSANs' "$conf"; then
    die "the cluster predates the real-node settings: recreate it (hack/cluster.sh down && hack/cluster.sh up)"
  fi
}

healthy() {
  local d
  for d in "${DAEMONS[@]}"; do running "$d" || return 1; done
  node_ready
}

configure() {
  mkdir -p "$NODE_DIR"/{cni/net.d,logs,pids,kubelet}
  render "$TEMPLATES/containerd.toml" >"$NODE_DIR/containerd.toml"
  render "$TEMPLATES/cni.conflist" >"$NODE_DIR/cni/net.d/10-mlpipeline.conflist"
  render "$TEMPLATES/kubelet.yaml" >"$NODE_DIR/kubelet.yaml"
  render "$TEMPLATES/kube-proxy.yaml" >"$NODE_DIR/kube-proxy.yaml"
  kubeconfig_for kubelet "/O=system:nodes/CN=system:node:$NODE_NAME"
  kubeconfig_for kube-proxy "/CN=system:kube-proxy"
  kubeconfig_for coredns "/CN=mlpipeline:coredns"
  render "$TEMPLATES/Corefile" >"$NODE_DIR/Corefile"
  local s
  if [[ ! -f $NODE_DIR/sysctl.orig ]]; then
    for s in "${SYSCTLS[@]}"; do echo "$s=$(sysctl -n "$s")"; done >"$NODE_DIR/sysctl.orig"
  fi
  sysctl -qw net.ipv4.ip_forward=1
  configure_store
}

# One S3 identity with generated keys (SeaweedFS accepts any key without one), and the client's view.
configure_store() {
  mkdir -p "$STORE_DIR/data"
  local key secret
  key=$(openssl rand -hex 10) secret=$(openssl rand -hex 20)
  umask 077
  printf '{"identities": [{"name": "mlpipeline", "credentials": [{"accessKey": "%s", "secretKey": "%s"}], "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}\n' \
    "$key" "$secret" >"$STORE_DIR/s3.json"
  printf 'AWS_ENDPOINT_URL=http://%s:%s\nAWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\nMLP_STORE_BUCKET=%s\n' \
    "$NODE_IP" "$STORE_PORT" "$key" "$secret" "$STORE_BUCKET" >"$STORE_DIR/store.env"
  umask 022
}

start_store() {
  start_daemon weed server -dir="$STORE_DIR/data" -ip="$NODE_IP" -ip.bind="$NODE_IP" \
    -master.port=$((STORE_PORT - 1000)) -volume.port=$((STORE_PORT - 2000)) -filer.port=$((STORE_PORT - 3000)) \
    -master.volumeSizeLimitMB=256 -volume.max=16 -s3 -s3.port="$STORE_PORT" -s3.config="$STORE_DIR/s3.json"
  # shellcheck disable=SC1091
  local endpoint; endpoint=$(. "$STORE_DIR/store.env" && echo "$AWS_ENDPOINT_URL")
  wait_for "S3 store up at $endpoint" s3 GET / -o /dev/null || die "the S3 store did not start: see $NODE_DIR/logs/weed.log"
  wait_for "bucket $STORE_BUCKET" s3 PUT "/$STORE_BUCKET" -o /dev/null || die "cannot create bucket $STORE_BUCKET: see $NODE_DIR/logs/weed.log"
}

start_dns() {
  kctl apply -f "$TEMPLATES/coredns-rbac.yaml" >/dev/null
  start_daemon coredns -conf "$NODE_DIR/Corefile"
  # ready: once the kubernetes plugin has listed Services and EndpointSlices
  wait_for "cluster DNS at $NODE_IP:53" curl -fs -o /dev/null "http://127.0.0.1:$DNS_READY_PORT/ready" \
    || die "CoreDNS is not ready: see $NODE_DIR/logs/coredns.log"
}

s3() {  # method, path, curl arguments...: a request signed with the store's identity
  local method=$1 path=$2; shift 2
  (
    # shellcheck disable=SC1091
    . "$STORE_DIR/store.env"
    curl -fsS --max-time 5 --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
      -X "$method" "$AWS_ENDPOINT_URL$path" "$@"
  ) 2>/dev/null
}

up() {
  check_prerequisites
  exec 8>"$STATE/.node-lock"
  flock 8
  if healthy; then log "node $NODE_NAME is already up"; return; fi
  if [[ -d $NODE_DIR ]]; then log "cleaning up a node that is not healthy"; teardown; fi
  local t0=$EPOCHREALTIME
  NODE_IP=${MLP_NODE_IP:-$(ip -4 route get 1.1.1.1 | awk '{ for (i = 1; i < NF; i++) if ($i == "src") print $(i + 1) }')}
  [[ -n $NODE_IP ]] || die "cannot find the host's IP address: set MLP_NODE_IP"
  log "starting node $NODE_NAME ($NODE_IP, pods in $POD_CIDR) in $NODE_DIR"
  configure

  start_daemon containerd --config "$NODE_DIR/containerd.toml"
  wait_for "containerd up" containerd_up || die "containerd did not start: see $NODE_DIR/logs/containerd.log"
  ctr images import --base-name "${SANDBOX_IMAGE%:*}" "$PAUSE_ARCHIVE" >/dev/null
  ctr images ls -q | grep -qxF "$SANDBOX_IMAGE" || die "importing $PAUSE_ARCHIVE did not yield $SANDBOX_IMAGE"

  start_daemon kubelet --config "$NODE_DIR/kubelet.yaml" --kubeconfig "$NODE_DIR/kubelet.kubeconfig" \
    --root-dir "$NODE_DIR/kubelet" --cert-dir "$NODE_DIR/kubelet/pki" --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" \
    --node-labels "$NODE_LABEL"
  wait_for "node $NODE_NAME Ready" node_ready || die "node $NODE_NAME is not Ready: see $NODE_DIR/logs/kubelet.log"

  start_daemon kube-proxy --config "$NODE_DIR/kube-proxy.yaml"
  wait_for "kube-proxy healthy" curl -fs -o /dev/null http://127.0.0.1:11256/healthz \
    || die "kube-proxy is not healthy: see $NODE_DIR/logs/kube-proxy.log"
  start_store
  start_dns
  log "node $NODE_NAME is up ($(since "$t0")); label $NODE_LABEL"
}

# Processes of the node's pods (cgroups under kubepods) and shims of this containerd.
kill_leftovers() {
  local pid f
  for f in /sys/fs/cgroup/*/kubepods; do
    [[ -d $f ]] || continue
    find "$f" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u | while read -r pid; do
      kill -KILL "$pid" 2>/dev/null && log "killed pod process $pid"
    done
  done
  for f in /proc/[0-9]*/cmdline; do
    pid=${f#/proc/}; pid=${pid%/cmdline}
    if [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == "$CONTAINERD_BIN/containerd-shim-runc-v2" ]] \
        && tr '\0' ' ' <"$f" 2>/dev/null | grep -qF -- "$CONTAINERD_SOCK"; then
      kill -KILL "$pid" 2>/dev/null && log "killed shim $pid"
    fi
  done
  return 0
}

# Mounts the node made: under its dir (overlay root filesystems, volumes, the kubelet's bind mount),
# network namespaces of pods, shims' runtime dirs; innermost first.
node_mounts() {
  awk '{ print $5 }' /proc/self/mountinfo | sed 's/\\040/ /g' \
    | grep -E "^($NODE_DIR/|/run/netns/cni-|/run/containerd/|/var/lib/kubelet/)" | tac || true
}

unmount_all() {
  local m
  while read -r m; do
    [[ -n $m ]] || continue
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "could not unmount $m"
  done < <(node_mounts)
  for m in /sys/fs/cgroup/*/kubepods; do
    [[ -d $m ]] && find "$m" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  return 0
}

# iptables chains of kube-proxy (beyond --cleanup), the kubelet and the CNI plugins, in both families.
remove_chains() {
  local ipt table chain
  for ipt in iptables ip6tables; do
    command -v $ipt >/dev/null || continue
    for table in filter nat mangle; do
      $ipt -t $table -S 2>/dev/null | awk '$1 == "-A" && / -j (KUBE|CNI)-/ { $1 = "-D"; print }' | while read -r rule; do
        eval "$ipt -t $table $rule" 2>/dev/null || true
      done
      for chain in $($ipt -t $table -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^(KUBE|CNI)-/ { print $2 }'); do
        $ipt -t $table -F "$chain" 2>/dev/null || true
      done
      for chain in $($ipt -t $table -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^(KUBE|CNI)-/ { print $2 }'); do
        $ipt -t $table -X "$chain" 2>/dev/null || true
      done
    done
  done
}

# Deletes the node's pods while the kubelet runs, so that it unmounts their volumes and the CNI
# plugins tear down their network namespaces.
drain() {
  apiserver_ready && kctl get node "$NODE_NAME" >/dev/null 2>&1 || return 0
  kctl cordon "$NODE_NAME" >/dev/null 2>&1 || true
  if running kubelet; then
    kctl delete pods --all-namespaces --field-selector "spec.nodeName=$NODE_NAME" --grace-period=1 \
      --wait --timeout=60s >/dev/null 2>&1 || log "some pods on $NODE_NAME did not go away in time"
  fi
  kctl delete pods --all-namespaces --field-selector "spec.nodeName=$NODE_NAME" --force --grace-period=0 \
    >/dev/null 2>&1 || true
}

teardown() {
  local saved
  drain
  stop_daemon coredns
  stop_daemon weed
  stop_daemon kube-proxy
  if ! "$KUBE_BIN/kube-proxy" --cleanup >>"$NODE_DIR/logs/kube-proxy-cleanup.log" 2>&1; then
    log "kube-proxy --cleanup failed: see $NODE_DIR/logs/kube-proxy-cleanup.log"
  fi
  stop_daemon kubelet
  # kube-proxy exits by itself once its Node object is gone: delete that only now.
  if apiserver_ready; then kctl delete node "$NODE_NAME" --ignore-not-found --wait=false >/dev/null 2>&1 || true; fi
  kill_leftovers
  stop_daemon containerd
  kill_leftovers
  unmount_all
  remove_chains
  ip link del "$BRIDGE" 2>/dev/null || true
  if [[ -f $NODE_DIR/sysctl.orig ]]; then
    mapfile -t saved <"$NODE_DIR/sysctl.orig"
    sysctl -qw "${saved[@]}" || log "could not restore the sysctls in $NODE_DIR/sysctl.orig"
  fi
  rm -rf "${HOST_DIRS[@]}" /var/lib/cni/results
  local ns
  for ns in /run/netns/cni-*; do  # left when the kubelet could not stop the pods' sandboxes
    [[ -e $ns ]] && ! mountpoint -q "$ns" && rm -f "$ns"
  done
  rmdir /var/lib/kubelet /var/lib/cni /run/netns 2>/dev/null || true
  # Sockets of shims that were killed; a shim's socket has nobody listening once it is gone.
  local sock listening
  listening=$(awk '$4 == "00010000" { print $8 }' /proc/net/unix)
  for sock in /run/containerd/s/*; do
    [[ -S $sock ]] && ! grep -qxF "$sock" <<<"$listening" && rm -f "$sock"
  done
  [[ -d /run/containerd ]] && find /run/containerd -depth -type d -empty -delete
  if [[ -n $(node_mounts) ]]; then
    log "still mounted, keeping $NODE_DIR:"; node_mounts >&2; return 1
  fi
  rm -rf "$NODE_DIR"
}

down() {
  if [[ -d $STATE ]]; then exec 8>"$STATE/.node-lock"; flock 8; fi
  [[ -d $NODE_DIR ]] || { log "node $NODE_NAME is not up"; return 0; }
  mkdir -p "$NODE_DIR/logs"
  local t0=$EPOCHREALTIME
  teardown
  log "node $NODE_NAME is down ($(since "$t0"))"
}

status() {
  if healthy; then
    log "node $NODE_NAME is Ready"
    kctl get node "$NODE_NAME" -o wide
  else
    log "node $NODE_NAME is not up (or not Ready)"
    return 1
  fi
}

import() {  # archive, name
  [[ -f $1 && -n $2 ]] || die "usage: $0 import ARCHIVE NAME"
  running containerd || die "node $NODE_NAME is not up (hack/node.sh up)"
  local t0=$EPOCHREALTIME
  # --base-name alone: the image is NAME:<the archive's ref name>; no other name is created.
  ctr images import --base-name "$2" "$1" >/dev/null
  log "imported $1 ($(since "$t0")):"
  ctr images ls -q | grep -F "$2:" || die "no image named $2:<tag> came out of $1"
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) status ;;
  import) shift; import "${1:-}" "${2:-}" ;;
  store-env) healthy || die "node $NODE_NAME is not up (hack/node.sh up)"; cat "$STORE_DIR/store.env" ;;
  *) echo "usage: $0 up|down|status|import ARCHIVE NAME|store-env" >&2; exit 2 ;;
esac

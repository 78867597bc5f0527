#!/usr/bin/env bash
# `make run`: the operator on this host. Against the local cluster of `make cluster` (when
# $KUBECONFIG is unset and .cluster/kubeconfig exists), with that cluster's parts as its defaults:
#   KUBECONFIG              .cluster/kubeconfig
#   MLP_ARTIFACTS_URI       s3://<bucket> of the S3 store beside the real node (hack/node.sh store-env)
#   AWS_*                   that store's endpoint and keys (the operator lists new data with them)
#   MLP_DATA_PREFIXES       s3://<bucket>/{namespace}/: each namespace's own prefix
#   MLP_STEP_IMAGE          the image `make cluster` built and imported into the real node
#   MLP_POD_NODE_SELECTOR   mlpipeline.dev/real-node=true: step and model pods run for real on real-0
# Each only when not set already. Against any other cluster ($KUBECONFIG set), nothing is assumed.
# Arguments go to `mlpipeline operator` (e.g. --namespace team-a).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOCAL=$ROOT/.cluster/kubeconfig

if [[ -z ${KUBECONFIG:-} && -f $LOCAL ]]; then
  export KUBECONFIG=$LOCAL
  store=$("$ROOT/hack/node.sh" store-env 2>/dev/null) || {
    echo "the local cluster's real node and S3 store are not up: run make cluster" >&2; exit 1; }
  while IFS='=' read -r key value; do
    if [[ -n $key && -z ${!key:-} ]]; then export "$key=$value"; fi
  done <<<"$store"
  export MLP_ARTIFACTS_URI=${MLP_ARTIFACTS_URI:-s3://$MLP_STORE_BUCKET}
  export MLP_DATA_PREFIXES=${MLP_DATA_PREFIXES:-s3://$MLP_STORE_BUCKET/{namespace\}/}
  if [[ -z ${MLP_STEP_IMAGE:-} && -f $ROOT/.cluster/image/image.env ]]; then
    # shellcheck disable=SC1091
    MLP_STEP_IMAGE=$(. "$ROOT/.cluster/image/image.env" && echo "$IMAGE_CONTENT")
    export MLP_STEP_IMAGE
  fi
  export MLP_POD_NODE_SELECTOR=${MLP_POD_NODE_SELECTOR:-mlpipeline.dev/real-node=true}
  echo "[make run] the local cluster: store $MLP_ARTIFACTS_URI, image ${MLP_STEP_IMAGE:-default}, pods on real-0" >&2
fi
exec "$ROOT/.venv/bin/mlpipeline" operator "$@"

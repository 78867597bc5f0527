#!/usr/bin/env bash
# `make cluster`'s last step: what examples/iris-cluster.yaml needs in the local cluster, in namespace
# $1 (default: default): the Secret `artifacts` with the S3 store's endpoint and keys (the pipeline's
# spec.artifacts.secretRef, handed to its pods), and the iris data at
# s3://<bucket>/<namespace>/data/iris.csv. Idempotent.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NAMESPACE=${1:-default}
KUBECTL=${KUBECTL:-$ROOT/.venv/bin/kubectl}
export KUBECONFIG=${KUBECONFIG:-$ROOT/.cluster/kubeconfig}
store=$("$ROOT/hack/node.sh" store-env)
# shellcheck disable=SC1090
. <(echo "$store")
"$KUBECTL" get namespace "$NAMESPACE" >/dev/null 2>&1 || "$KUBECTL" create namespace "$NAMESPACE" >/dev/null
"$KUBECTL" create secret generic artifacts -n "$NAMESPACE" --dry-run=client -o yaml \
  --from-literal=AWS_ENDPOINT_URL="$AWS_ENDPOINT_URL" --from-literal=AWS_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" \
  --from-literal=AWS_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" | "$KUBECTL" apply -f - >/dev/null
target=s3://$MLP_STORE_BUCKET/$NAMESPACE/data/iris.csv
# written as the step pods write to the store (mlpipeline.store), with the store's keys
AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY \
  "$ROOT/.venv/bin/python" - "$ROOT/examples/data/iris.csv" "$target" <<'PY'
import sys
from pathlib import Path

from mlpipeline import store

store.write_bytes(sys.argv[2], Path(sys.argv[1]).read_bytes())
PY
echo "[example-data] namespace $NAMESPACE: Secret artifacts; $target" >&2

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
"$KUBECTL" create namespace "$NAMESPACE" --dry-run=client -o yaml | "$KUBECTL" apply -f - >/dev/null
"$KUBECTL" create secret generic artifacts -n "$NAMESPACE" --dry-run=client -o yaml \
  --from-literal=AWS_ENDPOINT_URL="$AWS_ENDPOINT_URL" --from-literal=AWS_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID" \
  --from-literal=AWS_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY" | "$KUBECTL" apply -f - >/dev/null
key=$NAMESPACE/data/iris.csv
curl -fsS --max-time 30 --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
  -X PUT --data-binary "@$ROOT/examples/data/iris.csv" "$AWS_ENDPOINT_URL/$MLP_STORE_BUCKET/$key" -o /dev/null
echo "[example-data] namespace $NAMESPACE: Secret artifacts; s3://$MLP_STORE_BUCKET/$key" >&2

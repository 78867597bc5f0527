"""The operator as users install it: `helm install` of the chart puts the operator in a pod on the
real node, under the chart's own ServiceAccount and namespaced RBAC (a Role, nothing
cluster-wide); it reaches the API server through the `kubernetes` Service like any in-cluster
client, and runs a pipeline to serving (artifacts on a ReadWriteMany claim: the PVC mode)."""

from __future__ import annotations

import pytest
from mlpipeline.protocol import model_object_name

from tests.cluster.conftest import kube_json
from tests.cluster.test_helm import CHART, helm
from tests.real.conftest import REAL_LABEL, REAL_NODE, Image, SharedStore, logs, run_to_serving, wait_ready


@pytest.mark.namespace_prefix("helm-")
def test_the_chart_s_operator_pod_runs_a_pipeline_under_its_own_rbac(
    real_node: Image, shared_store: SharedStore
) -> None:
    namespace = shared_store.namespace
    repository, _, tag = real_node.name.rpartition(":")
    key, _, value = REAL_LABEL.partition("=")
    key = key.replace(".", "\\.")  # helm --set reads dots as nesting
    helm(
        "install", "mlp", str(CHART), "-n", namespace,
        "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
        "--set", f"watchNamespace={namespace}",
        "--set-string", f"nodeSelector.{key}={value}",
        "--set-string", f"podNodeSelector.{key}={value}",
    )  # fmt: skip
    try:
        wait_ready(namespace, "mlp", "the operator pod Ready", timeout=180)
        operator_pod = kube_json(
            "get", "pods", "-n", namespace, "-l", "app.kubernetes.io/name=mlpipeline-operator"
        )
        assert operator_pod["items"][0]["spec"]["nodeName"] == REAL_NODE
        assert operator_pod["items"][0]["spec"]["serviceAccountName"] == "mlp"
        status = run_to_serving(namespace, "the pipeline serving, run by the operator pod")
        operator_log = logs(namespace, "app.kubernetes.io/name=mlpipeline-operator")
        assert "created Job" in operator_log and "Forbidden" not in operator_log, operator_log[-3000:]
        run = status["run"]["id"]
        wait_ready(namespace, model_object_name("iris", run), "the model Deployment Ready")
    finally:
        helm("uninstall", "mlp", "-n", namespace, check=False)

"""The operator as users install it: `helm install` of the chart puts the operator in a pod on the
real node, under the chart's own ServiceAccount and namespaced RBAC (a Role, nothing
cluster-wide); it reaches the API server through the `kubernetes` Service like any in-cluster
client, and runs a pipeline to serving (artifacts on a ReadWriteMany claim: the PVC mode); then a
schedule retrains it in pods and the scheduled version takes over."""

from __future__ import annotations

import pytest
import yaml
from mlpipeline.protocol import model_object_name

from tests.cluster.conftest import kube_json, kubectl, wait_for
from tests.cluster.test_helm import CHART, helm
from tests.real.conftest import (
    REAL_LABEL,
    REAL_NODE,
    Image,
    SharedStore,
    failing_fast,
    logs,
    real_manifest,
    run_to_serving,
    status_of,
    wait_ready,
)


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
        scheduled = retrained_on_schedule(namespace)
        assert scheduled != run
        wait_ready(
            namespace, model_object_name("iris", scheduled), "the scheduled version's Deployment Ready"
        )
    finally:
        helm("uninstall", "mlp", "-n", namespace, check=False)


def retrained_on_schedule(namespace: str) -> str:
    """Adds a schedule that fires every minute (and a canary with no metrics to wait for) to the
    serving pipeline; returns the scheduled run once its pods trained the version that now serves."""
    document = real_manifest()
    document["spec"]["retrain"] = {"schedule": "* * * * *"}
    document["spec"]["serve"]["canary"] = {"steps": [50], "interval": "5s", "analysis": {"noData": "pass"}}
    kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(document))
    run = wait_for(
        "a run started by the schedule",
        lambda: (
            (r := (failing_fast(status_of(namespace)).get("run") or {})).get("trigger") == "schedule" and r
        ),
        timeout=150,
        interval=2,
    )
    wait_for(
        "the scheduled run trained and serving",
        lambda: (failing_fast(status_of(namespace)).get("serving") or {}).get("stable") == run["id"],
        timeout=600,
        interval=2,
    )
    return str(run["id"])

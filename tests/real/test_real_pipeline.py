"""A pipeline trained and served by real pods on the real node: every step's container runs the
image built here, the model server answers through its Service, and what a step reports reaches
the status."""

from __future__ import annotations

from typing import Any

import httpx
from mlpipeline.protocol import model_object_name

from tests.cluster.conftest import Operator, kube_json, wait_for
from tests.real.conftest import REAL_NODE, SharedStore, logs, run_to_serving, wait_ready


def test_a_pipeline_trains_and_serves_in_real_pods(
    real_operator: Operator, shared_store: SharedStore
) -> None:
    namespace = shared_store.namespace
    status = run_to_serving(namespace, "the pipeline serving from real pods")
    pods = kube_json("get", "pods", "-n", namespace, "-l", "mlpipeline.dev/step")["items"]
    assert {p["spec"]["nodeName"] for p in pods} == {REAL_NODE}
    assert all(p["status"]["phase"] == "Succeeded" for p in pods)
    tune_log = logs(namespace, "mlpipeline.dev/step=tune")
    assert "trial" in tune_log.lower(), tune_log[-2000:]
    run = status["run"]["id"]
    assert (shared_store.path / namespace / "iris" / run / "package" / "model.bentomodel").is_file()
    assert 0.85 <= status["model"]["score"] <= 1.0  # what the real evaluate pod measured on the test split

    wait_ready(namespace, model_object_name("iris", run), "the model Deployment Ready through its probes")
    model_pod = kube_json("get", "pods", "-n", namespace, "-l", "app.kubernetes.io/component=serving")[
        "items"
    ][0]
    assert model_pod["spec"]["nodeName"] == REAL_NODE
    security = model_pod["spec"]["containers"][0]["securityContext"]
    assert security["allowPrivilegeEscalation"] is False and security["capabilities"]["drop"] == ["ALL"]
    service = kube_json("get", "service", "iris", "-n", namespace)["spec"]["clusterIP"]
    record = {"sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.2, "petal_width": 2.3}

    def predict(body: dict[str, Any]) -> httpx.Response | None:
        try:
            return httpx.post(f"http://{service}:3000/predict", json=body, timeout=10)
        except httpx.TransportError:
            return None  # the ClusterIP refuses for about a second after the pod turns Ready

    answer = wait_for("a prediction through the Service", lambda: predict({"records": [record]}), timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.json()[0]["label"] == "virginica"
    refused = predict({"records": [{**record, "petal_length": "abc"}]})
    assert refused is not None and refused.status_code == 400 and "petal_length" in refused.text

"""Serving in the cluster: the first model version becomes stable; a newer one is rolled out as a
canary (replica-ratio traffic split: no Gateway API CRDs are installed here) and promoted, or rolled
back by the abort annotation. The simulated serving pods are not scraped by any Prometheus, so these
canaries run with noData=pass; the analysis itself is tested with real metrics in the workload tier."""

from __future__ import annotations

from typing import Any

from tests.cluster.conftest import Operator, kube_json, kubectl, wait_for
from tests.cluster.test_operator import apply, events, manifest, phase_is, pipeline


def deployments(namespace: str) -> dict[str, dict[str, Any]]:
    items = kube_json("get", "deployments", "-n", namespace)["items"]
    return {d["metadata"]["labels"]["mlpipeline.dev/model-version"]: d for d in items}


def test_first_version_is_stable_then_a_canary_is_promoted(operator: Operator, namespace: str) -> None:
    apply(
        namespace,
        manifest(
            serve={
                "replicas": 2,
                "canary": {
                    "steps": [25, 50],
                    "interval": "2s",
                    "analysis": {"interval": "1s", "noData": "pass"},
                },
            }
        ),
    )
    first = wait_for("the first version serving", lambda: phase_is(namespace, "Serving"), timeout=180)
    v1 = first["run"]["id"]
    assert first["serving"]["stable"] == v1 and first["serving"]["canaryWeight"] == 0
    deployment = deployments(namespace)[v1]
    assert deployment["spec"]["replicas"] == 2
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:3] == ["bentoml", "serve", "mlpipeline.serving.service:ModelService"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["MLP_MODEL_TAG"] == f"mlp-iris:{v1}" and env["MLP_MODEL_URI"].endswith(
        f"/iris/{v1}/package/model.bentomodel"
    )
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    services = {s["metadata"]["name"] for s in kube_json("get", "services", "-n", namespace)["items"]}
    assert {"iris", f"iris-model-{v1}"} <= services

    kubectl("annotate", "-n", namespace, "mlpipeline/iris", "mlpipeline.dev/rerun=2")
    canary = wait_for("the canary", lambda: phase_is(namespace, "Canary"), timeout=180)
    v2 = canary["run"]["id"]
    assert canary["serving"]["canary"] == v2 and canary["serving"]["stable"] == v1
    assert canary["serving"]["provider"] == "replicas"
    promoted = wait_for(
        "the canary promoted",
        lambda: (s := phase_is(namespace, "Serving")) and s["serving"]["stable"] == v2 and s,
        timeout=120,
    )
    assert promoted["serving"]["phase"] == "Promoted"
    wait_for("the old version removed", lambda: set(deployments(namespace)) == {v2}, timeout=60)
    assert deployments(namespace)[v2]["spec"]["replicas"] == 2
    reasons = [e["reason"] for e in events(namespace)]
    assert {"Deployed", "CanaryStarted", "CanaryAnalysis", "CanaryAdvanced", "CanaryPromoted"} <= set(reasons)
    analysis = next(e for e in events(namespace) if e["reason"] == "CanaryAnalysis")
    assert "prometheus=no data" in analysis["message"]


def test_abort_annotation_rolls_the_canary_back(operator: Operator, namespace: str) -> None:
    slow = {"steps": [10, 50], "interval": "10m", "analysis": {"interval": "1s", "noData": "pass"}}
    apply(namespace, manifest(serve={"canary": slow}))
    v1 = wait_for("stable", lambda: phase_is(namespace, "Serving"), timeout=180)["run"]["id"]
    kubectl("annotate", "-n", namespace, "mlpipeline/iris", "mlpipeline.dev/rerun=2")
    v2 = wait_for("the canary", lambda: phase_is(namespace, "Canary"), timeout=180)["run"]["id"]
    wait_for("both versions deployed", lambda: set(deployments(namespace)) == {v1, v2}, timeout=60)
    kubectl("annotate", "-n", namespace, "mlpipeline/iris", "mlpipeline.dev/canary=abort")
    rolled = wait_for("rolled back", lambda: phase_is(namespace, "RolledBack"), timeout=60)
    assert rolled["serving"]["stable"] == v1 and rolled["serving"]["rolledBack"] == v2
    assert "aborted" in rolled["message"]
    assert {c["type"]: c["status"] for c in rolled["conditions"]}["Degraded"] == "True"
    wait_for("the canary removed", lambda: set(deployments(namespace)) == {v1}, timeout=60)
    assert any(e["reason"] == "CanaryRolledBack" for e in events(namespace))
    assert pipeline(namespace)["status"]["serving"]["canaryWeight"] == 0

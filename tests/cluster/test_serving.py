"""Serving in the cluster: the first model version becomes stable; a newer one is rolled out as a
canary (replica-ratio traffic split: no Gateway API CRDs are installed here) and promoted, or rolled
back by the abort annotation. The simulated serving pods are not scraped by any Prometheus, so every
analysis here has no data: canaries run with noData=pass, or with noData=hold to test the hold and
its deadline; the analysis itself is tested with real metrics in the workload tier."""

from __future__ import annotations

import time
from typing import Any

from tests.argocd import health
from tests.cluster.conftest import Operator, kube_json, kubectl, wait_for
from tests.cluster.test_operator import apply, events, jobs, manifest, phase_is, pipeline


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


def rerun(namespace: str, token: str) -> str:
    """A new run of the same spec; returns its id once its canary is in progress."""
    previous = (pipeline(namespace).get("status") or {}).get("run", {}).get("id")
    kubectl("annotate", "--overwrite", "-n", namespace, "mlpipeline/iris", f"mlpipeline.dev/rerun={token}")
    canary = wait_for(
        f"the canary of rerun {token}",
        lambda: (s := phase_is(namespace, "Canary")) and s["run"]["id"] != previous and s,
        timeout=180,
    )
    return str(canary["run"]["id"])


def test_abort_annotation_rolls_the_canary_back(operator: Operator, namespace: str) -> None:
    slow = {"steps": [10, 50], "interval": "10m", "analysis": {"interval": "1s", "noData": "pass"}}
    apply(namespace, manifest(serve={"canary": slow}))
    v1 = wait_for("stable", lambda: phase_is(namespace, "Serving"), timeout=180)["run"]["id"]
    kubectl("annotate", "-n", namespace, "mlpipeline/iris", "mlpipeline.dev/rerun=2")
    v2 = wait_for("the canary", lambda: phase_is(namespace, "Canary"), timeout=180)["run"]["id"]
    wait_for("both versions deployed", lambda: set(deployments(namespace)) == {v1, v2}, timeout=60)
    assert health(pipeline(namespace))[0] == "Progressing"  # Argo CD: the canary's 10-minute step
    kubectl("annotate", "-n", namespace, "mlpipeline/iris", "mlpipeline.dev/canary=pause")
    wait_for("paused", lambda: pipeline(namespace)["status"]["serving"]["phase"] == "Paused", timeout=60)
    assert health(pipeline(namespace))[0] == "Suspended"
    kubectl("annotate", "-n", namespace, "mlpipeline/iris", "mlpipeline.dev/canary=abort", "--overwrite")
    rolled = wait_for("rolled back", lambda: phase_is(namespace, "RolledBack"), timeout=60)
    assert health(pipeline(namespace)) == ("Degraded", rolled["message"])
    assert rolled["serving"]["stable"] == v1 and rolled["serving"]["rolledBack"] == v2
    assert "aborted" in rolled["message"]
    assert {c["type"]: c["status"] for c in rolled["conditions"]}["Degraded"] == "True"
    wait_for("the canary removed", lambda: set(deployments(namespace)) == {v1}, timeout=60)
    assert any(e["reason"] == "CanaryRolledBack" for e in events(namespace))
    assert pipeline(namespace)["status"]["serving"]["canaryWeight"] == 0
    # The annotation stays (as it would in Git): it was acted on once and must not touch the next canary.
    control = pipeline(namespace)["status"]["serving"]["control"]
    assert (control["value"], control["action"], control["canary"]) == ("abort", "abort", v2)
    v3 = rerun(namespace, "3")
    time.sleep(3)  # several analyses with the old annotation in place
    status = pipeline(namespace)["status"]
    assert status["phase"] == "Canary" and status["serving"]["canary"] == v3
    kubectl("annotate", "--overwrite", "-n", namespace, "mlpipeline/iris", "mlpipeline.dev/canary=abort/2")
    again = wait_for("the second abort", lambda: phase_is(namespace, "RolledBack"), timeout=60)
    assert again["serving"]["rolledBack"] == v3 and again["serving"]["stable"] == v1


def test_no_data_holds_until_the_deadline_and_the_next_canary_starts_clean(
    operator: Operator, namespace: str
) -> None:
    """Regression: a rolled-back canary's noDataSince survived in the status (merge patch) and
    rolled the next canary back on its first analysis."""
    hold = {
        "steps": [50],
        "interval": "10m",
        "analysis": {"interval": "1s", "noData": "hold", "noDataDeadline": "4s"},
    }
    apply(namespace, manifest(serve={"canary": hold}))
    v1 = wait_for("stable", lambda: phase_is(namespace, "Serving"), timeout=180)["run"]["id"]
    v2 = rerun(namespace, "2")
    holding = wait_for(
        "holding", lambda: (s := phase_is(namespace, "Canary")) and s["message"].startswith("holding") and s
    )
    assert holding["serving"]["noDataSince"] and holding["serving"]["canaryWeight"] == 50
    rolled = wait_for("rolled back at the deadline", lambda: phase_is(namespace, "RolledBack"), timeout=60)
    assert rolled["serving"]["rolledBack"] == v2 and "noDataDeadline=4s" in rolled["message"]
    assert "noDataSince" not in rolled["serving"] and "canary" not in rolled["serving"]
    v3 = rerun(namespace, "3")
    fresh = wait_for(
        "the next canary holding",
        lambda: (s := phase_is(namespace, "Canary")) and s["message"].startswith("holding") and s,
    )
    assert (
        fresh["serving"]["canary"] == v3
        and fresh["serving"]["noDataSince"] >= fresh["serving"]["stepStartedAt"]
    )
    final = wait_for("the next canary rolled back", lambda: phase_is(namespace, "RolledBack"), timeout=60)
    assert final["serving"]["rolledBack"] == v3 and final["serving"]["stable"] == v1


def test_a_newer_version_mid_canary_replaces_the_old_canary(operator: Operator, namespace: str) -> None:
    """Regression: the superseded canary's Deployment was orphaned and kept taking traffic."""
    slow = {"steps": [10, 50], "interval": "10m", "analysis": {"interval": "1s", "noData": "pass"}}
    apply(namespace, manifest(serve={"replicas": 2, "canary": slow}))
    v1 = wait_for("stable", lambda: phase_is(namespace, "Serving"), timeout=180)["run"]["id"]
    v2 = rerun(namespace, "2")
    wait_for("v1 and v2 deployed", lambda: set(deployments(namespace)) == {v1, v2}, timeout=60)
    v3 = rerun(namespace, "3")
    wait_for("v2 removed, v3 deployed", lambda: set(deployments(namespace)) == {v1, v3}, timeout=60)
    services = {s["metadata"]["name"] for s in kube_json("get", "services", "-n", namespace)["items"]}
    assert f"iris-model-{v2}" not in services
    status = pipeline(namespace)["status"]
    assert status["serving"]["canary"] == v3 and status["serving"]["stable"] == v1
    assert any(e["reason"] == "CanarySuperseded" and v2 in e["message"] for e in events(namespace))


def test_editing_serving_reapplies_it_without_retraining(operator: Operator, namespace: str) -> None:
    apply(namespace, manifest(serve={"replicas": 1}))
    first = wait_for("stable", lambda: phase_is(namespace, "Serving"), timeout=180)
    run = first["run"]["id"]
    slower = {"steps": [5, 20], "interval": "1m", "analysis": {"interval": "2s", "noData": "pass"}}
    apply(namespace, manifest(serve={"replicas": 3, "canary": slower}))
    wait_for("3 replicas", lambda: deployments(namespace)[run]["spec"]["replicas"] == 3, timeout=60)
    status = pipeline(namespace)["status"]
    assert status["run"]["id"] == run and status["phase"] == "Serving" and "canary" not in status["serving"]
    assert status["observedGeneration"] == 2
    assert len(jobs(namespace)) == 5  # no step ran again


def test_a_version_no_replica_of_which_is_ready_is_not_shown_serving(
    operator: Operator, namespace: str
) -> None:
    """Argo CD and users read `phase: Serving` as "the model answers": a model whose pods cannot be
    scheduled (a CPU request no node has) stays Deploying, not Ready, until one is ready."""
    apply(namespace, manifest(serve={"replicas": 1, "cpu": "1000"}))
    waiting = wait_for("Deploying", lambda: phase_is(namespace, "Deploying"), timeout=180)
    version = waiting["run"]["id"]
    assert f"deploying model {version}: none of its 1 replicas is ready yet" in waiting["message"]
    time.sleep(5)  # several looks later (every 2 s), still not shown serving
    held = pipeline(namespace)["status"]
    assert held["phase"] == "Deploying"
    ready = next(c for c in held["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False"
    assert health(pipeline(namespace))[0] == "Progressing"

    apply(namespace, manifest(serve={"replicas": 1, "cpu": "100m"}))
    served = wait_for("Serving", lambda: phase_is(namespace, "Serving"), timeout=120)
    assert served["run"]["id"] == version
    assert (deployments(namespace)[version]["status"].get("readyReplicas") or 0) >= 1

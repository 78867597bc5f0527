"""spec.train.distributed on a real control plane with the real KubeRay operator (built from its Go
module by `make control-plane`): the tune step becomes a RayJob, KubeRay creates its RayCluster, the
real scheduler places the GPU workers on the (kwok) GPU nodes, the operator follows the RayJob by its
jobDeploymentStatus, and cleans up. On kwok's nodes no Ray process runs, so a job never completes:
its deadline ends it, which is how the operator's handling of a failed RayJob is exercised here."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlpipeline.local.server import free_port

from tests.cluster.conftest import KUBECONFIG, Operator, delete_namespace, kube_json, kubectl, wait_for
from tests.cluster.test_operator import GPU_NODES, apply, manifest, phase_is, pipeline
from tests.kuberay import running_kuberay

PREFIX = "kr-"
pytestmark = pytest.mark.serial  # KubeRay's operator acts on RayJobs of every namespace


def new_namespace() -> str:
    name = f"{PREFIX}{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    return name


def distributed(**extra: Any) -> dict[str, Any]:
    return {"workers": 2, "ttl": "0s", **extra}


def test_without_kubray_always_is_refused_and_if_available_tunes_in_a_job(
    cluster: Path, tmp_path: Path
) -> None:
    """Runs before KubeRay's CRDs are installed (by the fixture below, for the rest of the session;
    the cluster fixture removes any an earlier session left)."""
    assert kubectl("get", "crd", "rayjobs.ray.io", check=False).returncode != 0, (
        "KubeRay's CRDs are installed"
    )
    namespace = new_namespace()
    operator = Operator(log=tmp_path / "operator.log", metrics_port=free_port(), namespaces=f"{PREFIX}*")
    operator.start()
    try:
        apply(namespace, manifest("always", train__distributed=distributed(when="Always")))
        apply(namespace, manifest("fallback", train__distributed=distributed()))
        refused = wait_for("refused", lambda: phase_is(namespace, "Failed", "always"), timeout=60)
        assert "KubeRay's RayJob API (ray.io/v1) is not installed" in refused["message"]
        wait_for(
            "a tune Job instead",
            lambda: (
                kubectl("get", "jobs", "-n", namespace, "-l", "mlpipeline.dev/step=tune", "-o", "name").stdout
            ),
            timeout=120,
        )
    finally:
        operator.stop()
        delete_namespace(namespace)


@pytest.fixture(scope="module")
def kuberay(cluster: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    """KubeRay's CRDs and operator, then our operator started after them, watching the kr-* namespaces."""
    logs = tmp_path_factory.mktemp("kuberay")
    with running_kuberay(KUBECONFIG, logs):
        ours = Operator(log=logs / "operator.log", metrics_port=free_port(), namespaces=f"{PREFIX}*")
        ours.start()
        try:
            yield ours
        finally:
            ours.stop()


def rayjobs(namespace: str) -> list[dict[str, Any]]:
    return kube_json("get", "rayjobs", "-n", namespace)["items"]  # type: ignore[no-any-return]


def test_the_tune_step_runs_as_a_rayjob_with_gpu_workers_and_is_followed_to_its_end(
    kuberay: Operator,
) -> None:
    namespace = new_namespace()
    try:
        apply(
            namespace,
            manifest(
                train__resources={"cpu": "2", "memory": "2Gi", "gpu": 0.5},
                train__distributed=distributed(trialsPerWorker=2, when="Always"),
                train__queue="team-a",
                steps={"timeout": "45s"},
            ),
        )
        (rayjob,) = wait_for("the tune RayJob", lambda: rayjobs(namespace), timeout=180)
        run = pipeline(namespace)["status"]["run"]["id"]
        assert rayjob["metadata"]["name"] == f"iris-{run}-tune"
        assert rayjob["metadata"]["ownerReferences"][0]["kind"] == "MLPipeline"
        assert rayjob["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
        assert kube_json("get", "jobs", "-n", namespace, "-l", "mlpipeline.dev/step=tune")["items"] == []

        def placed() -> list[dict[str, Any]]:
            pods = kube_json("get", "pods", "-n", namespace, "-l", "ray.io/node-type=worker")["items"]
            return pods if len(pods) == 2 and all(p["spec"].get("nodeName") for p in pods) else []

        workers = wait_for("2 workers placed", placed, timeout=120)
        assert {p["spec"]["nodeName"] for p in workers} <= GPU_NODES  # by the real scheduler
        assert all(
            p["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1" for p in workers
        )
        (head,) = kube_json("get", "pods", "-n", namespace, "-l", "ray.io/node-type=head")["items"]
        assert head["spec"].get("nodeName") not in GPU_NODES
        # Its NetworkPolicy, made with it: it selects the head and the workers (the test cluster's
        # CNI does not enforce it; tests/unit/test_rayjob.py proves what it lets through)
        policy = kube_json("get", "networkpolicy", rayjob["metadata"]["name"], "-n", namespace)
        assert policy["metadata"]["ownerReferences"][0]["kind"] == "MLPipeline"
        selector = policy["spec"]["podSelector"]["matchLabels"]
        assert selector["mlpipeline.dev/run"] == run
        for pod in (head, *workers):
            assert selector.items() <= pod["metadata"]["labels"].items()
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        wait_for(
            "the RayJob running",
            lambda: (
                (
                    kube_json("get", "rayjob", rayjob["metadata"]["name"], "-n", namespace).get("status")
                    or {}
                ).get("jobDeploymentStatus")
                in ("Running", "Initializing")
            ),
            timeout=60,
        )
        tune = next(s for s in pipeline(namespace)["status"]["run"]["steps"] if s["name"] == "tune")
        assert tune["phase"] in ("Running", "Pending") and tune["job"] == rayjob["metadata"]["name"]

        # No Ray runs on kwok's nodes: the 45 s deadline ends the job, and the pipeline says so.
        status = wait_for("phase Failed", lambda: phase_is(namespace, "Failed"), timeout=180)
        assert "tune failed" in status["message"] and "DeadlineExceeded" in status["message"], status[
            "message"
        ]
        wait_for(
            "the RayCluster deleted (ttl 0s)",
            lambda: kube_json("get", "rayclusters", "-n", namespace)["items"] == [],
            timeout=120,
        )
        kubectl("delete", "mlpipeline", "iris", "-n", namespace)
        wait_for("the RayJob gone with its pipeline", lambda: rayjobs(namespace) == [], timeout=60)
        wait_for(
            "its NetworkPolicy gone with it",
            lambda: kube_json("get", "networkpolicies", "-n", namespace)["items"] == [],
            timeout=60,
        )
    finally:
        delete_namespace(namespace)

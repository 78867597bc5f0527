"""The tune step as a KubeRay RayJob: what is built from the spec, and how its status is read."""

from __future__ import annotations

import shlex
from typing import Any

import pytest
from mlpipeline.api.manifest import load_manifest
from mlpipeline.api.models import DistributedSpec, MLPipelineSpec
from mlpipeline.kube.jobs import OperatorSettings, build_step_job
from mlpipeline.kube.rayjob import build_tune_rayjob, is_active, observe_rayjob

from tests.conftest import EXAMPLES

SETTINGS = OperatorSettings(image="registry.local/mlp:1", artifacts_uri="s3://bucket/mlp")


def spec(gpu: float = 0, queue: str | None = None, **distributed: Any) -> MLPipelineSpec:
    loaded = load_manifest(EXAMPLES / "iris.yaml").spec
    loaded.train.resources = loaded.train.resources.model_copy(update={"gpu": gpu, "cpu": "500m"})
    loaded.train.queue = queue
    loaded.train.distributed = DistributedSpec(**distributed)
    return loaded


def build(s: MLPipelineSpec) -> dict[str, Any]:
    return build_tune_rayjob(pipeline="iris", namespace="ml", uid="u-1", spec=s, run="r1", settings=SETTINGS)


def test_the_rayjob_runs_the_tune_step_a_job_would_run() -> None:
    s = spec(workers=3)
    rayjob = build(s)
    job = build_step_job(
        pipeline="iris", namespace="ml", uid="u-1", spec=s, run="r1", step="tune", settings=SETTINGS
    )
    step = job["spec"]["template"]["spec"]["containers"][0]
    assert rayjob["apiVersion"] == "ray.io/v1" and rayjob["kind"] == "RayJob"
    assert rayjob["metadata"] == job["metadata"]  # name, labels (run, step), owner: found like the Job
    assert shlex.split(rayjob["spec"]["entrypoint"]) == [*step["command"], *step["args"]]
    assert rayjob["spec"]["shutdownAfterJobFinishes"] is True
    assert rayjob["spec"]["ttlSecondsAfterFinished"] == 300
    assert rayjob["spec"]["activeDeadlineSeconds"] == job["spec"]["activeDeadlineSeconds"]
    cluster = rayjob["spec"]["rayClusterSpec"]
    head = cluster["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"  # the driver only: trials go to the workers
    (group,) = cluster["workerGroupSpecs"]
    assert group["replicas"] == group["minReplicas"] == group["maxReplicas"] == 3
    for pod in (head["template"], group["template"]):
        container = pod["spec"]["containers"][0]
        assert container["image"] == "registry.local/mlp:1" and "command" not in container
        assert {e["name"] for e in container["env"]} >= {"MLPIPELINE_SPEC", "RAY_USAGE_STATS_ENABLED"}
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        assert "restartPolicy" not in pod["spec"]


def test_workers_are_sized_for_their_trials_and_land_on_gpu_nodes() -> None:
    rayjob = build(spec(gpu=0.5, workers=2, trials_per_worker=3, queue="team-a"))
    (group,) = rayjob["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    worker = group["template"]["spec"]
    resources = worker["containers"][0]["resources"]
    assert resources["requests"]["cpu"] == "1500m" and group["rayStartParams"]["num-cpus"] == "2"
    assert resources["limits"]["nvidia.com/gpu"] == "2"  # 3 trials x 0.5 GPU, whole devices
    assert worker["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert any(t["key"] == "nvidia.com/gpu" for t in worker["tolerations"])
    head = rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    assert "nodeSelector" not in head and "nvidia.com/gpu" not in head["containers"][0]["resources"]["limits"]
    assert rayjob["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"


def rayjob_with(status: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "RayJob",
        "metadata": {"name": "iris-r1-tune", "labels": {"mlpipeline.dev/run": "r1"}},
        "status": status,
    }


@pytest.mark.parametrize(
    ("deployment", "job_status", "outcome"),
    [
        ("Initializing", "", "active"),
        ("Running", "RUNNING", "active"),
        ("Running", "SUCCEEDED", "active"),  # jobStatus ahead of the deployment: not done yet
        ("Complete", "RUNNING", "succeeded"),  # the deployment's verdict counts (kuberay#2314)
        ("Failed", "SUCCEEDED", "failed"),
        ("Suspended", "", "waiting"),
    ],
)
def test_the_rayjob_is_read_by_its_deployment_status(deployment: str, job_status: str, outcome: str) -> None:
    seen = observe_rayjob(rayjob_with({"jobDeploymentStatus": deployment, "jobStatus": job_status}), [])
    assert seen.run == "r1"
    assert (seen.active, seen.succeeded, seen.failed) == {
        "active": (1, 0, 0),
        "succeeded": (0, 1, 0),
        "failed": (0, 0, 1),
        "waiting": (0, 0, 0),
    }[outcome]
    assert is_active(rayjob_with({"jobDeploymentStatus": deployment})) == (outcome in ("active", "waiting"))


def test_a_failed_rayjob_says_why_and_a_stuck_worker_is_a_pod_problem() -> None:
    failed = observe_rayjob(
        rayjob_with(
            {"jobDeploymentStatus": "Failed", "reason": "DeadlineExceeded", "message": "past 7200 s"}
        ),
        [],
    )
    assert failed.failed_reason == "DeadlineExceeded" and failed.failed_message == "past 7200 s"
    pending = {
        "metadata": {
            "name": "w",
            "creationTimestamp": "2026-11-26T10:00:00Z",
            "labels": {"ray.io/cluster": "iris-r1-tune-x7k2p"},
        },
        "status": {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/3 nodes: GPU",
                }
            ],
        },
    }
    other = {**pending, "metadata": {**pending["metadata"], "labels": {"ray.io/cluster": "another-job"}}}
    running = observe_rayjob(rayjob_with({"jobDeploymentStatus": "Running"}), [pending])
    assert running.pod_problem == "Unschedulable: 0/3 nodes: GPU" and running.pending_since is not None
    assert observe_rayjob(rayjob_with({"jobDeploymentStatus": "Running"}), [other]).pod_problem is None


def test_the_submitter_and_a_gpu_run_s_head_are_placed_like_the_operator_s_other_pods() -> None:
    """KubeRay's default submitter has no placement and no security context: a namespace enforcing
    the restricted Pod Security Standard would refuse it, and it could land outside the pool that
    MLP_POD_NODE_SELECTOR names."""
    settings = OperatorSettings(image="registry.local/mlp:1", node_selector={"pool": "ml"})
    rayjob = build_tune_rayjob(
        pipeline="iris", namespace="ml", uid="u-1", spec=spec(gpu=1, workers=1), run="r1", settings=settings
    )
    submitter = rayjob["spec"]["submitterPodTemplate"]
    container = submitter["spec"]["containers"][0]
    assert container["image"] == "registry.local/mlp:1" and "command" not in container  # KubeRay's command
    assert submitter["spec"]["nodeSelector"] == {"pool": "ml"} and "tolerations" not in submitter["spec"]
    assert submitter["spec"]["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert submitter["metadata"]["labels"]["mlpipeline.dev/pipeline"] == "iris"
    head = rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    worker = rayjob["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"]
    assert head["nodeSelector"] == {"pool": "ml"} and "tolerations" not in head
    assert worker["nodeSelector"]["pool"] == "ml" and worker["tolerations"]

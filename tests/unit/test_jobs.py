"""The step Job builder and the reading of Jobs and pods."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mlpipeline.api.manifest import load_manifest
from mlpipeline.api.models import ArtifactsSpec, MLPipelineSpec
from mlpipeline.engine.serving import Topology
from mlpipeline.kube.jobs import OperatorSettings, build_step_job, parse_selector, pod_gpus, unshared_store
from mlpipeline.kube.observe import observe_job, pod_problem
from mlpipeline.kube.serving import build_serving_objects
from pydantic import ValidationError

from tests.conftest import EXAMPLES

SETTINGS = OperatorSettings(image="registry.local/mlp:1", artifacts_uri="s3://bucket/mlp")


def iris(**train: Any) -> MLPipelineSpec:
    spec = load_manifest(EXAMPLES / "iris.yaml").spec
    if train:
        spec.train.resources = spec.train.resources.model_copy(update=train)
    return spec


def job(step: str, spec: MLPipelineSpec | None = None) -> dict[str, Any]:
    return build_step_job(
        pipeline="iris",
        namespace="ml",
        uid="u-1",
        spec=spec or iris(),
        run="r1234567",
        step=step,
        settings=SETTINGS,
    )


def test_names_labels_owner_and_command() -> None:
    built = job("evaluate")
    meta = built["metadata"]
    assert meta["name"] == "iris-r1234567-evaluate" and meta["namespace"] == "ml"
    assert (
        meta["labels"]["mlpipeline.dev/step"] == "evaluate"
        and meta["labels"]["mlpipeline.dev/run"] == "r1234567"
    )
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "mlpipeline-operator"
    assert meta["ownerReferences"][0] | {} == {
        "apiVersion": "mlpipeline.dev/v1alpha1",
        "kind": "MLPipeline",
        "name": "iris",
        "uid": "u-1",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    container = built["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.local/mlp:1"
    assert container["args"][:3] == ["evaluate", "--out", "s3://bucket/mlp/ml/iris/r1234567/evaluate"]
    assert "--tune" in container["args"]
    spec_env = next(e for e in container["env"] if e["name"] == "MLPIPELINE_SPEC")
    assert json.loads(spec_env["value"])["evaluate"]["min"] == 0.85
    assert built["spec"]["template"]["metadata"]["labels"]["mlpipeline.dev/pipeline"] == "iris"


def test_retries_timeout_and_permanent_exit_codes() -> None:
    spec = iris()
    spec.steps.retries, spec.steps.timeout = 3, "2h"
    built = job("ingest", spec)["spec"]
    assert built["backoffLimit"] == 3 and built["activeDeadlineSeconds"] == 7200
    rule = built["podFailurePolicy"]["rules"][0]
    assert rule["action"] == "FailJob" and rule["onExitCodes"]["values"] == [2, 3]
    assert built["template"]["spec"]["restartPolicy"] == "Never"


def test_gpu_tune_job_lands_on_gpu_nodes() -> None:
    pod = job("tune", iris(gpu=2, cpu="4", memory="8Gi"))["spec"]["template"]["spec"]
    resources = pod["containers"][0]["resources"]
    # 2 GPUs per trial, 2 trials at once (the example's maxConcurrent)
    assert resources["limits"]["nvidia.com/gpu"] == "4" and resources["requests"]["cpu"] == "4"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]


@pytest.mark.parametrize(
    ("per_trial", "concurrent", "pod"),
    [(0.5, 2, 1), (0.25, 3, 1), (0.5, 3, 2), (1, None, 1), (0.3, None, 1), (2, 3, 6)],
)
def test_the_pod_asks_whole_gpus_for_the_trials_running_at_once(
    per_trial: float, concurrent: int | None, pod: int
) -> None:
    assert pod_gpus(per_trial, concurrent) == pod


def test_explicit_placement_wins_and_other_steps_stay_small() -> None:
    spec = iris(gpu=1)
    spec.train.node_selector = {"pool": "a100"}
    spec.train.priority_class_name = "batch-high"
    pod = job("tune", spec)["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "a100"} and pod["priorityClassName"] == "batch-high"
    ingest = job("ingest", spec)["spec"]["template"]["spec"]
    assert (
        "nodeSelector" not in ingest
        and "nvidia.com/gpu" not in ingest["containers"][0]["resources"]["limits"]
    )


def test_cpu_tune_job_has_no_gpu_placement() -> None:
    pod = job("tune")["spec"]["template"]["spec"]
    assert "nodeSelector" not in pod and "tolerations" not in pod


def test_pod_problems_in_words() -> None:
    unschedulable = {
        "status": {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/4 nodes are available",
                }
            ],
        }
    }
    assert pod_problem(unschedulable) == "Unschedulable: 0/4 nodes are available"
    pulling = {
        "status": {
            "phase": "Pending",
            "containerStatuses": [
                {"state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image x"}}}
            ],
        }
    }
    assert pod_problem(pulling) == "ImagePullBackOff: Back-off pulling image x"
    assert pod_problem({"status": {"phase": "Pending"}}) is None


def test_observe_a_failed_job_with_its_exit_code_and_message() -> None:
    job_obj = {
        "metadata": {"name": "iris-r-evaluate", "labels": {"mlpipeline.dev/run": "r"}},
        "status": {
            "failed": 1,
            "startTime": "2026-11-24T10:00:00Z",
            "conditions": [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "PodFailurePolicy",
                    "lastTransitionTime": "2026-11-24T10:01:00Z",
                }
            ],
        },
    }
    pod = {
        "metadata": {"creationTimestamp": "2026-11-24T10:00:00Z"},
        "status": {
            "phase": "Failed",
            "containerStatuses": [
                {"state": {"terminated": {"exitCode": 3, "message": "evaluation gate failed"}}}
            ],
        },
    }
    seen = observe_job(job_obj, [pod])
    assert seen.failed_reason == "PodFailurePolicy" and seen.exit_code == 3
    assert seen.termination_message == "evaluation gate failed" and seen.finished_at == "2026-11-24T10:01:00Z"


def with_artifacts(**artifacts: Any) -> MLPipelineSpec:
    spec = iris()
    spec.artifacts = ArtifactsSpec.model_validate(artifacts)
    return spec


def test_a_store_that_pods_cannot_share_is_named_with_the_fix() -> None:
    local = OperatorSettings(artifacts_uri="file:///artifacts")
    problem = unshared_store(iris(), local)
    assert (
        problem and "file:///artifacts" in problem and "spec.artifacts.pvc" in problem and "s3://" in problem
    )
    assert unshared_store(with_artifacts(uri="/data/out"), SETTINGS)  # a plain path is a pod's own too
    assert unshared_store(iris(), SETTINGS) is None  # s3:// from the operator's default
    assert unshared_store(with_artifacts(pvc="shared"), local) is None  # the claim is mounted there
    assert unshared_store(with_artifacts(pvc="shared", uri="file:///artifacts/team-a"), local) is None
    assert unshared_store(with_artifacts(pvc="shared", uri="file:///elsewhere"), local)


def test_the_pvc_is_mounted_in_step_and_model_pods_and_is_the_default_store() -> None:
    spec = with_artifacts(pvc="shared", secretRef={"name": "creds"})
    step = job("ingest", spec)
    pod = step["spec"]["template"]["spec"]
    assert pod["volumes"] == [{"name": "artifacts", "persistentVolumeClaim": {"claimName": "shared"}}]
    container = pod["containers"][0]
    assert container["volumeMounts"][0]["mountPath"] == "/artifacts"
    assert container["args"][1:3] == ["--out", "file:///artifacts/ml/iris/steps/ingest"]
    objects = build_serving_objects(
        pipeline="iris", namespace="ml", uid="u-1", spec=spec, topology=Topology({"v1": 2}, "v1"),
        provider="replicas", artifact_of={"v1": "file:///artifacts/ml/iris/v1/package/model.bentomodel"},
        settings=SETTINGS,
    )  # fmt: skip
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    model_pod = deployment["spec"]["template"]["spec"]
    assert model_pod["volumes"] == pod["volumes"] and deployment["spec"]["replicas"] == 2
    assert model_pod["containers"][0]["envFrom"] == [{"secretRef": {"name": "creds"}}]
    drain = model_pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert 0 < drain < model_pod.get("terminationGracePeriodSeconds", 30)  # answers while Services forget it
    assert [o["kind"] for o in objects] == [
        "Deployment",
        "Service",
        "Service",
    ]  # no route without Gateway API


def test_the_operator_s_node_selector_places_every_pod_it_creates() -> None:
    pinned = OperatorSettings(artifacts_uri="s3://b/p", node_selector=parse_selector("pool=ml, zone=a"))
    assert pinned.node_selector == {"pool": "ml", "zone": "a"}
    ingest = build_step_job(
        pipeline="iris", namespace="ml", uid="u", spec=iris(), run="r", step="ingest", settings=pinned
    )
    assert ingest["spec"]["template"]["spec"]["nodeSelector"] == {"pool": "ml", "zone": "a"}
    tune = build_step_job(
        pipeline="iris", namespace="ml", uid="u", spec=iris(gpu=1), run="r", step="tune", settings=pinned
    )
    assert tune["spec"]["template"]["spec"]["nodeSelector"] == {
        "pool": "ml", "zone": "a", "nvidia.com/gpu.present": "true",
    }  # fmt: skip
    objects = build_serving_objects(
        pipeline="iris", namespace="ml", uid="u", spec=iris(), topology=Topology({"v1": 1}, "v1"),
        provider="replicas", artifact_of={"v1": "s3://b/p/model.bentomodel"}, settings=pinned,
    )  # fmt: skip
    assert objects[0]["spec"]["template"]["spec"]["nodeSelector"] == {"pool": "ml", "zone": "a"}
    with pytest.raises(ValueError, match="key=value"):
        parse_selector("pool")


def test_a_manifest_cannot_move_its_pods_off_the_platform_s_nodes_or_take_the_operator_s_labels() -> None:
    pinned = OperatorSettings(artifacts_uri="s3://b/p", node_selector={"pool": "ml"})
    spec = iris()
    spec.train.node_selector = {"pool": "shared-gpus", "zone": "a"}  # the chart's podNodeSelector says ml
    spec.steps.pod_labels = {"team": "vision"}
    tune = build_step_job(
        pipeline="iris", namespace="ml", uid="u", spec=spec, run="r", step="tune", settings=pinned
    )["spec"]["template"]
    assert tune["spec"]["nodeSelector"] == {"pool": "ml", "zone": "a"}
    assert tune["metadata"]["labels"]["team"] == "vision"
    assert tune["metadata"]["labels"]["mlpipeline.dev/pipeline"] == "iris"
    with pytest.raises(ValidationError, match=r"steps\.podLabels[\s\S]*operator's own"):
        MLPipelineSpec.model_validate(
            {**spec.model_dump(by_alias=True), "steps": {"podLabels": {"mlpipeline.dev/pipeline": "other"}}}
        )

"""The tune step as a KubeRay RayJob (spec.train.distributed): a RayCluster of its own — a head that
runs the tune step's driver and no trials, and a worker group sized from train.resources — created
for the run and deleted by KubeRay when the job finishes — behind a NetworkPolicy of its own and, with
a KubeRay and Ray that support it, Ray's token authentication. Pure builders and readers."""

from __future__ import annotations

import copy
import math
import shlex
from collections.abc import Mapping
from importlib import metadata
from typing import Any

from mlpipeline.api.models import MLPipelineSpec, parse_duration
from mlpipeline.engine.reconcile import JobObservation
from mlpipeline.kube.jobs import GPU_RESOURCE, OperatorSettings, build_step_job, placement, pod_gpus, secure
from mlpipeline.kube.observe import iso, pending_problem
from mlpipeline.protocol import PIPELINE_LABEL, RUN_LABEL, STEP_LABEL

RAY_API = "ray.io/v1"
RAYJOB = "RayJob"
CLUSTER_LABEL = "ray.io/cluster"
ACTIVE = {"", "New", "Initializing", "Running", "Waiting", "Retrying"}
"""Values of status.jobDeploymentStatus of a RayJob starting or running."""
FINISHED = {"Complete", "Failed", "ValidationFailed"}
"""Its final values; any other (Suspended: held by a queue) may still run."""
NETWORKING_API = "networking.k8s.io/v1"
NETWORK_POLICY = "NetworkPolicy"
DASHBOARD_PORT = 8265  # the dashboard and its Jobs API: where KubeRay submits and follows the job
TOKEN_AUTH_SINCE = (2, 52)
"""The first Ray with token authentication (RAY_AUTH_MODE=token); KubeRay sets it up from v1.5.1."""


def submitter(step: dict[str, Any], light: dict[str, Any]) -> dict[str, Any]:
    """The pod that submits the driver to the cluster (``ray job submit``, KubeRay's command): placed
    and secured as the operator's other pods (KubeRay's default has neither), small."""
    step_container = step["spec"]["containers"][0]
    container: dict[str, Any] = {
        "name": "ray-job-submitter",
        "image": step_container["image"],
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
    }
    pod_spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container], **light}
    secure(container, pod_spec)
    if step["spec"].get("serviceAccountName"):
        pod_spec["serviceAccountName"] = step["spec"]["serviceAccountName"]
    return {"metadata": {"labels": dict(step["metadata"]["labels"])}, "spec": pod_spec}


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for part in text.split(".")[:2]:
        digits = "".join(c for c in part if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def _ray_version() -> str:
    try:
        return metadata.version("ray")
    except metadata.PackageNotFoundError:  # an operator image without Ray: KubeRay only records it
        return "2.0.0"


def build_tune_rayjob(
    *,
    pipeline: str,
    namespace: str,
    uid: str,
    spec: MLPipelineSpec,
    run: str,
    settings: OperatorSettings,
    keys: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The RayJob of a run's tune step: the same image, arguments, environment, placement and owner
    as the tune Job it replaces."""
    assert spec.train.distributed is not None
    distributed = spec.train.distributed
    job = build_step_job(
        pipeline=pipeline,
        namespace=namespace,
        uid=uid,
        spec=spec,
        run=run,
        step="tune",
        settings=settings,
        keys=keys,
    )
    step = job["spec"]["template"]
    step_container = step["spec"]["containers"][0]
    entrypoint = shlex.join([*step_container["command"], *step_container["args"]])

    def pod(name: str, resources: dict[str, Any]) -> dict[str, Any]:
        template: dict[str, Any] = copy.deepcopy(step)
        template["spec"].pop("restartPolicy", None)  # KubeRay restarts Ray pods its way
        container = template["spec"]["containers"][0]
        for key in ("command", "args", "terminationMessagePath", "terminationMessagePolicy"):
            container.pop(key, None)  # KubeRay starts Ray in the container
        container.update(name=name, resources=resources)
        return template

    trial = spec.train.resources
    cpu = round(trial.cores * 1000) * distributed.trials_per_worker  # millicores
    worker: dict[str, Any] = {"cpu": f"{cpu}m", "memory": trial.memory}
    if trial.gpu:
        worker[GPU_RESOURCE] = str(pod_gpus(trial.gpu, distributed.trials_per_worker))
    head_pod = pod(
        "ray-head", {"requests": {"cpu": "500m", "memory": trial.memory}, "limits": {"memory": trial.memory}}
    )
    light = placement(spec, "submit", settings)  # the operator's node selector, no GPU pool
    if trial.gpu:  # the head runs the driver, no trial: no GPU node for it
        for key in ("nodeSelector", "tolerations"):
            head_pod["spec"].pop(key, None)
        head_pod["spec"].update(light)
    worker_limits = {k: v for k, v in worker.items() if k != "cpu"}
    ray_version = _ray_version()
    cluster: dict[str, Any] = {"rayVersion": ray_version}
    if _version(ray_version) >= TOKEN_AUTH_SINCE:
        # KubeRay (v1.5.1 on) makes the token's Secret itself and gives it to the head, the workers
        # and the submitter: the operator never touches a Secret. An older KubeRay drops the field
        # (its CRD prunes it): the NetworkPolicy (build_ray_network_policy) is then the only guard.
        cluster["authOptions"] = {"mode": "token"}
    return {
        "apiVersion": RAY_API,
        "kind": RAYJOB,
        "metadata": job["metadata"],
        "spec": {
            "entrypoint": entrypoint,
            "shutdownAfterJobFinishes": True,
            "ttlSecondsAfterFinished": int(parse_duration(distributed.ttl)),
            "activeDeadlineSeconds": job["spec"]["activeDeadlineSeconds"],
            "submitterPodTemplate": submitter(step, light),
            "rayClusterSpec": {
                **cluster,
                "headGroupSpec": {
                    "rayStartParams": {"num-cpus": "0", "dashboard-host": "0.0.0.0"},
                    "template": head_pod,
                },
                "workerGroupSpecs": [
                    {
                        "groupName": "trials",
                        "replicas": distributed.workers,
                        "minReplicas": distributed.workers,
                        "maxReplicas": distributed.workers,
                        "rayStartParams": {"num-cpus": str(max(math.ceil(cpu / 1000), 1))},
                        "template": pod("ray-worker", {"requests": worker, "limits": worker_limits}),
                    }
                ],
            },
        },
    }


def ray_members(rayjob: dict[str, Any]) -> dict[str, str]:
    """The labels of every pod of a RayJob — its head, workers and submitter carry the tune step's
    (pipeline, run, step). KubeRay's own ray.io/cluster cannot select them ahead: it names the
    RayCluster after the RayJob plus a random suffix."""
    template = rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]
    labels = template["metadata"]["labels"]
    return {key: labels[key] for key in (PIPELINE_LABEL, RUN_LABEL, STEP_LABEL)}


def build_ray_network_policy(rayjob: dict[str, Any], dashboard_peers: list[dict[str, Any]]) -> dict[str, Any]:
    """Who may reach a RayJob's pods: each other, on any port (the head's GCS 6379, client 10001 and
    dashboard 8265, and the raylets' and workers' ports, which Ray picks at random), and
    ``dashboard_peers`` (NetworkPolicy peers: KubeRay's operator, which submits and follows the job
    over HTTP; the chart's networkPolicies.rayDashboardFrom) on the dashboard's port only. Any other
    pod, of this namespace or another, reaches none of them: without it, any pod could submit code
    to the head that runs with the pipeline's store credentials. Named and owned like the RayJob,
    created before it and deleted with it."""
    meta = rayjob["metadata"]
    members = ray_members(rayjob)
    ingress: list[dict[str, Any]] = [{"from": [{"podSelector": {"matchLabels": members}}]}]
    if dashboard_peers:
        ingress.append({"from": dashboard_peers, "ports": [{"protocol": "TCP", "port": DASHBOARD_PORT}]})
    return {
        "apiVersion": NETWORKING_API,
        "kind": NETWORK_POLICY,
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "labels": dict(meta["labels"]),
            "ownerReferences": copy.deepcopy(meta["ownerReferences"]),
        },
        "spec": {
            "podSelector": {"matchLabels": members},
            "policyTypes": ["Ingress"],
            "ingress": ingress,
        },
    }


def is_active(obj: dict[str, Any]) -> bool:
    """Whether a step's Job or RayJob may still run (a superseded one is deleted)."""
    status = obj.get("status") or {}
    if obj.get("kind") == RAYJOB:
        return str(status.get("jobDeploymentStatus") or "") not in FINISHED
    return bool(status.get("active"))


def cluster_pods(rayjob: dict[str, Any], pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The head and worker pods of a RayJob's cluster (KubeRay names it after the RayJob)."""
    name = rayjob["metadata"]["name"]
    return [
        p
        for p in pods
        if ((p.get("metadata") or {}).get("labels") or {}).get(CLUSTER_LABEL, "").startswith(name)
    ]


def observe_rayjob(rayjob: dict[str, Any], pods: list[dict[str, Any]]) -> JobObservation:
    """A RayJob read by its status.jobDeploymentStatus — the deployment's own verdict; its jobStatus
    can lag or contradict it (kuberay#2314) — with the problems of its cluster's pods."""
    status = rayjob.get("status") or {}
    problem, pending_since = pending_problem(cluster_pods(rayjob, pods))
    deployment = str(status.get("jobDeploymentStatus") or "")
    failed = deployment in FINISHED - {"Complete"}
    labels = rayjob["metadata"].get("labels") or {}
    return JobObservation(
        name=rayjob["metadata"]["name"],
        run=labels.get(RUN_LABEL, ""),
        active=int(deployment in ACTIVE),
        succeeded=int(deployment == "Complete"),
        failed=int(failed),
        complete=deployment == "Complete",
        failed_reason=(status.get("reason") or deployment) if failed else None,
        failed_message=status.get("message") if failed else None,
        started_at=iso(status.get("startTime")),
        finished_at=iso(status.get("endTime")),
        pod_problem=problem,
        pending_since=pending_since,
        result={"summary": f"RayJob complete: {status.get('message') or 'tuned on a RayCluster'}"}
        if deployment == "Complete"
        else None,
    )

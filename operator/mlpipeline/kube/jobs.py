"""Pure builders of the Kubernetes objects a pipeline run owns."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlpipeline.api.models import API_VERSION, KIND, LabelRound, MLPipelineSpec, parse_duration
from mlpipeline.engine.labeling import LABEL_STEPS, step_args
from mlpipeline.engine.plan import STEPS, StepInvocation, ingest_spec_key
from mlpipeline.engine.reuse import output_uri
from mlpipeline.protocol import (
    ARTIFACTS_MOUNT,
    COMPONENT_LABEL,
    MODEL_EXPORT,
    PERMANENT_EXIT_CODES,
    PIPELINE_LABEL,
    RUN_LABEL,
    STEP_LABEL,
    TOKEN_ENV,
    job_name,
    label_output,
    model_tag,
    step_output,
    steps_root,
)

GPU_RESOURCE = "nvidia.com/gpu"
GPU_NODE_LABEL = "nvidia.com/gpu.present"
GPU_TOLERATION = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
SMALL_STEP = {"cpu": "500m", "memory": "512Mi"}
MERGE_GRACE = 600  # seconds a merge Job has past its round's deadline to write the partition
TERMINATION_LOG = "/dev/termination-log"
RUN_AS = 10001  # the image's user
POD_SECURITY = {"runAsNonRoot": True, "runAsUser": RUN_AS, "runAsGroup": RUN_AS, "fsGroup": RUN_AS,
                "seccompProfile": {"type": "RuntimeDefault"}}  # fmt: skip
CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


KUBERAY_PEER = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kuberay-system"}}}
"""Where KubeRay's operator runs, unless the chart says otherwise (networkPolicies.rayDashboardFrom)."""


@dataclass(frozen=True)
class OperatorSettings:
    image: str = "ghcr.io/mlpipeline/mlpipeline:0.1.0"
    artifacts_uri: str = "file:///artifacts"
    service_account: str | None = None
    node_selector: dict[str, str] = field(default_factory=dict)  # every pod the operator creates
    # What the operator itself may reach for a pipeline (policy.py): the default Prometheus (always
    # trusted), the URL prefixes of the others it may query, and the prefixes (with {namespace}) it
    # may list data under with its own credentials; empty: <artifacts_uri>/{namespace}/ when s3://.
    prometheus_url: str | None = None
    prometheus_allowed: tuple[str, ...] = ()
    # The label the scrape attaches from a pod's namespace: every canary and drift query matches the
    # pipeline's namespace on it, so that another namespace's pods cannot feed a verdict.
    prometheus_namespace_label: str = "namespace"
    # What a pipeline may run besides the operator's own image and built-in models (policy.py):
    # image references or prefixes ending in "/" (empty: any), and `module:function` model code.
    allowed_images: tuple[str, ...] = ()
    custom_code: bool = True
    data_prefixes: tuple[str, ...] = ()
    list_max_entries: int = 10_000  # files kept of one listing (the newest by name)
    list_timeout: float = 10.0  # seconds one listing (and its row counts) may take
    # A NetworkPolicy per RayJob (kube/rayjob.py), and the peers besides its own pods that may reach
    # its dashboard (KubeRay's operator): NetworkPolicy peers, as the chart renders them to JSON.
    network_policies: bool = True
    ray_dashboard_peers: tuple[dict[str, Any], ...] = (KUBERAY_PEER,)


def parse_list(text: str) -> tuple[str, ...]:
    """``a,b,c`` (the form of MLP_PROMETHEUS_ALLOWED_URLS and MLP_DATA_PREFIXES) as a tuple."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


def parse_selector(text: str) -> dict[str, str]:
    """``key=value,key2=value2`` (the form of MLP_POD_NODE_SELECTOR) as a dict."""
    pairs = [item.split("=", 1) for item in text.split(",") if item.strip()]
    if any(len(pair) != 2 or not pair[0].strip() for pair in pairs):
        raise ValueError(f"invalid node selector {text!r}: use key=value,key2=value2")
    return {key.strip(): value.strip() for key, value in pairs}


def parse_peers(text: str) -> tuple[dict[str, Any], ...]:
    """A JSON list of NetworkPolicy peers (the form of MLP_RAY_DASHBOARD_PEERS); empty text: none."""
    if not text.strip():
        return ()
    peers = json.loads(text)
    if not isinstance(peers, list) or not all(isinstance(p, dict) and p for p in peers):
        raise ValueError(f"invalid NetworkPolicy peers {text!r}: a JSON list of peers (namespaceSelector…)")
    return tuple(peers)


def labels(pipeline: str, run: str | None = None, step: str | None = None) -> dict[str, str]:
    out = {
        "app.kubernetes.io/name": "mlpipeline",
        "app.kubernetes.io/instance": pipeline,
        "app.kubernetes.io/managed-by": "mlpipeline-operator",
        PIPELINE_LABEL: pipeline,
    }
    if run:
        out[RUN_LABEL] = run
    if step:
        out[COMPONENT_LABEL] = step
        out[STEP_LABEL] = step
    return out


def owner_reference(name: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def artifacts_base(spec: MLPipelineSpec, settings: OperatorSettings) -> str:
    """The pipeline's artifact store: its own URI, else its PVC's mount, else the operator's default."""
    if spec.artifacts.uri:
        return spec.artifacts.uri
    return f"file://{ARTIFACTS_MOUNT}" if spec.artifacts.pvc else settings.artifacts_uri


def unshared_store(spec: MLPipelineSpec, settings: OperatorSettings) -> str | None:
    """Why the artifact store cannot carry one step's output to the next pod, or None. A file://
    path without a PersistentVolumeClaim is a different, empty directory in every pod."""
    base = artifacts_base(spec, settings)
    if "://" in base and not base.startswith("file://"):
        return None
    if spec.artifacts.pvc and base.startswith(f"file://{ARTIFACTS_MOUNT}"):
        return None
    where = (
        f"under {ARTIFACTS_MOUNT} (the PVC's mount)" if spec.artifacts.pvc else "on a PersistentVolumeClaim"
    )
    return (
        f"spec.artifacts: {base} is a directory of each pod, not shared between the step pods: "
        f"use an s3:// URI (spec.artifacts.uri, credentials by spec.artifacts.secretRef) or a path {where} "
        "(spec.artifacts.pvc, a ReadWriteMany claim)"
    )


def secure(container: dict[str, Any], pod_spec: dict[str, Any]) -> None:
    """Non-root, no privilege escalation, no capabilities, the runtime's default seccomp profile."""
    container["securityContext"] = dict(CONTAINER_SECURITY)
    pod_spec["securityContext"] = dict(POD_SECURITY)


def mount_artifacts(spec: MLPipelineSpec, container: dict[str, Any], pod_spec: dict[str, Any]) -> None:
    """Gives a step or model container the artifact store's credentials and volume."""
    if spec.artifacts.secret_ref:
        container["envFrom"] = [{"secretRef": {"name": spec.artifacts.secret_ref.name}}]
    if spec.artifacts.pvc:
        container["volumeMounts"] = [{"name": "artifacts", "mountPath": ARTIFACTS_MOUNT}]
        pod_spec["volumes"] = [
            {"name": "artifacts", "persistentVolumeClaim": {"claimName": spec.artifacts.pvc}}
        ]


def step_outputs(
    settings: OperatorSettings,
    spec: MLPipelineSpec,
    namespace: str,
    pipeline: str,
    run: str,
    keys: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Where each step of a run writes: named by its key under the pipeline's steps root once the
    keys are known (ingest has taken the data's fingerprint), else in the run's folder; package
    always in the run's folder (it stamps the run's id into the model; serving reads it there)."""
    base = artifacts_base(spec, settings)
    root = steps_root(base, namespace, pipeline)
    keys = keys or {}
    return {
        step: output_uri(root, step, keys[step])
        if step in keys and step != "package"
        else step_output(base, namespace, pipeline, run, step)
        for step in STEPS
    }


def step_invocation(
    settings: OperatorSettings,
    spec: MLPipelineSpec,
    namespace: str,
    pipeline: str,
    run: str,
    step: str,
    keys: Mapping[str, str] | None = None,
    reuse: bool = True,
) -> StepInvocation:
    """A run's step as its Job invokes it. Ingest takes the data's fingerprint, writes under the
    steps root named by its key, and reuses the output already there (unless ``reuse`` is off)."""
    outputs = step_outputs(settings, spec, namespace, pipeline, run, keys)
    invocation = StepInvocation(step, outputs[step], outputs, pipeline, run, run)
    if step != "ingest":
        return invocation
    root = steps_root(artifacts_base(spec, settings), namespace, pipeline)
    return dataclasses.replace(invocation, out=f"{root}/ingest", keyed=ingest_spec_key(spec), reuse=reuse)


def serving_export(
    settings: OperatorSettings, spec: MLPipelineSpec, namespace: str, pipeline: str, version: str
) -> str:
    """Where a packaged version's model export lies, which its model pods import."""
    package = step_output(artifacts_base(spec, settings), namespace, pipeline, version, "package")
    return f"{package}/{MODEL_EXPORT}"


def _resources(spec: MLPipelineSpec, step: str) -> dict[str, Any]:
    if step != "tune":
        return {"requests": dict(SMALL_STEP), "limits": {"memory": SMALL_STEP["memory"]}}
    wanted = spec.train.resources
    requests: dict[str, Any] = {"cpu": wanted.cpu, "memory": wanted.memory}
    limits: dict[str, Any] = {"memory": wanted.memory}
    if wanted.gpu:
        requests[GPU_RESOURCE] = limits[GPU_RESOURCE] = str(
            pod_gpus(wanted.gpu, spec.train.tune.max_concurrent)
        )
    return {"requests": requests, "limits": limits}


def pod_gpus(per_trial: float, concurrent: int | None) -> int:
    """Whole GPUs for the trials running at once (one trial's worth when that is unset): Kubernetes
    hands out whole devices, Ray shares them between trials by fraction."""
    return max(math.ceil(per_trial * (concurrent or 1) - 1e-9), 1)


def placement(spec: MLPipelineSpec, step: str, settings: OperatorSettings) -> dict[str, Any]:
    """Node selector, tolerations, priority of a step's pods: train's (and the GPU pool's) for tune,
    the operator's node selector for any other pod."""
    if step != "tune":
        return {"nodeSelector": dict(settings.node_selector)} if settings.node_selector else {}
    train = spec.train
    placement: dict[str, Any] = {}
    node_selector = dict(train.node_selector)
    tolerations = [t.model_dump(exclude_none=True) for t in train.tolerations]
    if train.resources.gpu:
        node_selector = node_selector or {GPU_NODE_LABEL: "true"}
        if not any(t.get("key") == GPU_RESOURCE for t in tolerations):
            tolerations.append(dict(GPU_TOLERATION))
    node_selector = {**node_selector, **settings.node_selector}  # the platform's (the chart's) wins
    if node_selector:
        placement["nodeSelector"] = node_selector
    if tolerations:
        placement["tolerations"] = tolerations
    if train.priority_class_name:
        placement["priorityClassName"] = train.priority_class_name
    return placement


def build_step_job(
    *,
    pipeline: str,
    namespace: str,
    uid: str,
    spec: MLPipelineSpec,
    run: str,
    step: str,
    settings: OperatorSettings,
    args: list[str] | None = None,
    timeout: float | None = None,
    env: list[dict[str, Any]] | None = None,
    keys: Mapping[str, str] | None = None,
    reuse: bool = True,
    serving: str | None = None,
) -> dict[str, Any]:
    """The Job that runs one step of one run (or of one labeling round, whose ``args`` and
    ``timeout`` are given); ``keys``: the steps' keys known so far (status.run.steps[*].key);
    ``serving``: the version that serves, which evaluate measures beside the new model."""
    if args is None:
        invocation = step_invocation(settings, spec, namespace, pipeline, run, step, keys, reuse)
        if serving:
            invocation = dataclasses.replace(
                invocation,
                serving=model_tag(pipeline, serving),
                serving_uri=serving_export(settings, spec, namespace, pipeline, serving),
            )
        args = invocation.args()
    step_labels = labels(pipeline, run, step)
    pod_labels = {**spec.steps.pod_labels, **step_labels}
    if spec.train.queue:
        step_labels["kueue.x-k8s.io/queue-name"] = spec.train.queue
    container: dict[str, Any] = {
        "name": "step",
        "image": spec.train.image or settings.image,
        "command": ["python", "-m", "mlpipeline.steps"],
        "args": args,
        "env": [
            {"name": "MLPIPELINE_SPEC", "value": json.dumps(spec.model_dump(by_alias=True, mode="json"))},
            {"name": "MLP_TERMINATION_LOG", "value": TERMINATION_LOG},
            {"name": "RAY_USAGE_STATS_ENABLED", "value": "0"},
            *(env or []),
        ],
        "resources": _resources(spec, step),
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [container],
        **placement(spec, step, settings),
    }
    secure(container, pod_spec)
    mount_artifacts(spec, container, pod_spec)
    if settings.service_account:
        pod_spec["serviceAccountName"] = settings.service_account
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(pipeline, run, step),
            "namespace": namespace,
            "labels": step_labels,
            "ownerReferences": [owner_reference(pipeline, uid)],
        },
        "spec": {
            "backoffLimit": spec.steps.retries,
            "activeDeadlineSeconds": int(timeout or parse_duration(spec.steps.timeout)),
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": "step",
                            "operator": "In",
                            "values": list(PERMANENT_EXIT_CODES),
                        },
                    }
                ]
            },
            "template": {
                "metadata": {"labels": pod_labels, "annotations": dict(spec.steps.pod_annotations)},
                "spec": pod_spec,
            },
        },
    }


def build_labeling_job(
    *,
    pipeline: str,
    namespace: str,
    uid: str,
    spec: MLPipelineSpec,
    current: LabelRound,
    step: str,
    settings: OperatorSettings,
    model_uri: str,
) -> dict[str, Any]:
    """A step of a labeling round: ``label`` (predict and send tasks), or ``merge``, which waits
    for people until the round's deadline (its Job's deadline is that one, plus time to merge)."""
    assert spec.labeling is not None
    base = artifacts_base(spec, settings)
    outputs = {s: label_output(base, namespace, pipeline, current.id, s) for s in LABEL_STEPS}
    args = step_args(step, outputs, pipeline, current, model_tag(pipeline, current.model), model_uri)
    timeout = parse_duration(spec.labeling.deadline) + MERGE_GRACE if step == "merge" else None
    env = []
    studio = spec.labeling.label_studio
    if studio and studio.token_secret_ref:
        ref = studio.token_secret_ref
        env.append({"name": TOKEN_ENV, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}})
    return build_step_job(
        pipeline=pipeline,
        namespace=namespace,
        uid=uid,
        spec=spec,
        run=current.id,
        step=step,
        settings=settings,
        args=args,
        timeout=timeout,
        env=env,
    )

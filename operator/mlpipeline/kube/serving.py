"""Pure builders of the serving objects: a Deployment and a Service per model version, a Service
over every version of a pipeline (the replica-ratio traffic split), and the HTTPRoute whose weights
split traffic between stable and canary (Gateway API) — and the whole set for a serving topology."""

from __future__ import annotations

from typing import Any

from mlpipeline.api.models import GROUP, KIND, MLPipelineSpec
from mlpipeline.engine.serving import GATEWAY_API, Topology
from mlpipeline.kube.jobs import (
    OperatorSettings,
    artifacts_base,
    labels,
    mount_artifacts,
    owner_reference,
    secure,
)
from mlpipeline.protocol import (
    COMPONENT_LABEL,
    PIPELINE_LABEL,
    SERVING_COMPONENT,
    VERSION_LABEL,
    capture_uri,
    model_object_name,
    model_tag,
    route_name,
)

SERVICE = "mlpipeline.serving.service:ModelService"
HTTP_ROUTE_API = "gateway.networking.k8s.io/v1"
DRAIN_SECONDS = 5  # within the pod's default grace period of 30 s


def serving_labels(pipeline: str, version: str | None = None) -> dict[str, str]:
    out = {**labels(pipeline), COMPONENT_LABEL: SERVING_COMPONENT}
    if version:
        out[VERSION_LABEL] = version
    return out


def _meta(name: str, namespace: str, pipeline: str, uid: str, version: str | None) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": namespace,
        "labels": serving_labels(pipeline, version),
        "ownerReferences": [owner_reference(pipeline, uid)],
    }


def build_model_deployment(
    *,
    pipeline: str,
    namespace: str,
    uid: str,
    spec: MLPipelineSpec,
    version: str,
    artifact: str,
    replicas: int,
    settings: OperatorSettings,
) -> dict[str, Any]:
    port = spec.serve.port
    probe = {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 5}
    container: dict[str, Any] = {
        "name": "model",
        "image": spec.train.image or settings.image,
        "command": ["bentoml", "serve", SERVICE, "--host", "0.0.0.0", "--port", str(port)],
        "env": [
            {"name": "MLP_MODEL_TAG", "value": model_tag(pipeline, version)},
            {"name": "MLP_MODEL_URI", "value": artifact},
            *(
                {"name": k, "value": v}
                for k, v in spec.monitoring.server_env(
                    pipeline, capture_uri(artifacts_base(spec, settings), namespace, pipeline)
                ).items()
            ),
        ],
        "ports": [{"name": "http", "containerPort": port}],
        "readinessProbe": probe,
        "livenessProbe": {**probe, "httpGet": {"path": "/livez", "port": "http"}, "initialDelaySeconds": 30},
        # A removed pod keeps answering until every node's proxy has dropped it from the Service,
        # else a canary's removal or a scale-down refuses requests for a second or so.
        "lifecycle": {"preStop": {"sleep": {"seconds": DRAIN_SECONDS}}},
        "resources": {
            "requests": {"cpu": spec.serve.cpu, "memory": spec.serve.memory},
            "limits": {"memory": spec.serve.memory},
        },
    }
    pod_spec: dict[str, Any] = {"containers": [container]}
    secure(container, pod_spec)
    if settings.node_selector:
        pod_spec["nodeSelector"] = dict(settings.node_selector)
    mount_artifacts(spec, container, pod_spec)
    pod_labels = serving_labels(pipeline, version)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(model_object_name(pipeline, version), namespace, pipeline, uid, version),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {PIPELINE_LABEL: pipeline, VERSION_LABEL: version}},
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(port),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": pod_spec,
            },
        },
    }


def build_model_service(
    *, pipeline: str, namespace: str, uid: str, port: int, version: str | None
) -> dict[str, Any]:
    """One version's Service (an HTTPRoute backend), or with no version the pipeline's Service over
    every serving pod (the replica-ratio split)."""
    name = model_object_name(pipeline, version) if version else pipeline
    selector = {PIPELINE_LABEL: pipeline, COMPONENT_LABEL: SERVING_COMPONENT}
    if version:
        selector[VERSION_LABEL] = version
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(name, namespace, pipeline, uid, version),
        "spec": {"selector": selector, "ports": [{"name": "http", "port": port, "targetPort": "http"}]},
    }


def build_http_route(
    *,
    pipeline: str,
    namespace: str,
    uid: str,
    spec: MLPipelineSpec,
    stable: str,
    canary: str | None,
    weight: int,
) -> dict[str, Any]:
    backends = [
        {"name": model_object_name(pipeline, stable), "port": spec.serve.port, "weight": 100 - weight}
    ]
    if canary:
        backends.append(
            {"name": model_object_name(pipeline, canary), "port": spec.serve.port, "weight": weight}
        )
    route: dict[str, Any] = {
        "apiVersion": HTTP_ROUTE_API,
        "kind": "HTTPRoute",
        "metadata": _meta(route_name(pipeline), namespace, pipeline, uid, None),
        "spec": {"rules": [{"backendRefs": backends}]},
    }
    gateway = spec.serve.gateway_ref
    if gateway:
        parent = {"name": gateway.name}
        if gateway.namespace:
            parent["namespace"] = gateway.namespace
        route["spec"]["parentRefs"] = [parent]
    return route


def build_serving_objects(
    *,
    pipeline: str,
    namespace: str,
    uid: str,
    spec: MLPipelineSpec,
    topology: Topology,
    provider: str,
    artifact_of: dict[str, str],
    settings: OperatorSettings,
) -> list[dict[str, Any]]:
    """Everything to apply so that ``topology`` runs: per version a Deployment and a Service, the
    pipeline's Service over all versions, and with the Gateway API the HTTPRoute's weights."""
    common = {"pipeline": pipeline, "namespace": namespace, "uid": uid}
    objects: list[dict[str, Any]] = []
    for version, replicas in topology.replicas.items():
        objects.append(
            build_model_deployment(
                **common,
                spec=spec,
                version=version,
                artifact=artifact_of[version],
                replicas=replicas,
                settings=settings,
            )
        )
        objects.append(build_model_service(**common, port=spec.serve.port, version=version))
    objects.append(build_model_service(**common, port=spec.serve.port, version=None))
    if provider == GATEWAY_API:
        objects.append(
            build_http_route(
                **common, spec=spec, stable=topology.stable, canary=topology.canary, weight=topology.weight
            )
        )
    return objects


def controller_of(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The owner reference marked ``controller: true`` of an object, if any."""
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller") is True:
            return ref  # type: ignore[no-any-return]
    return None


def owned_by(obj: dict[str, Any], pipeline_uid: str) -> bool:
    """Whether ``obj`` is controlled by the MLPipeline of this uid (its controller owner reference
    names it): the only objects the operator changes with force or deletes."""
    ref = controller_of(obj)
    return (
        ref is not None
        and ref.get("uid") == pipeline_uid
        and ref.get("kind") == KIND
        and str(ref.get("apiVersion", "")).split("/")[0] == GROUP
    )


def conflict(existing: dict[str, Any] | None, wanted: dict[str, Any], pipeline_uid: str) -> str | None:
    """Why ``wanted`` must not be applied where ``existing`` (None: nothing of that name) stands:
    an object of that name that this pipeline does not control is someone else's, and is neither
    changed nor, through the owner reference applying would add, later deleted with the pipeline."""
    if existing is None or owned_by(existing, pipeline_uid):
        return None
    meta = wanted["metadata"]
    ref = controller_of(existing)
    if ref is None:
        whose = "not controlled by this MLPipeline"
    elif ref.get("kind") == KIND and ref.get("name") == meta["labels"].get(PIPELINE_LABEL):
        whose = (
            f"controlled by an earlier MLPipeline {ref.get('name')} (uid {ref.get('uid')}), which the "
            "garbage collector removes with it: serving starts once it is gone"
        )
    else:
        whose = f"controlled by {ref.get('kind')} {ref.get('name')}"
    return f"{wanted['kind']} {meta['namespace']}/{meta['name']} exists and is {whose}"


def conflicts(
    objects: list[dict[str, Any]], existing: list[dict[str, Any] | None], pipeline_uid: str
) -> list[str]:
    """Every conflict among the serving objects to apply (``existing[i]``: what stands at the name
    of ``objects[i]``); any one keeps all of them from being applied."""
    return [
        c for obj, found in zip(objects, existing, strict=True) if (c := conflict(found, obj, pipeline_uid))
    ]

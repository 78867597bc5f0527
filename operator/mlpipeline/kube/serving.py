"""Pure builders of the serving objects: a Deployment and a Service per model version, a Service
over every version of a pipeline (the replica-ratio traffic split), and the HTTPRoute whose weights
split traffic between stable and canary (Gateway API)."""

from __future__ import annotations

from typing import Any

from mlpipeline.api.models import MLPipelineSpec
from mlpipeline.kube.jobs import OperatorSettings, labels, owner_reference
from mlpipeline.steps.package import model_name

VERSION_LABEL = "mlpipeline.dev/model-version"
SERVICE = "mlpipeline.serving.service:ModelService"


def model_object_name(pipeline: str, version: str) -> str:
    return f"{pipeline}-model-{version}"


def serving_labels(pipeline: str, version: str | None = None) -> dict[str, str]:
    out = {**labels(pipeline), "app.kubernetes.io/component": "serving"}
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
            {"name": "MLP_MODEL_TAG", "value": f"{model_name(pipeline)}:{version}"},
            {"name": "MLP_MODEL_URI", "value": artifact},
        ],
        "ports": [{"name": "http", "containerPort": port}],
        "readinessProbe": probe,
        "livenessProbe": {**probe, "httpGet": {"path": "/livez", "port": "http"}, "initialDelaySeconds": 30},
        "resources": {
            "requests": {"cpu": spec.serve.cpu, "memory": spec.serve.memory},
            "limits": {"memory": spec.serve.memory},
        },
    }
    if spec.artifacts.secret_ref:
        container["envFrom"] = [{"secretRef": {"name": spec.artifacts.secret_ref.name}}]
    pod_labels = serving_labels(pipeline, version)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(model_object_name(pipeline, version), namespace, pipeline, uid, version),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"mlpipeline.dev/pipeline": pipeline, VERSION_LABEL: version}},
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(port),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": {"containers": [container]},
            },
        },
    }


def build_model_service(
    *, pipeline: str, namespace: str, uid: str, port: int, version: str | None
) -> dict[str, Any]:
    """One version's Service (an HTTPRoute backend), or with no version the pipeline's Service over
    every serving pod (the replica-ratio split)."""
    name = model_object_name(pipeline, version) if version else pipeline
    selector = {"mlpipeline.dev/pipeline": pipeline, "app.kubernetes.io/component": "serving"}
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
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": _meta(f"{pipeline}-model", namespace, pipeline, uid, None),
        "spec": {"rules": [{"backendRefs": backends}]},
    }
    gateway = spec.serve.gateway_ref
    if gateway:
        parent = {"name": gateway.name}
        if gateway.namespace:
            parent["namespace"] = gateway.namespace
        route["spec"]["parentRefs"] = [parent]
    return route


def replica_split(total: int, weight: int) -> tuple[int, int]:
    """(stable, canary) replicas so that the canary's share of pods approximates ``weight`` %."""
    if weight <= 0:
        return total, 0
    canary = max(1, round(total * weight / 100))
    stable = max(total - canary, 1) if weight < 100 else 0
    return stable, canary

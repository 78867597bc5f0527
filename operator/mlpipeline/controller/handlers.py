"""kopf handlers: every watched change of a pipeline, its Jobs or its pods leads to one reconciliation.
No business logic here (see engine/reconcile.py)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import kopf
from prometheus_client import start_http_server

from mlpipeline.api.models import GROUP, PLURAL, VERSION
from mlpipeline.controller.cache import (
    ClusterCache,
    owner_key,
    run_key,
    trim_job,
    trim_pipeline,
    trim_pod,
    trim_rayjob,
)
from mlpipeline.controller.reconciler import Reconciler
from mlpipeline.controller.serving import ServingReconciler
from mlpipeline.kube.client import Kube, load_config
from mlpipeline.kube.jobs import OperatorSettings, parse_selector
from mlpipeline.protocol import PIPELINE_LABEL

_state: dict[str, Reconciler] = {}
_watched: list[str] = []  # the one namespace of a namespaced install; empty: cluster-wide


def settings_from_env() -> OperatorSettings:
    defaults = OperatorSettings()
    return OperatorSettings(
        image=os.environ.get("MLP_STEP_IMAGE", defaults.image),
        artifacts_uri=os.environ.get("MLP_ARTIFACTS_URI", defaults.artifacts_uri),
        service_account=os.environ.get("MLP_STEP_SERVICE_ACCOUNT") or None,
        node_selector=parse_selector(os.environ.get("MLP_POD_NODE_SELECTOR", "")),
    )


def reconciler() -> Reconciler:
    return _state["reconciler"]


@kopf.on.startup()
def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Watch streams that go silent are the most reported kopf problem: bound every request.
    settings.watching.server_timeout = int(os.environ.get("MLP_WATCH_SERVER_TIMEOUT", "60"))
    settings.watching.client_timeout = settings.watching.server_timeout + 30
    settings.watching.connect_timeout = 10
    settings.posting.enabled = False  # our Events are posted explicitly, one per transition
    settings.execution.max_workers = 8
    for plural in ("jobs", "pods", "rayjobs"):  # filtered by the API server, not after the transfer
        settings.watching.label_selectors[plural] = PIPELINE_LABEL
    # A namespaced install has no cluster-wide RBAC: no scanning for namespaces or CRDs.
    settings.scanning.disabled = bool(_watched) and not any(c in _watched[0] for c in "*?!,")
    load_config()
    kube, operator_settings = Kube(), settings_from_env()
    serving = ServingReconciler(
        kube,
        operator_settings,
        os.environ.get("MLP_PROMETHEUS_URL") or None,
        os.environ.get("MLP_PROMETHEUS_VERSION_LABEL", "mlpipeline_dev_model_version"),
    )
    _state["reconciler"] = Reconciler(kube, operator_settings, ClusterCache(), serving)
    port = int(os.environ.get("MLP_METRICS_PORT", "8080"))
    if port:
        start_http_server(port)
        logging.getLogger("mlpipeline.operator").info("metrics on :%d/metrics", port)


# Indices: what reconciliations read, kept by the watch streams (see controller/cache.py). kopf
# fills every index from its initial list before it calls any other handler.
@kopf.index(GROUP, VERSION, PLURAL)
async def pipelines_by_name(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> Any:
    return {(namespace, name): trim_pipeline(body)}


@kopf.index("batch", "v1", "jobs", labels={PIPELINE_LABEL: kopf.PRESENT})
async def jobs_by_pipeline(
    namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any
) -> Any:
    return {owner_key(namespace, labels): trim_job(body)}


@kopf.index("ray.io", "v1", "rayjobs", labels={PIPELINE_LABEL: kopf.PRESENT})
async def rayjobs_by_pipeline(
    namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any
) -> Any:
    return {owner_key(namespace, labels): trim_rayjob(body)}


@kopf.index("", "v1", "pods", labels={PIPELINE_LABEL: kopf.PRESENT})
async def pods_by_run(namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any) -> Any:
    return {run_key(namespace, labels): trim_pod(body)}


@kopf.on.event(GROUP, VERSION, PLURAL)
def pipeline_event(type: str, name: str, namespace: str | None, **kwargs: Any) -> None:
    assert namespace is not None  # MLPipeline is namespaced
    reconciler().cache.attach(kwargs)
    if type == "DELETED":
        reconciler().forget(namespace, name)
        return
    reconciler().reconcile(namespace, name)


def reconcile_owner(namespace: str | None, labels: Mapping[str, str], indices: Mapping[str, Any]) -> None:
    assert namespace is not None
    reconciler().cache.attach(indices)
    reconciler().reconcile(namespace, labels[PIPELINE_LABEL])


@kopf.on.event("batch", "v1", "jobs", labels={PIPELINE_LABEL: kopf.PRESENT})
def job_event(namespace: str | None, labels: Mapping[str, str], **kwargs: Any) -> None:
    reconcile_owner(namespace, labels, kwargs)


@kopf.on.event("ray.io", "v1", "rayjobs", labels={PIPELINE_LABEL: kopf.PRESENT})
def rayjob_event(namespace: str | None, labels: Mapping[str, str], **kwargs: Any) -> None:
    """KubeRay's RayJobs of distributed tune steps (watched once KubeRay's CRD exists)."""
    reconcile_owner(namespace, labels, kwargs)


@kopf.on.event("", "v1", "pods", labels={PIPELINE_LABEL: kopf.PRESENT})
def pod_event(namespace: str | None, labels: Mapping[str, str], **kwargs: Any) -> None:
    reconcile_owner(namespace, labels, kwargs)


def run_operator(namespace: str | None = None) -> None:
    """Runs the operator until interrupted (``mlpipeline operator``)."""
    logging.basicConfig(
        level=os.environ.get("MLP_LOG_LEVEL", "INFO"), format="%(asctime)s %(name)s %(message)s"
    )
    _watched[:] = [namespace] if namespace else []
    kopf.run(
        clusterwide=namespace is None,
        namespaces=[namespace] if namespace else [],
        standalone=True,
    )

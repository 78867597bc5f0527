"""kopf handlers: every watched change of a pipeline, its Jobs or its pods leads to one reconciliation.
No business logic here (see engine/reconcile.py)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

import kopf
from prometheus_client import start_http_server

from mlpipeline.api.models import GROUP, PLURAL, VERSION
from mlpipeline.controller.cache import (
    JOBS,
    PODS,
    RAYJOBS,
    ClusterCache,
    noticed,
    owner_key,
    pack,
    run_key,
    trim_job,
    trim_pipeline,
    trim_pod,
    trim_rayjob,
    without_status,
)
from mlpipeline.controller.leader import LeaderElection
from mlpipeline.controller.reconciler import Reconciler
from mlpipeline.controller.serving import ServingReconciler
from mlpipeline.kube.client import Kube, load_config
from mlpipeline.kube.jobs import OperatorSettings, parse_selector
from mlpipeline.protocol import PIPELINE_LABEL

log = logging.getLogger("mlpipeline.operator")
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
    settings.execution.max_workers = 2  # handlers only enqueue (Reconciler.pool reconciles)
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


# Indices: what reconciliations read, kept by the watch streams (see controller/cache.py). kopf
# fills every index from its initial list before it calls any other handler. Each also notes in the
# object's memo whether this event changed anything the operator reads ("news").
@kopf.index(GROUP, VERSION, PLURAL)
async def pipelines_by_name(
    namespace: str | None, name: str, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> Any:
    trimmed = trim_pipeline(body)
    memo["news"] = noticed(memo, pack(without_status(trimmed)))
    return {(namespace, name): pack(trimmed)}


def _owned(trim: Callable[[kopf.Body], dict[str, Any]], key: Callable[..., tuple[str, ...]]) -> Any:
    async def index(
        namespace: str | None, labels: Mapping[str, str], body: kopf.Body, memo: kopf.Memo, **_: Any
    ) -> Any:
        packed = pack(trim(body))
        memo["news"] = noticed(memo, packed)
        return {key(namespace, labels): packed}

    return index


OWNED = {PIPELINE_LABEL: kopf.PRESENT}
jobs_by_pipeline = kopf.index("batch", "v1", "jobs", labels=OWNED, id=JOBS)(_owned(trim_job, owner_key))
rayjobs_by_pipeline = kopf.index("ray.io", "v1", "rayjobs", labels=OWNED, id=RAYJOBS)(
    _owned(trim_rayjob, owner_key)
)
pods_by_run = kopf.index("", "v1", "pods", labels=OWNED, id=PODS)(_owned(trim_pod, run_key))


@kopf.on.event(GROUP, VERSION, PLURAL)
async def pipeline_event(
    type: str, name: str, namespace: str | None, body: kopf.Body, memo: kopf.Memo, **kwargs: Any
) -> None:
    assert namespace is not None  # MLPipeline is namespaced
    cache = reconciler().cache
    cache.attach(kwargs)
    if type == "DELETED":
        reconciler().forget(namespace, name)
        return
    if not memo.get("news", True) and cache.is_our_status(namespace, name, body.get("status")):
        return  # our own status write coming back
    reconciler().enqueue(namespace, name)


@kopf.on.event("batch", "v1", "jobs", labels=OWNED)
@kopf.on.event("ray.io", "v1", "rayjobs", labels=OWNED)  # KubeRay's, watched once its CRD exists
@kopf.on.event("", "v1", "pods", labels=OWNED)
async def owned_event(
    type: str, namespace: str | None, labels: Mapping[str, str], memo: kopf.Memo, **kwargs: Any
) -> None:
    """A Job, RayJob or pod changed: its pipeline is reconciled, unless nothing it reads changed."""
    assert namespace is not None
    reconciler().cache.attach(kwargs)
    if type == "DELETED" or memo.get("news", True):
        reconciler().enqueue(namespace, labels[PIPELINE_LABEL])


def lead() -> LeaderElection | None:
    """With MLP_LEADER_ELECTION=true (the chart's default), blocks until this replica holds the Lease
    and keeps it; a replica that loses it exits (its pod restarts as a standby)."""
    if os.environ.get("MLP_LEADER_ELECTION", "false").lower() != "true":
        return None
    load_config()
    election = LeaderElection(
        Kube(),
        namespace=os.environ.get("MLP_LEASE_NAMESPACE") or "default",
        name=os.environ.get("MLP_LEASE_NAME") or "mlpipeline-operator",
        duration=float(os.environ.get("MLP_LEASE_SECONDS", "15")),
    )
    election.acquire()

    def lost() -> None:
        log.error("lost the Lease: exiting, so that only one replica acts")
        os._exit(1)

    election.keep(lost)
    return election


def run_operator(namespace: str | None = None) -> None:
    """Runs the operator until interrupted (``mlpipeline operator``)."""
    logging.basicConfig(
        level=os.environ.get("MLP_LOG_LEVEL", "INFO"), format="%(asctime)s %(name)s %(message)s"
    )
    port = int(os.environ.get("MLP_METRICS_PORT", "8080"))
    if port:  # before leading: a standby answers the readiness probe too
        start_http_server(port)
        log.info("metrics on :%d/metrics", port)
    election = lead()
    _watched[:] = [namespace] if namespace else []
    code = 1
    try:
        kopf.run(
            clusterwide=namespace is None,
            namespaces=[namespace] if namespace else [],
            standalone=True,
        )
        code = 0
    except Exception:
        log.exception("kopf stopped on an error")
    finally:
        if election:
            election.release()
        # kopf stops for good when one of its watch streams fails (e.g. a CRD deleted while
        # watched): exit, so that the pod restarts on a fresh discovery of the cluster, instead of
        # living on with reconciliation threads and timers but no watch.
        log.info("operator stopped (exit %d)", code)
        logging.shutdown()
        os._exit(code)

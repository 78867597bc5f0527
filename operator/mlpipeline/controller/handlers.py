"""kopf handlers: every watched change of a pipeline (here) or of its Jobs, RayJobs and pods (the
informers started here, kube/informer.py) leads to one reconciliation. No business logic here (see
engine/reconcile.py)."""

from __future__ import annotations

import logging
import os
from typing import Any

import kopf
from prometheus_client import start_http_server

from mlpipeline import policy
from mlpipeline.api.models import GROUP, PLURAL, VERSION
from mlpipeline.controller import memory
from mlpipeline.controller.cache import ClusterCache, noticed, without_status
from mlpipeline.controller.leader import LeaderElection
from mlpipeline.controller.reconciler import Reconciler
from mlpipeline.controller.serving import ServingReconciler
from mlpipeline.kube.client import Kube
from mlpipeline.kube.connection import load_connection
from mlpipeline.kube.informer import PAGE as LIST_PAGE
from mlpipeline.kube.informer import exact_namespace, pack
from mlpipeline.kube.jobs import OperatorSettings, parse_list, parse_peers, parse_selector
from mlpipeline.monitoring.prometheus import LABEL_NAME

log = logging.getLogger("mlpipeline.operator")
_state: dict[str, Reconciler] = {}
_watched: list[str] = []  # the namespace (or pattern) given to the operator; empty: all


def settings_from_env() -> OperatorSettings:
    """The operator's settings; a malformed allow-list or prefix stops it at start (ValueError)."""
    defaults = OperatorSettings()
    prometheus_url = os.environ.get("MLP_PROMETHEUS_URL") or None
    allowed = parse_list(os.environ.get("MLP_PROMETHEUS_ALLOWED_URLS", ""))
    policy.parse_allowed(list(allowed))
    if prometheus_url:
        try:
            policy.parse_endpoint(prometheus_url)
        except policy.NotAllowed as exc:
            raise ValueError(f"prometheus.url (MLP_PROMETHEUS_URL): {prometheus_url!r} {exc}") from None
    prefixes = tuple(
        policy.check_prefix_template(p) for p in parse_list(os.environ.get("MLP_DATA_PREFIXES", ""))
    )
    peers = os.environ.get("MLP_RAY_DASHBOARD_PEERS")
    images = tuple(policy.check_image_prefix(i) for i in parse_list(os.environ.get("MLP_ALLOWED_IMAGES", "")))
    custom_code = os.environ.get("MLP_CUSTOM_CODE", "true").lower()
    if custom_code not in ("true", "false"):
        raise ValueError(f"pipelines.customCode (MLP_CUSTOM_CODE): {custom_code!r} is neither true nor false")
    namespace_label = os.environ.get("MLP_PROMETHEUS_NAMESPACE_LABEL", defaults.prometheus_namespace_label)
    if namespace_label and not LABEL_NAME.fullmatch(namespace_label):
        variable = "prometheus.namespaceLabel (MLP_PROMETHEUS_NAMESPACE_LABEL)"
        raise ValueError(f"{variable}: {namespace_label!r} is not a Prometheus label name")
    return OperatorSettings(
        image=os.environ.get("MLP_STEP_IMAGE", defaults.image),
        artifacts_uri=os.environ.get("MLP_ARTIFACTS_URI", defaults.artifacts_uri),
        service_account=os.environ.get("MLP_STEP_SERVICE_ACCOUNT") or None,
        node_selector=parse_selector(os.environ.get("MLP_POD_NODE_SELECTOR", "")),
        prometheus_url=prometheus_url,
        prometheus_allowed=allowed,
        prometheus_namespace_label=namespace_label,
        allowed_images=images,
        custom_code=custom_code == "true",
        data_prefixes=prefixes,
        list_max_entries=int(os.environ.get("MLP_LIST_MAX_ENTRIES", defaults.list_max_entries)),
        list_timeout=float(os.environ.get("MLP_LIST_TIMEOUT_SECONDS", defaults.list_timeout)),
        network_policies=os.environ.get("MLP_NETWORK_POLICIES", "true").lower() == "true",
        ray_dashboard_peers=parse_peers(peers) if peers is not None else defaults.ray_dashboard_peers,
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
    # A (re)start reads every pipeline at once: in pages, each pipeline's worker gone soon after its
    # event, so that the burst's garbage is small (the allocator keeps what a burst grew: memory.py).
    settings.watching.chunk_size = LIST_PAGE
    settings.queueing.idle_timeout = 0.5
    # A namespaced install has no cluster-wide RBAC: no scanning for namespaces or CRDs.
    settings.scanning.disabled = bool(_watched) and exact_namespace(_watched[0]) is not None
    kube, operator_settings = Kube(), settings_from_env()
    serving = ServingReconciler(
        kube,
        operator_settings,
        operator_settings.prometheus_url,
        os.environ.get("MLP_PROMETHEUS_VERSION_LABEL", "mlpipeline_dev_model_version"),
    )
    cache = ClusterCache()
    _state["reconciler"] = reconciling = Reconciler(kube, operator_settings, cache, serving)
    cache.watch(
        kube,
        _watched[0] if _watched else None,
        reconciling.enqueue,
        settings.watching.server_timeout or 60,
        refused,
    )


@kopf.on.login()
def login(**_: Any) -> kopf.ConnectionInfo:
    """kopf's own connection, from the same credentials as the operator's (kube/connection.py);
    kopf calls it again when the API server answers 401 (a rotated token)."""
    return load_connection(fresh=True)


def refused(why: str) -> None:
    exit_process(1, f"the API server refuses a list the operator needs (its RBAC?), exiting: {why}")


def exit_process(code: int, message: str) -> None:
    """Ends the process at once (kopf's loop and the reconcilers' threads with it), after the log."""
    log.log(logging.ERROR if code else logging.INFO, message)
    logging.shutdown()
    os._exit(code)


@kopf.on.event(GROUP, VERSION, PLURAL)
async def pipeline_event(
    type: str, name: str, namespace: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    """A pipeline changed (or was listed at start): it is reconciled, unless the change is only our
    own status write coming back. Its Jobs, RayJobs and pods are not kopf's to watch: see
    kube/informer.py."""
    assert namespace is not None  # MLPipeline is namespaced
    cache = reconciler().cache
    if type == "DELETED":
        if cache.drop_pipeline(namespace, name, body.get("metadata", {}).get("uid")):
            reconciler().forget(namespace, name)
        return
    news = noticed(memo, pack(without_status(cache.put_pipeline(body))))
    if not news and cache.is_our_status(namespace, name, body.get("status")):
        return
    reconciler().enqueue(namespace, name)


def lead() -> LeaderElection | None:
    """With MLP_LEADER_ELECTION=true (the chart's default), blocks until this replica holds the Lease
    and keeps it; a replica that loses it exits (its pod restarts as a standby)."""
    if os.environ.get("MLP_LEADER_ELECTION", "false").lower() != "true":
        return None
    election = LeaderElection(
        Kube(),
        namespace=os.environ.get("MLP_LEASE_NAMESPACE") or "default",
        name=os.environ.get("MLP_LEASE_NAME") or "mlpipeline-operator",
        duration=float(os.environ.get("MLP_LEASE_SECONDS", "15")),
    )
    election.acquire()

    def lost() -> None:
        exit_process(1, "lost the Lease: exiting, so that only one replica acts")

    election.keep(lost)
    return election


def run_operator(namespace: str | None = None) -> None:
    """Runs the operator until interrupted (``mlpipeline operator``)."""
    logging.basicConfig(
        level=os.environ.get("MLP_LOG_LEVEL", "INFO"), format="%(asctime)s %(name)s %(message)s"
    )
    memory.limit_arenas()
    try:
        settings_from_env()  # read again at start-up; a bad value stops here, with its message
    except ValueError as exc:
        exit_process(2, f"invalid operator setting: {exc}")
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
        exit_process(code, f"operator stopped (exit {code})")

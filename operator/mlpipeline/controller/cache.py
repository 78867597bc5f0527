"""What a reconciliation reads of the cluster — a pipeline, its Jobs, RayJobs and pods — from memory:
the pipelines as kopf's watch brings them, the owned objects from our own list+watch
(kube/informer.py; filled from its first list before any reconciliation reads), plus the operator's
own writes until the watch brings them back.

Only the fields the operator reads are kept (trim_*), as compressed compact JSON (compress): a
pipeline with its five Jobs and pods takes about 3.8 KB so (8 KB as JSON text, 55 KB as Python
dicts); a reconciliation expands the few it reads."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

from mlpipeline.kube.client import Kube
from mlpipeline.kube.informer import Informer, Key, Resource, Store, compress, expand, pack
from mlpipeline.kube.rayjob import CLUSTER_LABEL
from mlpipeline.protocol import PIPELINE_LABEL, RUN_LABEL

Body = dict[str, Any]
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
LABEL_PREFIX = PIPELINE_LABEL.split("/")[0] + "/"
READ_LABELS = ("job-name", CLUSTER_LABEL)


def _pick(mapping: Mapping[str, Any] | None, *keys: str) -> dict[str, Any]:
    return {k: mapping[k] for k in keys if mapping and mapping.get(k) is not None}


def trim_pipeline(body: Mapping[str, Any]) -> Body:
    """The pipeline without what only clients read: managed fields, kubectl's last applied copy."""
    meta = dict(body["metadata"])
    meta.pop("managedFields", None)
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != LAST_APPLIED}
    meta["annotations"] = annotations
    return {**{k: v for k, v in body.items() if k != "metadata"}, "metadata": meta}


def _labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    """The labels the operator reads: its own, the Job's name on a pod, the RayCluster's on Ray's pods."""
    return {k: v for k, v in (labels or {}).items() if k.startswith(LABEL_PREFIX) or k in READ_LABELS}


def _meta(body: Mapping[str, Any]) -> dict[str, Any]:
    meta = _pick(body["metadata"], "name", "namespace", "creationTimestamp", "deletionTimestamp")
    meta["labels"] = _labels(body["metadata"].get("labels"))
    return meta


JOB_STATUS = (
    "active",
    "succeeded",
    "failed",
    "uncountedTerminatedPods",
    "conditions",
    "startTime",
    "completionTime",
)


def trim_job(body: Mapping[str, Any]) -> Body:
    """What observe.py reads of a Job (not ready or terminating: they change often and say nothing
    the steps' state depends on; of its conditions, those that hold, without their times)."""
    status = _pick(body.get("status"), *JOB_STATUS)
    if "conditions" in status:
        held = [_pick(c, "type", "status", "reason", "message") for c in status["conditions"]]
        status["conditions"] = [c for c in held if c.get("status") == "True"]
    return {"kind": "Job", "metadata": _meta(body), "status": status}


def trim_rayjob(body: Mapping[str, Any]) -> Body:
    status = _pick(body.get("status"), "jobDeploymentStatus", "reason", "message", "startTime", "endTime")
    return {"kind": "RayJob", "metadata": _meta(body), "status": status}


def _container(status: Mapping[str, Any]) -> dict[str, Any]:
    return {"state": dict(status.get("state") or {})}


def trim_pod(body: Mapping[str, Any]) -> Body:
    """What observe.py reads of a pod: phase, why it is not scheduled, its containers' states."""
    status = body.get("status") or {}
    scheduled = [
        _pick(c, "type", "status", "reason", "message")
        for c in status.get("conditions") or []
        if c.get("type") == "PodScheduled" and c.get("status") == "False"
    ]
    trimmed: dict[str, Any] = {"phase": status.get("phase"), "conditions": scheduled}
    for field in ("containerStatuses", "initContainerStatuses"):
        if status.get(field):
            trimmed[field] = [_container(c) for c in status[field]]
    return {"metadata": _meta(body), "status": trimmed}


def digest(value: Any) -> int:
    return hash(pack(value))


def noticed(memo: MutableMapping[str, Any], packed: str) -> bool:
    """Whether an object's event brings a value other than its previous event did (kopf's per-object
    memo keeps the last one's hash): events that change nothing the operator reads need no
    reconciliation."""
    new = hash(packed)
    changed = memo.get("digest") != new
    memo["digest"] = new
    return changed


def without_status(pipeline: Body) -> Body:
    """What others write of a pipeline: its spec, labels and annotations, its deletion."""
    meta = {k: v for k, v in pipeline["metadata"].items() if k != "resourceVersion"}
    return {**{k: v for k, v in pipeline.items() if k != "status"}, "metadata": meta}


def _version(body: Mapping[str, Any]) -> int:
    try:
        return int(body["metadata"].get("resourceVersion") or 0)
    except ValueError:
        return 0


def owner_key(body: Mapping[str, Any]) -> Key:
    meta = body["metadata"]
    return (meta.get("namespace") or "", meta["labels"][PIPELINE_LABEL])


def run_key(body: Mapping[str, Any]) -> Key:
    meta = body["metadata"]
    return (*owner_key(body), meta["labels"].get(RUN_LABEL, ""))


OWNED = {
    "jobs": (Resource("batch/v1", "jobs"), trim_job, owner_key),
    "rayjobs": (Resource("ray.io/v1", "rayjobs"), trim_rayjob, owner_key),  # KubeRay's, once installed
    "pods": (Resource("v1", "pods"), trim_pod, run_key),
}


class ClusterCache:
    """The pipelines (put here by the watch's handler) and the objects they own (kept by informers),
    merged with the operator's writes not yet seen on a watch stream."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pipelines: dict[tuple[str, str], bytes] = {}  # compressed, as the watch brought them
        self.owned = {plural: Store(trim, key) for plural, (_, trim, key) in OWNED.items()}
        self.informers: list[Informer] = []
        self.written: dict[tuple[str, str], Body] = {}  # pipelines, as our status patches returned them
        self.created: dict[tuple[str, str], dict[str, Body]] = {}  # Jobs and RayJobs we created, by name
        self.statuses: dict[tuple[str, str], int] = {}  # digest of the status we last wrote

    def watch(
        self,
        kube: Kube,
        namespaces: str | None,
        changed: Callable[[str, str], None],
        watch_seconds: int = 60,
        refused: Callable[[str], None] = lambda why: None,
    ) -> None:
        """Starts the informers of the owned objects (of the namespaces matching a pattern, or of
        all: as the operator's --namespace). ``changed`` is called with a pipeline's namespace and
        name when something it owns changed; ``refused`` when a first list is refused for good (RBAC)."""
        for plural, (resource, _, _) in OWNED.items():
            informer = Informer(
                kube,
                resource,
                self.owned[plural],
                lambda key: changed(key[0], key[1]),
                namespaces=namespaces,
                selector=PIPELINE_LABEL,
                optional=plural == "rayjobs",
                watch_seconds=watch_seconds,
                refused=refused,
            )
            self.informers.append(informer.start())

    def wait_synced(self, timeout: float | None = None) -> bool:
        """Whether every informer has its first list in (at once when there are none: a test)."""
        return all(i.synced.wait(timeout) for i in self.informers)

    def put_pipeline(self, body: Mapping[str, Any]) -> Body:
        """A pipeline as its watch brought it; returns it trimmed. Our write it brings back (or a
        later version) is no longer kept apart: a pipeline's last status write would otherwise be
        held as dicts (14 KB) until its next reconciliation, which a finished pipeline may never have."""
        meta, trimmed = body["metadata"], trim_pipeline(body)
        key = (meta["namespace"], meta["name"])
        with self.lock:
            self.pipelines[key] = compress(trimmed)
            ours = self.written.get(key)
            if ours is not None and _version(ours) <= _version(trimmed):
                del self.written[key]
        return trimmed

    def pipeline(self, namespace: str, name: str) -> Body | None:
        with self.lock:
            packed = self.pipelines.get((namespace, name))
            ours = self.written.get((namespace, name))
            if packed is None:
                self.written.pop((namespace, name), None)  # deleted (or never seen): nothing to overlay
                return None
            stored: Body = expand(packed)
            if ours is not None and _version(ours) > _version(stored):
                return ours
            self.written.pop((namespace, name), None)
        return stored

    def jobs(self, namespace: str, pipeline: str) -> list[Body]:
        """The pipeline's Jobs and RayJobs."""
        key = (namespace, pipeline)
        seen = self.owned["jobs"].get(key) + self.owned["rayjobs"].get(key)
        names = {j["metadata"]["name"] for j in seen}
        with self.lock:
            pending = self.created.get((namespace, pipeline), {})
            for name in names & pending.keys():
                del pending[name]
            if not pending:
                self.created.pop((namespace, pipeline), None)
            return seen + list(pending.values())

    def pods(self, namespace: str, pipeline: str, run: str) -> list[Body]:
        return self.owned["pods"].get((namespace, pipeline, run))

    def wrote(self, pipeline: Body) -> None:
        """A pipeline as the API server returned it after our write."""
        meta = pipeline["metadata"]
        key = (meta["namespace"], meta["name"])
        with self.lock:
            self.written[key] = trim_pipeline(pipeline)
            self.statuses[key] = digest(pipeline.get("status") or {})

    def is_our_status(self, namespace: str, name: str, status: Any) -> bool:
        """Whether a pipeline's status is the one the operator wrote last (its own write coming back)."""
        return self.statuses.get((namespace, name)) == digest(status or {})

    def made(self, obj: Body) -> None:
        """A Job or RayJob as the API server returned it after we created it."""
        meta = obj["metadata"]
        trimmed = trim_rayjob(obj) if obj.get("kind") == "RayJob" else trim_job(obj)
        with self.lock:
            self.created.setdefault((meta["namespace"], meta["labels"][PIPELINE_LABEL]), {})[meta["name"]] = (
                trimmed
            )

    def drop_pipeline(self, namespace: str, name: str, uid: str | None) -> bool:
        """A pipeline's DELETED event: whether it was the one stored (not a pipeline of the same name
        created since, whose events may come first: kopf handles each object on its own)."""
        with self.lock:
            packed = self.pipelines.get((namespace, name))
            if packed is not None and uid and expand(packed)["metadata"].get("uid") not in (uid, None):
                return False
        return True

    def forget(self, namespace: str, name: str) -> None:
        """A pipeline deleted: nothing of it is kept (its Jobs and pods go with it, by their owner
        reference, and leave the informers' stores as they do)."""
        with self.lock:
            self.pipelines.pop((namespace, name), None)
            self.written.pop((namespace, name), None)
            self.created.pop((namespace, name), None)
            self.statuses.pop((namespace, name), None)

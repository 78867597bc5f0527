"""The small adapter through which the operator reads and writes the Kubernetes API (plain dicts)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import kopf
from prometheus_client import Counter

from mlpipeline.api.models import GROUP, PLURAL, VERSION
from mlpipeline.engine.event import Event
from mlpipeline.kube.connection import ApiError, Transport
from mlpipeline.protocol import stamp

log = logging.getLogger("mlpipeline.operator")

API_REQUESTS = Counter(
    "mlpipeline_operator_api_requests_total",
    "Requests of the operator to the Kubernetes API (watches excluded), by verb and resource",
    ["verb", "resource"],
)

PLURALS = {
    "Deployment": "deployments",
    "Service": "services",
    "HTTPRoute": "httproutes",
    "Job": "jobs",
    "RayJob": "rayjobs",
    "NetworkPolicy": "networkpolicies",
}


class Kube:
    def __init__(
        self,
        connection: kopf.ConnectionInfo | None = None,
        component: str = "mlpipeline-operator",
        kubeconfig: str | None = None,
    ):
        """``connection``: fixed credentials; without it they are loaded (a pod's service account, else
        the kubeconfig) and read again as they rotate."""
        self.transport = Transport(connection, kubeconfig)
        self.component = component

    def patch_status(
        self, namespace: str, name: str, patch: dict[str, Any], resource_version: str | None = None
    ) -> dict[str, Any]:
        """A JSON merge patch of the status subresource (null clears a field); returns the pipeline.
        With ``resource_version`` (the pipeline's as the status was decided on), a precondition: the
        API server refuses the patch (409) if the pipeline has changed since, instead of overwriting
        what another writer (another replica, a user) wrote meanwhile."""
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}/status"
        body: dict[str, Any] = {"status": patch}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        return self.request(  # type: ignore[no-any-return]
            "PATCH", path, None, body, "application/merge-patch+json"
        )

    def create(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """Creates an object of a kind in PLURALS and returns it; None when it already exists."""
        try:
            return self.request(  # type: ignore[no-any-return]
                "POST", self._path(obj, obj["metadata"]["namespace"]), None, obj
            )
        except ApiError as exc:
            if exc.status == 409:
                return None
            raise

    def _path(self, obj: dict[str, Any], namespace: str, name: str | None = None) -> str:
        group_version = obj["apiVersion"]
        plural = PLURALS[obj["kind"]]
        prefix = f"/api/{group_version}" if "/" not in group_version else f"/apis/{group_version}"
        path = f"{prefix}/namespaces/{namespace}/{plural}"
        return f"{path}/{name}" if name else path

    def request(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> Any:
        """One request and its JSON reply. ``timeout`` (seconds; none: the transport's): half to
        connect, half to read. urllib3 bounds each read, not the whole reply, so a reply that
        trickles in may take longer: the Lease's watchdog (controller/leader.py) does not rely on it."""
        API_REQUESTS.labels(method, resource_of(path)).inc()
        data = json.dumps(body).encode() if body is not None else None
        if timeout is None:
            response = self.transport.open(method, path, query, data, content_type)  # never hangs for good
        else:
            response = self.transport.open(
                method, path, query, data, content_type, (timeout / 2, timeout / 2)
            )
        return json.loads(response.data or b"{}")

    def watch(self, path: str, query: list[tuple[str, str]], read_timeout: float) -> Iterator[dict[str, Any]]:
        """The events of a watch request, one JSON object per line, until the server ends it."""
        response = self.transport.open(
            "GET", path, [*query, ("watch", "true")], timeout=(10, read_timeout), stream=True
        )
        rest = b""
        try:
            for chunk in response.stream(65536):
                *lines, rest = (rest + chunk).split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
        finally:
            response.release_conn()

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None when there is none of that name."""
        path = self._path({"apiVersion": api_version, "kind": kind}, namespace, name)
        try:
            return self.request("GET", path)  # type: ignore[no-any-return]
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def apply(self, obj: dict[str, Any], force: bool = False) -> None:
        """Server-side apply: creates or updates, owning only the fields the operator sets. ``force``
        takes over fields another manager set: only for objects this operator controls (see
        kube/serving.py owned_by); without it a field someone else owns is a 409, not overwritten."""
        meta = obj["metadata"]
        self.request(
            "PATCH",
            self._path(obj, meta["namespace"], meta["name"]),
            [("fieldManager", self.component), ("force", "true" if force else "false")],
            obj,
            "application/apply-patch+yaml",
        )

    def delete(self, api_version: str, kind: str, namespace: str, name: str, uid: str | None = None) -> None:
        """Deletes an object; with ``uid``, only that very object (a precondition: one deleted and
        made again by someone else since it was read is left alone)."""
        path = self._path({"apiVersion": api_version, "kind": kind}, namespace, name)
        options = {"preconditions": {"uid": uid}} if uid else None
        try:
            self.request("DELETE", path, [("propagationPolicy", "Background")], options)
        except ApiError as exc:
            if exc.status != 404 and not (uid and exc.status == 409):
                raise

    def has_api(self, group_version: str) -> bool:
        try:
            self.request("GET", f"/apis/{group_version}")
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def post_event(self, pipeline: dict[str, Any], event: Event) -> None:
        meta = pipeline["metadata"]
        now = stamp(datetime.now(UTC))
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": pipeline["apiVersion"],
                "kind": pipeline["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": event.type,
            "reason": event.reason,
            "message": event.message[:1024],
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "source": {"component": self.component},
            "reportingComponent": self.component,
            "reportingInstance": self.component,
        }
        try:
            self.request("POST", f"/api/v1/namespaces/{meta['namespace']}/events", None, body)
        except ApiError as exc:
            # The status already says it; an Event refused (a namespace being deleted, a quota on
            # events) must not fail the reconciliation and have it retried.
            log.warning(
                "Event %s on %s/%s not recorded: %s %s",
                event.reason,
                meta["namespace"],
                meta["name"],
                exc.status,
                exc.reason,
            )


def resource_of(path: str) -> str:
    """The resource a request path names: /apis/g/v/namespaces/ns/jobs/x/status -> jobs, /api/v1/pods
    (a list across namespaces) -> pods, /apis/g/v -> discovery."""
    parts = path.strip("/").split("/")
    if "namespaces" not in parts:
        rest = parts[2:] if parts[0] == "api" else parts[3:]
        return rest[0] if rest else "discovery"
    rest = parts[parts.index("namespaces") + 2 :]
    return rest[0] if rest else "namespaces"

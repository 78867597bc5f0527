"""The small adapter through which the operator reads and writes the Kubernetes API (plain dicts)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from mlpipeline.api.models import GROUP, PLURAL, VERSION
from mlpipeline.engine.event import Event
from mlpipeline.protocol import PIPELINE_LABEL, RUN_LABEL

PLURALS = {
    "Deployment": "deployments",
    "Service": "services",
    "HTTPRoute": "httproutes",
    "Job": "jobs",
    "RayJob": "rayjobs",
}


def load_config() -> None:
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]


def _json(response: Any) -> Any:
    return json.loads(response.data)


class Kube:
    def __init__(self, api: client.ApiClient | None = None, component: str = "mlpipeline-operator"):
        self.api = api or client.ApiClient()
        self.custom = client.CustomObjectsApi(self.api)
        self.batch = client.BatchV1Api(self.api)
        self.core = client.CoreV1Api(self.api)
        self.component = component

    def get_pipeline(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return _json(  # type: ignore[no-any-return]
                self.custom.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, name, _preload_content=False
                )
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def patch_status(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        """A JSON merge patch of the status subresource: null clears a field."""
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}/status"
        self._call("PATCH", path, None, {"status": patch}, "application/merge-patch+json")

    def list_jobs(self, namespace: str, pipeline: str) -> list[dict[str, Any]]:
        selector = f"{PIPELINE_LABEL}={pipeline}"
        response = self.batch.list_namespaced_job(namespace, label_selector=selector, _preload_content=False)
        return list(_json(response)["items"])

    def list_pods(self, namespace: str, pipeline: str, run: str) -> list[dict[str, Any]]:
        selector = f"{PIPELINE_LABEL}={pipeline},{RUN_LABEL}={run}"
        response = self.core.list_namespaced_pod(namespace, label_selector=selector, _preload_content=False)
        return list(_json(response)["items"])

    def list_rayjobs(self, namespace: str, pipeline: str) -> list[dict[str, Any]]:
        """A pipeline's KubeRay RayJobs; none where KubeRay is not installed."""
        path = f"/apis/ray.io/v1/namespaces/{namespace}/rayjobs"
        try:
            found = self._call("GET", path, [("labelSelector", f"{PIPELINE_LABEL}={pipeline}")])
        except ApiException as exc:
            if exc.status == 404:
                return []
            raise
        return [{**item, "kind": "RayJob"} for item in found.get("items") or []]

    def create(self, obj: dict[str, Any]) -> bool:
        """Creates an object of a kind in PLURALS; False when it already exists."""
        try:
            self._call("POST", self._path(obj, obj["metadata"]["namespace"]), None, obj)
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def delete_job(self, namespace: str, name: str) -> None:
        try:
            self.batch.delete_namespaced_job(name, namespace, propagation_policy="Background")
        except ApiException as exc:
            if exc.status != 404:
                raise

    def _path(self, obj: dict[str, Any], namespace: str, name: str | None = None) -> str:
        group_version = obj["apiVersion"]
        plural = PLURALS[obj["kind"]]
        prefix = f"/api/{group_version}" if "/" not in group_version else f"/apis/{group_version}"
        path = f"{prefix}/namespaces/{namespace}/{plural}"
        return f"{path}/{name}" if name else path

    def _call(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Any:
        serialized = self.api.param_serialize(
            method,
            path,
            query_params=query or [],
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self.api.call_api(*serialized)
        response.read()  # type: ignore[no-untyped-call]
        if not 200 <= response.status < 300:
            raise ApiException(http_resp=response)
        return json.loads(response.data or b"{}")

    def apply(self, obj: dict[str, Any]) -> None:
        """Server-side apply: creates or updates, owning only the fields the operator sets."""
        meta = obj["metadata"]
        self._call(
            "PATCH",
            self._path(obj, meta["namespace"], meta["name"]),
            [("fieldManager", self.component), ("force", "true")],
            obj,
            "application/apply-patch+yaml",
        )

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        path = self._path({"apiVersion": api_version, "kind": kind}, namespace, name)
        try:
            self._call("DELETE", path, [("propagationPolicy", "Background")])
        except ApiException as exc:
            if exc.status != 404:
                raise

    def has_api(self, group_version: str) -> bool:
        try:
            self._call("GET", f"/apis/{group_version}")
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def post_event(self, pipeline: dict[str, Any], event: Event) -> None:
        meta = pipeline["metadata"]
        now = datetime.now(UTC)
        body = client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name=f"{meta['name']}.", namespace=meta["namespace"]),
            involved_object=client.V1ObjectReference(
                api_version=pipeline["apiVersion"],
                kind=pipeline["kind"],
                name=meta["name"],
                namespace=meta["namespace"],
                uid=meta["uid"],
                resource_version=meta.get("resourceVersion"),
            ),
            type=event.type,
            reason=event.reason,
            message=event.message[:1024],
            first_timestamp=now,
            last_timestamp=now,
            count=1,
            source=client.V1EventSource(component=self.component),
            reporting_component=self.component,
            reporting_instance=self.component,
        )
        self.core.create_namespaced_event(meta["namespace"], body)

"""The operator changes and deletes only the serving objects its pipeline controls: a Service (or
Deployment, HTTPRoute) of the same name that someone else made is left alone and the pipeline says
so, instead of having its selector rewritten by a forced apply and being deleted with the pipeline
by the garbage collector (security review, issue 25.3)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kopf
from mlpipeline.api.manifest import parse_spec
from mlpipeline.api.models import MLPipelineStatus, ServingStatus
from mlpipeline.controller.cache import ClusterCache
from mlpipeline.controller.reconciler import Reconciler
from mlpipeline.controller.serving import ServingReconciler
from mlpipeline.engine.reconcile import Decision
from mlpipeline.engine.serving import ServingPlan, Topology
from mlpipeline.kube.client import Kube
from mlpipeline.kube.jobs import OperatorSettings, owner_reference
from mlpipeline.kube.rbac import NAMESPACED, Permission
from mlpipeline.kube.serving import build_model_service, conflict, conflicts, owned_by

from tests.conftest import example

UID = "1111-aaaa"
PIPELINE = {"apiVersion": "mlpipeline.dev/v1alpha1", "kind": "MLPipeline"}
BODY = {**PIPELINE, "metadata": {"name": "iris", "namespace": "team-a", "uid": UID}}


def service(owners: list[dict[str, Any]] | None = None, name: str = "iris") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "team-a", "uid": f"uid-of-{name}"}
    if owners is not None:
        meta["ownerReferences"] = owners
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": {"selector": {"app": "billing"}}}


def wanted() -> dict[str, Any]:
    return build_model_service(pipeline="iris", namespace="team-a", uid=UID, port=3000, version=None)


def test_only_a_controller_reference_to_this_pipelines_uid_makes_an_object_its_own() -> None:
    assert owned_by(service([owner_reference("iris", UID)]), UID)
    assert not owned_by(service(), UID)
    assert not owned_by(service([owner_reference("iris", "another-uid")]), UID)
    assert not owned_by(service([{**owner_reference("iris", UID), "controller": False}]), UID)
    other_kind = {**owner_reference("iris", UID), "kind": "Deployment", "apiVersion": "apps/v1"}
    assert not owned_by(service([other_kind]), UID)


def test_an_existing_object_the_pipeline_does_not_control_is_a_conflict() -> None:
    assert conflict(None, wanted(), UID) is None  # nothing there: it is created
    assert conflict(service([owner_reference("iris", UID)]), wanted(), UID) is None  # ours: updated
    assert conflict(service(), wanted(), UID) == (
        "Service team-a/iris exists and is not controlled by this MLPipeline"
    )
    earlier = conflict(service([owner_reference("iris", "old-uid")]), wanted(), UID)
    assert earlier and "an earlier MLPipeline iris (uid old-uid)" in earlier
    helm = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "billing", "uid": "x", "controller": True}
    assert conflict(service([helm]), wanted(), UID) == (
        "Service team-a/iris exists and is controlled by Deployment billing"
    )
    assert conflicts([wanted(), wanted()], [None, service()], UID) == [
        "Service team-a/iris exists and is not controlled by this MLPipeline"
    ]


class Recording(Kube):
    """The API as a dict of objects by (kind, name); every write recorded, none sent."""

    def __init__(self, objects: dict[tuple[str, str], dict[str, Any]]):
        super().__init__(kopf.ConnectionInfo(server="http://127.0.0.1:9"))
        self.objects = objects
        self.writes: list[tuple[str, str, str, Any]] = []

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((kind, name))

    def apply(self, obj: dict[str, Any], force: bool = False) -> None:
        self.writes.append(("apply", obj["kind"], obj["metadata"]["name"], force))

    def delete(self, api_version: str, kind: str, namespace: str, name: str, uid: str | None = None) -> None:
        self.writes.append(("delete", kind, name, uid))

    def has_api(self, group_version: str) -> bool:
        return False


def plan(remove: list[str] | None = None) -> ServingPlan:
    status = ServingStatus(stable="v2", provider="replicas")
    return ServingPlan(status, "Serving", "serving model v2", Topology({"v2": 1}, "v2"), remove or [])


def serving(kube: Recording) -> ServingReconciler:
    return ServingReconciler(kube, OperatorSettings(artifacts_uri="s3://b/a"), None, "v")


SPEC = parse_spec(example("iris")["spec"])


def test_a_foreign_service_of_the_pipelines_name_stops_every_serving_write() -> None:
    kube = Recording({("Service", "iris"): service()})
    assert serving(kube).apply(BODY, SPEC, plan(remove=["v1"])) == [
        "Service team-a/iris exists and is not controlled by this MLPipeline"
    ]
    assert kube.writes == []  # neither the Deployment nor the other Services, nor any removal


def test_owned_objects_are_applied_with_force_new_ones_without_and_only_owned_ones_deleted() -> None:
    ours = service([owner_reference("iris", UID)])
    old_deployment = {
        "kind": "Deployment",
        "metadata": {"uid": "dep-v1", "ownerReferences": ours["metadata"]["ownerReferences"]},
    }
    kube = Recording(
        {
            ("Service", "iris"): ours,
            ("Deployment", "iris-model-v1"): old_deployment,
            ("Service", "iris-model-v1"): service(name="iris-model-v1"),  # someone else's: kept
        }
    )
    assert serving(kube).apply(BODY, SPEC, plan(remove=["v1"])) == []
    assert kube.writes == [
        ("apply", "Deployment", "iris-model-v2", False),
        ("apply", "Service", "iris-model-v2", False),
        ("apply", "Service", "iris", True),
        ("delete", "Deployment", "iris-model-v1", "dep-v1"),  # with the uid it was read with
    ]


def test_the_reconciler_refuses_serving_with_a_status_message_and_one_event() -> None:
    kube = Recording({("Service", "iris"): service()})
    reconciler = Reconciler(kube, OperatorSettings(artifacts_uri="s3://b/a"), ClusterCache(), serving(kube))
    reconciler.wake_later = lambda *args: None  # type: ignore[method-assign]
    now = datetime.now(UTC)
    decision = Decision(status=MLPipelineStatus(phase="Packaged"))
    reconciler._serve(BODY, SPEC, "v2", decision, now, MLPipelineStatus(phase="Packaged"))
    assert decision.status.phase == "Failed" and decision.status.serving is None
    assert decision.status.message and decision.status.message.startswith(
        "serving refused: Service team-a/iris exists and is not controlled by this MLPipeline."
    )
    assert [(e.type, e.reason) for e in decision.events] == [("Warning", "ServingConflict")]
    again = Decision(status=MLPipelineStatus(phase="Packaged"))
    later = now.replace(year=now.year + 1)
    reconciler._serve(BODY, SPEC, "v2", again, later, decision.status)
    assert again.events == [] and again.status.phase == "Failed"  # no Event per reconciliation
    assert again.status.conditions == decision.status.conditions  # nor a status write
    assert kube.writes == []


def test_the_operator_may_read_the_serving_objects_it_checks() -> None:
    for group, resource in (
        ("apps", "deployments"),
        ("", "services"),
        ("gateway.networking.k8s.io", "httproutes"),
    ):
        assert Permission("get", group, resource) in NAMESPACED


def test_the_first_version_is_deploying_until_its_deployment_has_a_ready_replica() -> None:
    """Phase Serving (Ready, Argo CD's Healthy) only once the model answers: the reconciler reads
    the stable version's Deployment until a replica passed its readiness probe (issue 24.5)."""
    ours = {"uid": "d", "ownerReferences": [owner_reference("iris", UID)]}
    deployment: dict[str, Any] = {"kind": "Deployment", "metadata": ours, "status": {}}
    kube = Recording({("Deployment", "iris-model-v1"): deployment})
    reconciler = Reconciler(kube, OperatorSettings(artifacts_uri="s3://b/a"), ClusterCache(), serving(kube))
    woken: list[float] = []
    reconciler.wake_later = lambda namespace, name, seconds: woken.append(seconds)  # type: ignore[method-assign]
    now = datetime.now(UTC)
    first = Decision(status=MLPipelineStatus(phase="Packaged"))
    reconciler._serve(BODY, SPEC, "v1", first, now, MLPipelineStatus(phase="Packaged"))
    assert first.status.phase == "Deploying" and first.status.serving and first.status.serving.stable == "v1"
    assert first.status.message == "deploying model v1: none of its 1 replicas is ready yet"
    assert woken and woken[-1] < 5  # looked at again soon: no event announces a ready replica
    ready = next(c for c in first.status.conditions if c.type == "Ready")
    assert ready.status == "False"

    deployment["status"] = {"readyReplicas": 1}
    second = Decision(status=first.status.model_copy(deep=True))
    reconciler._serve(BODY, SPEC, "v1", second, now, first.status)
    assert second.status.phase == "Serving" and second.status.message == "serving model v1"

    gets: list[str] = []
    kube.get = lambda api_version, kind, namespace, name: gets.append(name)  # type: ignore[method-assign,assignment,func-returns-value]
    third = Decision(status=second.status.model_copy(deep=True))
    reconciler._serve(BODY, SPEC, "v1", third, now, second.status)
    assert third.status.phase == "Serving" and "iris-model-v1" not in gets  # shown Serving: not read again

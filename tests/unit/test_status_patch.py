"""The status reaches the API server as a merge patch that clears what the new status lacks, on the
condition that the pipeline is still the version it was decided on (its resourceVersion): two
writers (two replicas that both think they lead, a user) never overwrite each other's status."""

from __future__ import annotations

from typing import Any

import kopf
import pytest
from mlpipeline.api.manifest import parse_spec
from mlpipeline.api.models import MLPipelineStatus
from mlpipeline.controller.cache import ClusterCache
from mlpipeline.controller.reconciler import STALE_RETRY, Reconciler
from mlpipeline.engine.event import Event
from mlpipeline.engine.reconcile import Decision
from mlpipeline.kube.client import Kube
from mlpipeline.kube.connection import ApiError
from mlpipeline.kube.jobs import OperatorSettings
from mlpipeline.kube.patch import apply_merge_patch, merge_patch

from tests.conftest import example


def test_a_field_the_new_status_lacks_is_sent_as_null() -> None:
    old = {
        "phase": "Canary",
        "serving": {"canary": "v2", "noDataSince": "2026-01-01T00:00:00Z", "stable": "v1"},
    }
    new = {"phase": "RolledBack", "serving": {"stable": "v1", "rolledBack": "v2"}}
    patch = merge_patch(old, new)
    assert patch == {
        "phase": "RolledBack",
        "serving": {"canary": None, "noDataSince": None, "rolledBack": "v2"},
    }
    assert apply_merge_patch(old, patch) == new


def test_fields_owned_by_others_are_left_alone() -> None:
    old = {"phase": "Serving", "kopf": {"progress": {}}}
    assert merge_patch(old, {"phase": "Serving"}, ["phase"]) == {}
    assert merge_patch(old, {"phase": "Failed"}, ["phase", "message"]) == {"phase": "Failed"}


def test_typed_status_round_trip_clears_a_finished_canary() -> None:
    recorded = {
        "phase": "Canary",
        "serving": {"stable": "v1", "canary": "v2", "canaryWeight": 10, "failures": 1, "noDataSince": "t"},
        "kopf": {"dummy": "x"},
    }
    status = MLPipelineStatus.model_validate(recorded)
    assert status.serving is not None
    status.serving = status.serving.model_copy(
        update={
            "canary": None,
            "canary_weight": 0,
            "failures": None,
            "no_data_since": None,
            "rolled_back": "v2",
        }
    )
    status.phase = "RolledBack"
    fields = [f.alias or n for n, f in MLPipelineStatus.model_fields.items()]
    stored = apply_merge_patch(recorded, merge_patch(recorded, status.to_wire(), fields))
    assert stored["serving"] == {"stable": "v1", "canaryWeight": 0, "rolledBack": "v2", "checks": []}
    assert stored["kopf"] == {"dummy": "x"}


BODY: dict[str, Any] = {
    "apiVersion": "mlpipeline.dev/v1alpha1",
    "kind": "MLPipeline",
    "metadata": {"name": "iris", "namespace": "team-a", "uid": "u-1", "resourceVersion": "7"},
    "status": {"phase": "Tuning"},
}


class Answering(Kube):
    """The API client without an API server: every request recorded; a status patch answered with
    the pipeline at its next version, or refused with 409 (the pipeline changed since it was read)."""

    def __init__(self, conflict: bool = False):
        super().__init__(kopf.ConnectionInfo(server="http://127.0.0.1:9"))
        self.conflict = conflict
        self.requests: list[tuple[str, str, Any]] = []

    def request(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> Any:
        self.requests.append((method, path, body))
        if method == "PATCH" and path.endswith("/status"):
            if self.conflict:
                raise ApiError(409, "Conflict", "the object has been modified")
            return {
                **BODY,
                "metadata": {**BODY["metadata"], "resourceVersion": "8"},
                "status": body["status"],
            }
        return {}

    def sent(self, method: str) -> list[Any]:
        return [body for m, _, body in self.requests if m == method]


def reconciler(kube: Answering) -> tuple[Reconciler, list[tuple[str, str, float]]]:
    woken: list[tuple[str, str, float]] = []
    reconciling = Reconciler(kube, OperatorSettings(artifacts_uri="s3://b/a"), ClusterCache())
    reconciling.wake_later = lambda *args: woken.append(args)  # type: ignore[method-assign]
    return reconciling, woken


def refuse(reconciling: Reconciler) -> None:
    status = MLPipelineStatus.model_validate(BODY["status"])
    reconciling._refuse(BODY, status, dict(BODY["status"]), 1, "invalid spec: x", "InvalidSpec")


def test_a_status_patch_carries_the_resource_version_it_was_decided_on() -> None:
    kube = Answering()
    reconciling, woken = reconciler(kube)
    refuse(reconciling)
    [patch] = kube.sent("PATCH")
    assert patch["metadata"] == {"resourceVersion": "7"}
    assert patch["status"]["phase"] == "Failed"
    assert len(kube.sent("POST")) == 1 and woken == []  # the Event
    assert reconciling.cache.written[("team-a", "iris")]["metadata"]["resourceVersion"] == "8"


@pytest.mark.parametrize("write", ["refusal", "decision"])
def test_a_pipeline_changed_since_it_was_read_is_decided_again_not_overwritten(write: str) -> None:
    kube = Answering(conflict=True)
    reconciling, woken = reconciler(kube)
    if write == "refusal":
        refuse(reconciling)
    else:
        spec = parse_spec(example("iris")["spec"])
        decision = Decision(
            status=MLPipelineStatus(phase="Evaluating"), events=[Event("Normal", "StepSucceeded", "train")]
        )
        old = MLPipelineStatus.model_validate(BODY["status"])
        assert not reconciling._apply(BODY, spec, "r1", decision, old, dict(BODY["status"]))
    assert len(kube.sent("PATCH")) == 1
    assert kube.sent("POST") == []  # no Event of a decision that was not recorded
    assert woken == [("team-a", "iris", STALE_RETRY)]
    assert ("team-a", "iris") not in reconciling.cache.written


def test_a_status_patch_without_a_version_has_no_precondition() -> None:
    kube = Answering()
    kube.patch_status("team-a", "iris", {"phase": "Failed"})
    assert kube.sent("PATCH") == [{"status": {"phase": "Failed"}}]

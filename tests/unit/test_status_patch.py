"""The status reaches the API server as a merge patch that clears what the new status lacks."""

from __future__ import annotations

from mlpipeline.api.models import MLPipelineStatus
from mlpipeline.kube.patch import apply_merge_patch, merge_patch


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

"""The Argo CD health check shipped with the chart, run by a real Lua interpreter on status objects
as the operator writes them (MLPipelineStatus.to_wire). The cluster tests run it on live objects."""

from __future__ import annotations

from typing import Any

import pytest
from mlpipeline.api.models import MLPipelineStatus, ServingPhase, ServingStatus

from tests.argocd import health


def pipeline(status: MLPipelineStatus | None, generation: int = 1) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "mlpipeline.dev/v1alpha1", "kind": "MLPipeline"}
    obj["metadata"] = {"name": "iris", "generation": generation}
    if status is not None:
        obj["status"] = status.to_wire()
    return obj


@pytest.mark.parametrize(
    ("phase", "serving", "expected"),
    [
        ("Serving", ServingPhase.stable, "Healthy"),
        ("Serving", ServingPhase.promoted, "Healthy"),
        ("Deploying", ServingPhase.stable, "Progressing"),  # no replica of the model ready yet
        ("Packaged", None, "Healthy"),  # serving off: the packaged model is the result
        ("Ingesting", None, "Progressing"),
        ("Tuning", ServingPhase.stable, "Progressing"),  # a retraining run while the old model serves
        ("Canary", ServingPhase.progressing, "Progressing"),
        ("Canary", ServingPhase.paused, "Suspended"),
        ("RolledBack", ServingPhase.rolled_back, "Degraded"),
        ("Failed", None, "Degraded"),
    ],
)
def test_each_phase_maps_to_the_health_argo_cd_shows(
    phase: str, serving: ServingPhase | None, expected: str
) -> None:
    status = MLPipelineStatus(
        phase=phase,
        message=f"the operator says {phase}",
        observed_generation=1,
        serving=ServingStatus(phase=serving, stable="v1") if serving else None,
    )
    assert health(pipeline(status)) == (expected, f"the operator says {phase}")


def test_a_spec_the_operator_has_not_seen_yet_is_progressing_whatever_the_old_phase() -> None:
    old = MLPipelineStatus(phase="Failed", message="ingest failed", observed_generation=1)
    assert health(pipeline(old, generation=2)) == (
        "Progressing",
        "Waiting for the operator to act on generation 2",
    )
    assert health(pipeline(None))[0] == "Progressing"

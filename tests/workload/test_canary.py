"""Local canary rollouts with real processes: two BentoML servers, the weighted router, Debian's
Prometheus scraping both, a load generator; the engine promotes or rolls back. Faults are injected
into the canary server through MLP_CHAOS_FILE (errors, latency, shifted predictions), or trained
into it: the real tier's model trained on swapped labels. The canaries are judged, with the default
shift and score checks, against what their evaluate measured beside the serving version."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from mlpipeline.api.models import AnalysisSpec, Baseline, ServeSpec, ServingStatus
from mlpipeline.local.load import Load
from mlpipeline.local.rollout import LocalRollout
from mlpipeline.local.serve import sample_records, save_serving
from mlpipeline.local.server import free_port
from mlpipeline.protocol import version_of

from tests.conftest import EXAMPLES, example
from tests.workload.conftest import train


def swapped_labels(folder: Path) -> Path:
    """The real tier's fault: iris with setosa and virginica swapped."""
    swap = {"setosa": "virginica", "virginica": "setosa"}
    frame = pd.read_csv(EXAMPLES / "data" / "iris.csv")
    frame["species"] = frame["species"].map(lambda s: swap.get(s, s))
    frame.to_csv(folder / "iris-swapped.csv", index=False)
    return folder / "iris-swapped.csv"


def baseline_of(trained: dict[str, Any]) -> Baseline:
    """What the run's evaluate measured beside the version that served."""
    result = json.loads((Path(trained["steps"]["evaluate"]) / "result.json").read_text())
    return Baseline.model_validate(result["baseline"])


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A first iris model, which serves; a retrained one and one trained on swapped labels, each
    evaluated beside the first (the local executor's serving status names it)."""
    tmp = tmp_path_factory.mktemp("canary")
    document = example("iris")
    document["spec"]["train"]["tune"] |= {
        "algorithm": "random",
        "scheduler": "none",
        "trials": 2,
        "maxConcurrent": 2,
    }
    first = train(tmp, "iris", document)
    save_serving(tmp / "work" / "iris", ServingStatus(stable=version_of(first["model"])))
    swapped = train(tmp, "iris", document, data=swapped_labels(tmp))
    document["spec"]["train"]["tune"]["trials"] = 3
    second = train(tmp, "iris", document)
    assert len({first["model"], second["model"], swapped["model"]}) == 3
    records = sample_records(first["steps"]["ingest"], rows=30)
    return {
        "stable": first["model"],
        "canary": second["model"],
        "baseline": baseline_of(second),
        "swapped": swapped["model"],
        "swapped_baseline": baseline_of(swapped),
        "home": tmp / "work" / "bentoml",
        "records": records,
    }


SPEC = {
    "steps": [20, 50],
    "interval": "4s",
    "analysis": {
        "interval": "1s",
        "window": "4s",
        "failureThreshold": 2,
        "minRequests": 5,
        "maxErrorRate": 0.05,
        "maxLatencyP95": "2s",  # generous: a loaded 2-core machine must not fail a healthy canary
        "noDataDeadline": "10s",
    },
}


SPEC_DEFAULTS = AnalysisSpec()


@pytest.fixture
def rollout(two_versions: dict[str, Any], tmp_path: Path) -> Iterator[Any]:
    started: list[LocalRollout] = []

    def make(faults: dict[str, Any] | None = None, canary: str = "canary", **overrides: Any) -> LocalRollout:
        chaos = tmp_path / "chaos.json"
        chaos.write_text(json.dumps(faults or {}))
        spec = ServeSpec.model_validate({"canary": {**SPEC, **overrides}})
        baseline = two_versions["baseline" if canary == "canary" else f"{canary}_baseline"]
        rollout = LocalRollout(
            two_versions["stable"], two_versions[canary], spec, two_versions["home"], tmp_path / "rollout",
            port=free_port(), canary_env={"MLP_CHAOS_FILE": str(chaos)}, baseline=baseline,
        )  # fmt: skip
        started.append(rollout.start())
        return rollout

    yield make
    for rollout in started:
        rollout.stop()


def run_with_load(
    rollout: LocalRollout, records: list[dict[str, Any]], rate: float = 40
) -> tuple[ServingStatus, Any]:
    assert rollout.router is not None
    load = Load(f"{rollout.router.url}/predict", records, rate=rate, max_seconds=120).start()
    try:
        state = rollout.run()
    finally:
        stats = load.stop()
    return state, stats


def test_a_healthy_canary_is_promoted_through_every_step(rollout: Any, two_versions: dict[str, Any]) -> None:
    running = rollout()
    state, stats = run_with_load(running, two_versions["records"])
    canary, stable = version_of(two_versions["canary"]), version_of(two_versions["stable"])
    assert state.phase == "Promoted" and state.stable == canary, state.message
    weights = [t.weight for t in running.ticks]
    assert 20 in weights and 50 in weights and weights[-1] == 0
    assert weights.index(50) > weights.index(20)
    assert stats.failed == 0 and stats.ok > 100
    checks = {c.name: c for c in state.checks}
    assert set(checks) == {"errorRate", "latencyP95", "predictionShift", "offlineScore"}
    assert all(c.verdict == "pass" for c in checks.values())
    # judged against what evaluate measured beside the stable version, on rows neither trained on
    baseline = two_versions["baseline"]
    assert baseline.version == stable and baseline.rows > 0
    assert checks["predictionShift"].expected == baseline.prediction_shift is not None
    assert checks["offlineScore"].value == baseline.candidate_score
    assert "bentoml_service_request" in checks["errorRate"].query
    answer = httpx.post(
        f"{running.router.url}/predict", json={"records": two_versions["records"][:1]}, timeout=10
    )
    assert answer.status_code == 200
    assert list(running.servers) == [canary] and stable not in running.servers  # the old stable is gone


@pytest.mark.parametrize(
    ("faults", "failed_check", "overrides"),
    [
        ({"errorRate": 0.3}, "errorRate", {}),
        # Every canary answer takes 400 ms or more, whatever the machine's load: above 250 ms.
        ({"latencyMs": 400}, "latencyP95", {"maxLatencyP95": "250ms"}),
        ({"shift": True}, "predictionShift", {}),
    ],
)
def test_a_bad_canary_is_rolled_back(
    rollout: Any,
    two_versions: dict[str, Any],
    faults: dict[str, Any],
    failed_check: str,
    overrides: dict[str, Any],
) -> None:
    running = rollout(faults, analysis={**SPEC["analysis"], **overrides})
    state, _ = run_with_load(running, two_versions["records"])
    assert state.phase == "RolledBack" and state.stable == version_of(two_versions["stable"])
    assert state.message and failed_check in state.message
    assert "rolled back after 2 failed analyses" in state.message
    failed = next(c for c in state.checks if c.name == failed_check)
    assert failed.verdict == "fail" and failed.value is not None and failed.value > failed.threshold
    assert list(running.servers) == [version_of(two_versions["stable"])]
    assert running.ticks[-1].weight == 0


def test_a_model_trained_on_swapped_labels_is_rolled_back_with_the_default_checks(
    rollout: Any, two_versions: dict[str, Any]
) -> None:
    """The real tier's fault: evaluate scores the model on its own (swapped) held-out labels, and on
    balanced held-out rows a swap leaves the class shares as they were: only the live traffic, 4
    setosa for 1 virginica, shows the shift evaluate did not expect."""
    baseline = two_versions["swapped_baseline"]
    assert baseline.candidate_score is not None and baseline.score is not None
    assert baseline.candidate_score > baseline.score  # evaluate cannot see the fault
    flowers = pd.read_csv(EXAMPLES / "data" / "iris.csv")
    setosa, virginica = (
        flowers[flowers["species"] == s].drop(columns="species").to_dict(orient="records")
        for s in ("setosa", "virginica")
    )
    running = rollout(canary="swapped")
    state, _ = run_with_load(running, (setosa[:4] + virginica[:1]) * 6)
    assert state.phase == "RolledBack" and state.stable == version_of(two_versions["stable"]), state.message
    assert state.message and "predictionShift" in state.message
    shift = next(c for c in state.checks if c.name == "predictionShift")
    assert shift.verdict == "fail" and shift.expected == baseline.prediction_shift
    assert shift.value is not None and shift.expected is not None
    assert abs(shift.value - shift.expected) > shift.threshold > SPEC_DEFAULTS.max_prediction_shift


def test_no_data_holds_then_rolls_back_at_the_deadline(rollout: Any, two_versions: dict[str, Any]) -> None:
    running = rollout()
    state = running.run()  # no traffic at all
    held = [t for t in running.ticks if (t.status.message or "").startswith("holding")]
    assert held and all(t.weight == 20 for t in held)  # held at the first step, not advanced
    assert state.phase == "RolledBack" and state.message and "no data for" in state.message
    assert "noDataDeadline=10s" in state.message
    assert {c.verdict for c in state.checks if c.name != "offlineScore"} == {"nodata"}


def test_no_data_policy_pass_advances_without_traffic(rollout: Any, two_versions: dict[str, Any]) -> None:
    running = rollout(analysis={**SPEC["analysis"], "noData": "pass"})
    assert running.run().phase == "Promoted"

"""Drift against the training profile, the capture buffer and the drift report."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
from mlpipeline.monitoring.drift import measure
from mlpipeline.monitoring.drift_metrics import PREDICTION
from mlpipeline.monitoring.profile import profile_frame
from mlpipeline.monitoring.report import render
from mlpipeline.serving.capture import Capture, Synthetic

RNG = np.random.default_rng(7)
TRAIN = pd.DataFrame(
    {
        "x": RNG.normal(0, 1, 5000),
        "y": RNG.normal(10, 2, 5000),
        "c": RNG.choice(["a", "b", "c"], 5000, p=[0.5, 0.3, 0.2]),
        "label": RNG.choice(["yes", "no"], 5000),
    }
)
PROFILE = profile_frame(TRAIN, {"x": "numeric", "y": "numeric", "c": "categorical"}, "label")


def served(
    n: int, shift_x: float = 0.0, c_probs: tuple[float, ...] = (0.5, 0.3, 0.2)
) -> list[dict[str, object]]:
    return [
        {"x": float(x) + shift_x, "y": float(y), "c": str(c)}
        for x, y, c in zip(
            RNG.normal(0, 1, n), RNG.normal(10, 2, n), RNG.choice(["a", "b", "c"], n, p=c_probs), strict=True
        )
    ]


def values(
    records: list[dict[str, object]], predictions: list[object], minimum: int = 100
) -> dict[str, float | None]:
    return {f.name: f.value for f in measure(PROFILE, records, predictions, minimum).features}


def test_the_same_distribution_does_not_drift_even_on_a_large_sample() -> None:
    drift = values(served(20_000), ["yes", "no"] * 10_000)
    assert all(v is not None and v < 0.05 for v in drift.values()), drift


def test_exactly_the_shifted_feature_drifts() -> None:
    drift = values(served(2000, shift_x=1.5), ["yes", "no"] * 1000)
    assert drift["x"] is not None and drift["x"] > 0.3
    assert drift["y"] is not None and drift["y"] < 0.1
    assert drift["c"] is not None and drift["c"] < 0.1


def test_a_categorical_shift_and_unseen_categories_drift() -> None:
    drift = values(served(2000, c_probs=(0.1, 0.1, 0.8)), ["yes"] * 2000)
    assert drift["c"] is not None and drift["c"] > 0.3
    unseen = values([{"x": 0.0, "y": 10.0, "c": "zzz"}] * 500, ["no"] * 500)
    assert unseen["c"] is not None and unseen["c"] > 0.9


def test_predictions_drift_against_the_training_labels() -> None:
    drift = values(served(1000), ["yes"] * 1000)
    assert drift[PREDICTION] is not None and drift[PREDICTION] > 0.4


def test_below_the_minimum_sample_the_answer_is_not_enough_data_never_drift() -> None:
    report = measure(PROFILE, served(50, shift_x=5), ["yes"] * 50, 100)
    assert not report.enough and all(f.value is None for f in report.features)
    page = render(report, "churn", "v1", 0.2, "2026-11-25T00:00:00Z")
    assert "not enough data: 50 of the 100" in page


def test_the_report_shows_both_distributions_per_feature() -> None:
    report = measure(PROFILE, served(500, shift_x=2), ["yes"] * 500, 100)
    page = render(report, "churn", "v1", 0.2, "2026-11-25T00:00:00Z")
    assert page.count("<h2>") == 4 and 'class="drift"' in page and "training" in page and "served" in page


def test_capture_samples_at_its_rate_and_writes_partitions(tmp_path: Path) -> None:
    written: list[tuple[str, int]] = []
    capture = Capture(
        "v1",
        str(tmp_path),
        rate=0.25,
        source="pod-a",
        rng=random.Random(1),
        count=lambda o, n: written.append((o, n)),
    )
    records = [{"x": float(i)} for i in range(4000)]
    capture.offer(records, [{"label": "yes"}] * 4000)
    assert capture.flush() == sum(n for _, n in written)
    files = list(tmp_path.glob("version=v1/hour=*/pod-a-*.jsonl"))
    assert len(files) == 1
    lines = [json.loads(line) for line in files[0].read_text().splitlines()]
    assert 800 < len(lines) < 1200 and lines[0]["prediction"] == "yes" and "x" in lines[0]["features"]
    window, predictions = capture.window(60)
    assert len(window) == len(lines) == len(predictions)


def test_capture_drops_and_counts_when_the_buffer_is_full_or_the_store_is_down(tmp_path: Path) -> None:
    counted: dict[str, int] = {}

    def count(outcome: str, n: int) -> None:
        counted[outcome] = counted.get(outcome, 0) + n

    (tmp_path / "a-file").write_text("")  # a store that refuses every write: its root is a file
    capture = Capture("v1", str(tmp_path / "a-file" / "capture"), rate=1.0, buffer=100, count=count)
    capture.offer([{"x": 1.0}] * 150, [{"label": "a"}] * 150)
    assert counted == {"dropped": 50}
    assert capture.flush() == 0 and counted["dropped"] == 150
    assert len(capture.window(60)[0]) == 150  # drift still sees every sample


def test_capture_never_keeps_the_records_of_synthetic_requests(tmp_path: Path) -> None:
    capture = Capture("v1", str(tmp_path), rate=1.0)
    records = [{"x": 1.0}, Synthetic({"x": 2.0}), {"x": 3.0}]  # a batch of three requests' records
    capture.offer(records, [{"label": "a"}] * 3)
    assert capture.flush() == 2
    assert capture.window(60)[0] == [{"x": 1.0}, {"x": 3.0}]

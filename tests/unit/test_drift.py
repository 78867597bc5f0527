"""Drift against the training profile, the capture buffer and the drift report."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlpipeline.api.models import MonitoringSpec
from mlpipeline.monitoring.drift import measure
from mlpipeline.monitoring.drift_metrics import PREDICTION
from mlpipeline.monitoring.profile import profile_frame
from mlpipeline.monitoring.report import render
from mlpipeline.serving import capture as capture_module
from mlpipeline.serving.capture import Capture, Synthetic, expire
from mlpipeline.serving.monitor import Monitor, MonitorSettings

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


def written_lines(root: Path) -> list[bytes]:
    return [line for f in sorted(root.rglob("*.jsonl")) for line in f.read_bytes().splitlines(keepends=True)]


def test_capture_writes_at_most_its_bytes_per_hour_and_counts_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flood of requests (or of huge records) fills no more of the store than the cap an hour."""
    counted: dict[str, int] = {}

    def count(outcome: str, n: int) -> None:
        counted[outcome] = counted.get(outcome, 0) + n

    clock = [datetime(2026, 3, 1, 10, 5, tzinfo=UTC).timestamp()]
    monkeypatch.setattr(capture_module.time, "time", lambda: clock[0])
    capture = Capture("v1", str(tmp_path), rate=1.0, max_bytes_per_hour=20_000, count=count)
    records = [{"x": float(i), "note": "n" * 100} for i in range(1000)]
    for _ in range(3):  # three flushes in the same hour
        capture.offer(records, [{"label": "yes"}] * 1000)
        capture.flush()
    lines = written_lines(tmp_path)
    assert 0 < sum(map(len, lines)) <= 20_000 and len(lines) > 50
    assert counted == {"written": len(lines), "capped": 3000 - len(lines)}
    assert all(json.loads(line)["features"]["note"] == "n" * 100 for line in lines)  # whole lines only
    clock[0] += 3600  # the next hour has its own allowance
    capture.offer(records[:10], [{"label": "yes"}] * 10)
    assert capture.flush() == 10
    assert len(list(tmp_path.glob("version=v1/hour=2026-03-01T11/*.jsonl"))) == 1


def partition(root: Path, version: str, hour: str) -> Path:
    path = root / f"version={version}" / f"hour={hour}"
    path.mkdir(parents=True)
    (path / "pod-a-1.jsonl").write_text('{"x": 1}\n')
    return path


def test_captures_older_than_the_retention_are_deleted_for_every_version(tmp_path: Path) -> None:
    now = datetime(2026, 3, 10, 12, 30, tzinfo=UTC).timestamp()
    old = [partition(tmp_path, "v1", "2026-03-01T08"), partition(tmp_path, "v2", "2026-03-03T11")]
    kept = [partition(tmp_path, "v1", "2026-03-03T12"), partition(tmp_path, "v3", "2026-03-10T12")]
    report = tmp_path / "report" / "version=v1" / "drift.html"
    report.parent.mkdir(parents=True)
    report.write_text("<html>")
    assert expire(str(tmp_path), retention=7 * 86400, now=now) == 2  # ended before 2026-03-03T12:30
    assert not any(p.exists() for p in old) and all(p.exists() for p in kept) and report.exists()
    assert expire(str(tmp_path / "nothing-yet"), retention=86400, now=now) == 0


def test_the_monitor_deletes_old_captures_at_start_then_hourly(tmp_path: Path) -> None:
    settings = MonitorSettings(capture_uri=str(tmp_path), retention=86400, min_samples=10)
    monitor = Monitor(settings, "v1", PROFILE, count=lambda o, n: None, publish=lambda report: None)
    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC).timestamp()
    first = partition(tmp_path, "v0", "2026-03-01T00")
    monitor.tick(now)
    assert not first.exists()
    second = partition(tmp_path, "v0", "2026-03-02T00")
    monitor.tick(now + 60)
    assert second.exists()  # not listed on every tick
    monitor.tick(now + 3600)
    assert not second.exists()


def test_the_capture_bounds_reach_the_server_by_its_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = MonitoringSpec.model_validate({"capture": {"maxBytesPerHour": 1_000_000, "retention": "48h"}})
    for key, value in spec.server_env("iris", "s3://b/capture").items():
        monkeypatch.setenv(key, value)
    settings = MonitorSettings.from_env()
    assert settings.max_bytes_per_hour == 1_000_000 and settings.retention == 48 * 3600
    defaults = MonitoringSpec().capture
    assert defaults.max_bytes_per_hour == 32 * 1024 * 1024 and defaults.retention == "720h"

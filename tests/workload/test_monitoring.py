"""Capture and drift in a real BentoML model server: it samples what it serves into the artifact
store, measures drift against the training profile the model carries, and exports it to
Prometheus by convention — and an unwritable store costs samples, never requests."""

from __future__ import annotations

import concurrent.futures
import contextlib
import itertools
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlpipeline.api.models import MonitoringSpec
from mlpipeline.local.serve import sample_records
from mlpipeline.local.server import ModelServer

from tests.workload.conftest import model_server

MONITORING = MonitoringSpec.model_validate(
    {
        "capture": {"sampleRate": 1.0, "buffer": 200},
        "drift": {"interval": "1s", "minSamples": 50, "threshold": 0.2},
    }
)


@pytest.fixture
def start_server(customers_model: dict[str, Any], tmp_path: Path) -> Iterator[Any]:
    numbers = itertools.count()
    with contextlib.ExitStack() as started:

        def start(capture: Path, monitoring: MonitoringSpec = MONITORING) -> ModelServer:
            log = tmp_path / f"serve-{next(numbers)}.log"
            env = monitoring.server_env("customers", str(capture))
            return started.enter_context(model_server(customers_model, log, env))

        yield start


def traffic(customers_model: dict[str, Any], charge_shift: float = 0.0) -> list[dict[str, Any]]:
    records = sample_records(customers_model["steps"]["ingest"], rows=200)
    return [
        {
            **r,
            "monthly_charge": r["monthly_charge"] + charge_shift if r["monthly_charge"] is not None else None,
        }
        for r in records
    ]


def send(server: ModelServer, records: list[dict[str, Any]]) -> list[int]:
    def one(chunk: list[dict[str, Any]]) -> int:
        return httpx.post(f"{server.url}/predict", json={"records": chunk}, timeout=30).status_code

    chunks = [records[i : i + 5] for i in range(0, len(records), 5)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, chunks))


def drift_of(server: ModelServer) -> dict[str, Any]:
    return httpx.post(f"{server.url}/drift", json={}, timeout=10).json()  # type: ignore[no-any-return]


def wait_measured(server: ModelServer, samples: int) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for _ in range(60):
        summary = drift_of(server)
        if summary["samples"] >= samples:
            return summary
        time.sleep(0.5)
    raise AssertionError(f"the monitor never measured {samples} samples: {summary}")


def test_the_shifted_feature_and_only_it_drifts_and_samples_land_in_the_store(
    start_server: Any, customers_model: dict[str, Any], tmp_path: Path
) -> None:
    capture = tmp_path / "capture"
    server = start_server(capture)
    summary = drift_of(server)
    assert summary["samples"] == 0 and all(
        v is None for v in summary["features"].values()
    )  # no data, no drift

    records = traffic(customers_model, charge_shift=80.0)  # the held-out split: the same every run
    assert set(send(server, records)) == {200}
    summary = wait_measured(server, len(records))
    drifted = {name for name, value in summary["features"].items() if value is not None and value > 0.2}
    assert drifted == {"monthly_charge"}, summary["features"]

    metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    line = re.search(r'mlpipeline_feature_drift\{[^}]*feature="monthly_charge"[^}]*\} (\S+)', metrics)
    assert line and float(line.group(1)) > 0.2 and 'pipeline="customers"' in line.group(0)
    assert re.search(rf"mlpipeline_drift_samples\{{[^}}]*\}} {len(records)}", metrics)

    files = list(capture.glob(f"version={summary['version']}/hour=*/*.jsonl"))
    lines = [json.loads(x) for f in files for x in f.read_text().splitlines()]
    assert len(lines) == len(records) and lines[0]["version"] == summary["version"]
    assert {"plan", "monthly_charge"} <= set(lines[0]["features"]) and lines[0]["prediction"] in ("yes", "no")
    report = capture / "report" / f"version={summary['version']}" / "drift.html"
    assert report.is_file() and "monthly_charge" in report.read_text()


def test_a_store_that_cannot_be_written_drops_samples_not_requests(
    start_server: Any, customers_model: dict[str, Any], tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("")  # the store's root is a file: every write fails
    server = start_server(tmp_path / "a-file" / "capture")
    records = traffic(customers_model) * 2
    assert set(send(server, records)) == {200}
    wait_measured(server, len(records))
    metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    dropped = re.search(r'mlpipeline_capture_records_total\{[^}]*outcome="dropped"[^}]*\} (\S+)', metrics)
    assert dropped and float(dropped.group(1)) == len(records), metrics[-2000:]
    assert drift_of(server)["samples"] == len(records)  # drift still measured on every sample


def captured(server: ModelServer) -> dict[str, float]:
    metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    found = re.findall(r'mlpipeline_capture_records_total\{[^}]*outcome="(\w+)"[^}]*\} (\S+)', metrics)
    return {outcome: float(value) for outcome, value in found}


def test_a_flood_fills_no_more_of_the_store_than_the_hourly_byte_cap(
    start_server: Any, customers_model: dict[str, Any], tmp_path: Path
) -> None:
    cap = 64 * 1024
    monitoring = MONITORING.model_copy(
        update={"capture": MONITORING.capture.model_copy(update={"buffer": 1000, "max_bytes_per_hour": cap})}
    )
    capture = tmp_path / "capture"
    server = start_server(capture, monitoring)
    records = traffic(customers_model) * 3
    assert set(send(server, records)) == {200}
    for _ in range(60):
        counts = captured(server)
        if counts.get("written", 0) + counts.get("capped", 0) == len(records):
            break
        time.sleep(0.5)
    files = list(capture.glob("version=*/hour=*/*.jsonl"))
    lines = [x for f in files for x in f.read_bytes().splitlines(keepends=True)]
    assert 0 < sum(map(len, lines)) <= cap < len(records) * min(map(len, lines))  # the flood was larger
    assert counts == {"written": len(lines), "capped": len(records) - len(lines)}, counts
    assert drift_of(server)["samples"] == len(records)  # drift still measured on every sample

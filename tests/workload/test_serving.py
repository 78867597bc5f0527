"""A real BentoML server of a packaged model: predictions, adaptive batching, metrics."""

from __future__ import annotations

import concurrent.futures
import re
from collections.abc import Iterator
from typing import Any

import httpx
import joblib
import pytest
from mlpipeline.local.server import ModelServer, free_port
from mlpipeline.steps.package import BUNDLE


@pytest.fixture(scope="module")
def server(customers_model: dict[str, Any]) -> Iterator[ModelServer]:
    workdir = customers_model["workdir"]
    running = ModelServer(
        tag=customers_model["model"],
        bentoml_home=workdir / "bentoml",
        port=free_port(),
        log=workdir / "serve.log",
    ).start()
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


def bundle_of(customers_model: dict[str, Any]) -> Any:
    name, version = customers_model["model"].split(":")
    path = customers_model["workdir"] / "bentoml" / "models" / name / version / BUNDLE
    return joblib.load(path)


RECORDS = [
    {"plan": "premium", "region": "north", "tenure_months": 40, "monthly_charge": 80.0, "support_tickets": 0},
    {
        "plan": "enterprise",
        "region": None,
        "tenure_months": None,
        "monthly_charge": 55.5,
        "support_tickets": 4,
    },
    {"plan": "basic", "tenure_months": 2, "monthly_charge": 30.0, "support_tickets": 6},
]


def test_predicts_with_missing_values_and_unseen_categories(
    server: ModelServer, customers_model: dict[str, Any]
) -> None:
    response = httpx.post(f"{server.url}/predict", json={"records": RECORDS}, timeout=30)
    assert response.status_code == 200, response.text
    answers = response.json()
    assert len(answers) == 3
    for answer in answers:
        assert answer["label"] in ("yes", "no")
        assert set(answer["probabilities"]) == {"no", "yes"}
        assert abs(sum(answer["probabilities"].values()) - 1) < 1e-6
    assert answers == bundle_of(customers_model).predict(RECORDS)


def test_concurrent_requests_are_batched_and_answered_each_their_own(
    server: ModelServer, customers_model: dict[str, Any]
) -> None:
    expected = bundle_of(customers_model).predict(RECORDS)

    def call(i: int) -> Any:
        record = RECORDS[i % 3]
        return i, httpx.post(f"{server.url}/predict", json={"records": [record]}, timeout=30).json()

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for i, answer in pool.map(call, range(64)):
            assert answer == [expected[i % 3]]


def test_metrics_count_predictions_per_class(server: ModelServer, customers_model: dict[str, Any]) -> None:
    before = httpx.get(f"{server.url}/metrics", timeout=10).text
    httpx.post(f"{server.url}/predict", json={"records": RECORDS * 5}, timeout=30)
    after = httpx.get(f"{server.url}/metrics", timeout=10).text

    def counts(text: str) -> dict[str, float]:
        pattern = r'mlpipeline_predictions_total\{[^}]*predicted_class="(\w+)"[^}]*\} ([0-9.e+]+)'
        return {k: float(v) for k, v in re.findall(pattern, text)}

    version = customers_model["model"].split(":")[1]
    assert f'model_version="{version}"' in after
    delta = {k: counts(after)[k] - counts(before).get(k, 0) for k in counts(after)}
    assert sum(delta.values()) == 15
    assert "bentoml_service_request_total" in after and 'endpoint="/predict"' in after


def test_metadata_describes_the_model(server: ModelServer) -> None:
    meta = httpx.post(f"{server.url}/metadata", json={}, timeout=10).json()
    assert meta["pipeline"] == "customers" and meta["classes"] == ["no", "yes"]
    assert meta["features"]["plan"] == "categorical" and "roc_auc" in meta["metrics"]

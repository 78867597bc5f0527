"""A real BentoML server of a packaged model: predictions, adaptive batching, metrics."""

from __future__ import annotations

import concurrent.futures
import re
from collections.abc import Iterator
from typing import Any

import httpx
import joblib
import pytest
from mlpipeline.local.server import ModelServer
from mlpipeline.steps.package import BUNDLE

from tests.workload.conftest import model_server


@pytest.fixture(scope="module")
def server(customers_model: dict[str, Any]) -> Iterator[ModelServer]:
    with model_server(customers_model, customers_model["workdir"] / "serve.log") as running:
        yield running


def bundle_of(customers_model: dict[str, Any]) -> Any:
    name, version = customers_model["model"].split(":")
    path = customers_model["workdir"] / "bentoml" / "models" / name / version / BUNDLE
    return joblib.load(path)


RECORDS: list[dict[str, Any]] = [
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


def predict(server: ModelServer, records: Any) -> httpx.Response:
    return httpx.post(f"{server.url}/predict", json={"records": records}, timeout=30)


def refusals(text: str) -> dict[tuple[str, str, str], float]:
    """mlpipeline_rejected_requests_total by (model_version, reason, field)."""
    counts = {}
    for labels, value in re.findall(r"^mlpipeline_rejected_requests_total\{([^}]*)\} (\S+)$", text, re.M):
        label = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        counts[label["model_version"], label["reason"], label["field"]] = float(value)
    return counts


def test_a_value_that_cannot_be_read_is_refused_naming_record_field_and_value(server: ModelServer) -> None:
    response = predict(server, [RECORDS[0], {**RECORDS[0], "tenure_months": "abc"}])
    assert response.status_code == 400, response.text
    (problem,) = response.json()["detail"]
    assert problem["msg"] == 'records[1].tenure_months: "abc" is not a number'
    assert problem["loc"] == ["records", 1, "tenure_months"]

    response = predict(server, [{**RECORDS[0], "plan": ["premium"], "monthly_charge": True}])
    assert response.status_code == 400
    assert {p["msg"] for p in response.json()["detail"]} == {
        'records[0].plan: ["premium"] is not a category (a string, number or boolean)',
        "records[0].monthly_charge: true is not a number",
    }


def test_numbers_sent_as_strings_are_read(server: ModelServer) -> None:
    as_strings = {**RECORDS[0], "tenure_months": "40", "monthly_charge": " 80.0 "}
    response = predict(server, [as_strings])
    assert response.status_code == 200, response.text
    assert response.json() == predict(server, [RECORDS[0]]).json()


def test_null_nan_missing_and_undeclared_fields_are_answered(server: ModelServer) -> None:
    body = (
        b'{"records": [{"plan": "basic", "tenure_months": NaN, "monthly_charge": null, "coupon": {"id": 1}},'
        b' {"plan": "basic", "support_tickets": 6, "notes": "abc"}]}'
    )
    response = httpx.post(
        f"{server.url}/predict", content=body, headers={"Content-Type": "application/json"}, timeout=30
    )
    assert response.status_code == 200, response.text
    assert (
        response.json()
        == predict(server, [{"plan": "basic"}, {"plan": "basic", "support_tickets": 6}]).json()
    )


@pytest.mark.parametrize("records", ["abc", [1, 2], [{"plan": "basic"}, "x"], None])
def test_records_that_are_not_a_list_of_objects_are_refused(server: ModelServer, records: Any) -> None:
    assert predict(server, records).status_code == 400


def test_a_refused_request_does_not_fail_the_requests_batched_with_it(
    server: ModelServer, customers_model: dict[str, Any]
) -> None:
    expected = bundle_of(customers_model).predict(RECORDS)
    bad = {**RECORDS[0], "monthly_charge": "abc"}

    def batched_requests() -> float:
        text = httpx.get(f"{server.url}/metrics", timeout=10).text
        total = re.search(r'adaptive_batch_size_sum\{[^}]*method_name="predict"[^}]*\} (\S+)', text)
        assert total
        return float(total[1])

    def call(i: int) -> tuple[int, httpx.Response]:
        return i, predict(server, [bad] if i % 5 == 4 else [RECORDS[i % 3]])

    before = batched_requests()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answered = list(pool.map(call, range(25)))
    after = batched_requests()
    for i, response in answered:
        if i % 5 == 4:
            assert response.status_code == 400, response.text
            assert "records[0].monthly_charge" in response.text
        else:
            assert response.status_code == 200, response.text
            assert response.json() == [expected[i % 3]]
    # How many batches the 20 made depends on timing (bench/serving measures batching's gain).
    assert after - before == 20, "refused requests never reach the batch"


def test_refusals_are_counted_by_the_field_that_could_not_be_read(
    server: ModelServer, customers_model: dict[str, Any]
) -> None:
    version = customers_model["model"].split(":")[1]
    before = refusals(httpx.get(f"{server.url}/metrics", timeout=10).text)
    for _ in range(3):
        assert (
            predict(server, [{**RECORDS[0], "support_tickets": "many", "unknown": "abc"}]).status_code == 400
        )
    assert predict(server, "abc").status_code == 400
    assert predict(server, [{**RECORDS[0], "unknown": "abc"}]).status_code == 200
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    after = refusals(text)

    def delta(key: tuple[str, str, str]) -> float:
        return after.get(key, 0) - before.get(key, 0)

    assert delta((version, "unreadable_value", "support_tickets")) == 3
    assert delta((version, "malformed", "")) == 1
    assert {field for _, _, field in after} <= {*bundle_of(customers_model).features, ""}
    assert 'field="unknown"' not in text

"""A real BentoML server of a packaged model: predictions, adaptive batching, metrics."""

from __future__ import annotations

import concurrent.futures
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import joblib
import numpy as np
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


# --- The Open Inference Protocol (V2, REST), with a real client of it -----------------------------

COMPLETE: list[dict[str, Any]] = [
    {"plan": "premium", "region": "north", "tenure_months": 40, "monthly_charge": 80.0, "support_tickets": 0},
    {
        "plan": "enterprise",
        "region": "west",
        "tenure_months": 3,
        "monthly_charge": 55.5,
        "support_tickets": 4,
    },
    {"plan": "basic", "region": "east", "tenure_months": 2, "monthly_charge": 30.0, "support_tickets": 6},
]


def triton(server: ModelServer) -> Any:
    import tritonclient.http

    return tritonclient.http.InferenceServerClient(server.url.removeprefix("http://"), network_timeout=30)


def as_tensors(records: list[dict[str, Any]], features: dict[str, str]) -> list[Any]:
    """One named input per feature, one element per record, typed as the model's metadata says."""
    import tritonclient.http

    inputs = []
    for name, kind in features.items():
        column = [record[name] for record in records]
        if kind == "numeric":
            tensor = tritonclient.http.InferInput(name, [len(records)], "FP32")
            tensor.set_data_from_numpy(np.asarray(column, dtype=np.float32), binary_data=False)
        else:
            tensor = tritonclient.http.InferInput(name, [len(records)], "BYTES")
            tensor.set_data_from_numpy(np.asarray(column, dtype=object), binary_data=False)
        inputs.append(tensor)
    return inputs


def batched_predictions(server: ModelServer) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    total = re.search(r'adaptive_batch_size_sum\{[^}]*method_name="predict"[^}]*\} (\S+)', text)
    assert total
    return float(total[1])


def test_oip_health_and_metadata(server: ModelServer, customers_model: dict[str, Any]) -> None:
    client = triton(server)
    version = customers_model["model"].split(":")[1]
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("customers") and client.is_model_ready("customers", version)
    assert not client.is_model_ready("iris")
    assert client.get_server_metadata() == {"name": "mlpipeline", "version": "0.1.0", "extensions": []}

    meta = client.get_model_metadata("customers")
    assert meta == client.get_model_metadata("customers", model_version=version)
    assert meta["name"] == "customers" and meta["versions"] == [version]
    assert {i["name"]: i["datatype"] for i in meta["inputs"]} == {
        "plan": "BYTES",
        "region": "BYTES",
        "tenure_months": "FP32",
        "monthly_charge": "FP32",
        "support_tickets": "FP32",
    }
    assert all(i["shape"] == [-1] for i in meta["inputs"])
    assert meta["outputs"] == [
        {"name": "label", "datatype": "BYTES", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]},
    ]
    assert httpx.get(f"{server.url}/v2/models/iris", timeout=10).status_code == 404
    assert httpx.get(f"{server.url}/v2/models/customers/versions/nope", timeout=10).status_code == 404
    assert httpx.get(f"{server.url}/v2/health/live", timeout=10).status_code == 200
    assert httpx.get(f"{server.url}/livez", timeout=10).status_code == 200  # the service's own routes stay


def test_oip_infer_answers_as_predict_through_its_batches(
    server: ModelServer, customers_model: dict[str, Any]
) -> None:
    client = triton(server)
    features = bundle_of(customers_model).features
    expected = predict(server, COMPLETE).json()
    before = batched_predictions(server)

    result = client.infer("customers", as_tensors(COMPLETE, features), request_id="r-1")
    response = result.get_response()
    assert response["model_name"] == "customers" and response["id"] == "r-1"
    assert response["model_version"] == customers_model["model"].split(":")[1]
    assert [label.decode() if isinstance(label, bytes) else label for label in result.as_numpy("label")] == [
        e["label"] for e in expected
    ]
    probabilities = result.as_numpy("probabilities")
    assert probabilities.shape == (3, 2)
    as_fp32 = np.asarray(
        [[e["probabilities"]["no"], e["probabilities"]["yes"]] for e in expected], np.float32
    )
    assert probabilities.tolist() == as_fp32.tolist()
    # adaptive_batch_size counts the requests in each batch: the inference request joined one.
    assert batched_predictions(server) - before == 1, "the inference went through /predict's batches"

    # Missing values (null) and the versioned route, in plain JSON; only the outputs asked for.
    columns = {name: [record.get(name) for record in RECORDS] for name in features}
    body = {
        "inputs": [
            {
                "name": name,
                "shape": [3, 1],
                "datatype": "FP32" if kind == "numeric" else "BYTES",
                "data": data,
            }
            for (name, data), kind in zip(columns.items(), features.values(), strict=True)
        ],
        "outputs": [{"name": "label"}],
    }
    version = customers_model["model"].split(":")[1]
    answer = httpx.post(f"{server.url}/v2/models/customers/versions/{version}/infer", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"] == [
        {
            "name": "label",
            "datatype": "BYTES",
            "shape": [3],
            "data": [e["label"] for e in predict(server, RECORDS).json()],
        }
    ]


def test_oip_refuses_a_bad_input_naming_it(server: ModelServer, customers_model: dict[str, Any]) -> None:
    import tritonclient.http
    from tritonclient.utils import InferenceServerException

    client = triton(server)
    features = bundle_of(customers_model).features
    version = customers_model["model"].split(":")[1]
    before = refusals(httpx.get(f"{server.url}/metrics", timeout=10).text)

    inputs = [t for t in as_tensors(COMPLETE, features) if t.name() != "tenure_months"]
    unreadable = tritonclient.http.InferInput("tenure_months", [3], "BYTES")
    unreadable.set_data_from_numpy(np.asarray(["40", "abc", "2"], dtype=object), binary_data=False)
    with pytest.raises(InferenceServerException) as error:
        client.infer("customers", [*inputs, unreadable])
    assert error.value.status() == "400"
    assert error.value.message() == 'input tenure_months[1]: "abc" is not a number'
    after = refusals(httpx.get(f"{server.url}/metrics", timeout=10).text)
    key = (version, "unreadable_value", "tenure_months")
    assert after.get(key, 0) - before.get(key, 0) == 1, "counted as /predict's refusals"

    with pytest.raises(InferenceServerException, match="input region: missing") as error:
        client.infer("customers", [t for t in inputs if t.name() != "region"])
    assert error.value.status() == "400"
    with pytest.raises(InferenceServerException, match="input coupon: unknown"):
        coupon = tritonclient.http.InferInput("coupon", [3], "BYTES")
        coupon.set_data_from_numpy(np.asarray(["a", "b", "c"], dtype=object), binary_data=False)
        client.infer("customers", [*as_tensors(COMPLETE, features), coupon])
    with pytest.raises(InferenceServerException) as error:
        client.infer("iris", as_tensors(COMPLETE, features))
    assert error.value.status() == "404"


def test_what_one_request_may_carry_is_bounded_and_each_refusal_counted(server: ModelServer) -> None:
    """serving/limits.py's defaults: 16 MiB of body (413 before it is parsed, with or without a
    Content-Length), 1,000 records, 1,024 characters per value (400 naming it)."""
    before = refusals(httpx.get(f"{server.url}/metrics").text)
    huge = b'{"records": [{"plan": "' + b"x" * (16 * 1024 * 1024) + b'"}]}'
    declared = httpx.post(f"{server.url}/predict", content=huge, timeout=30)
    assert declared.status_code == 413 and "MLP_MAX_REQUEST_BYTES" in declared.text
    chunked = httpx.post(
        f"{server.url}/predict", content=(huge[i : i + 65536] for i in range(0, len(huge), 65536)), timeout=30
    )
    assert chunked.status_code == 413
    small_chunked = httpx.post(
        f"{server.url}/predict",
        content=iter([b'{"records": ', json.dumps(RECORDS[:1]).encode(), b"}"]),
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert small_chunked.status_code == 200, small_chunked.text  # replayed whole to the service

    too_many = predict(server, [RECORDS[0]] * 1001)
    assert too_many.status_code == 400
    assert "past the 1000 records one request may carry" in too_many.json()["detail"][0]["msg"]
    too_long = predict(server, [{**RECORDS[0], "plan": "p" * 1025}])
    assert too_long.status_code == 400
    assert too_long.json()["detail"][0]["loc"] == ["records", 0, "plan"]
    assert predict(server, [RECORDS[0]] * 1000).status_code == 200

    after = refusals(httpx.get(f"{server.url}/metrics").text)
    delta = {key[1:]: value - before.get(key, 0) for key, value in after.items()}
    assert delta[("too_large", "")] == 2
    assert delta[("too_many_records", "")] == 1
    assert delta[("unreadable_value", "plan")] == 1

"""The Open Inference Protocol's tensors in terms of records (serving/oip.py)."""

from __future__ import annotations

from typing import Any

import pytest
from mlpipeline.serving import oip
from mlpipeline.serving.oip import ProtocolError

FEATURES = {"plan": "categorical", "tenure_months": "numeric", "photo": "image", "zone": "categorical"}
PROFILE = {
    "columns": {
        "plan": {"type": "categorical", "frequencies": {"basic": 0.5, "premium": 0.5}},
        "tenure_months": {"type": "numeric"},
        "zone": {"type": "categorical", "frequencies": {"1": 0.6, "12": 0.3, "__other__": 0.1}},
    }
}


def tensor(
    name: str, data: list[Any], datatype: str = "BYTES", shape: list[int] | None = None
) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape or [len(data)], "data": data}


def inputs(**columns: list[Any]) -> list[dict[str, Any]]:
    datatypes = {"tenure_months": "FP32", "zone": "INT64"}
    return [tensor(name, data, datatypes.get(name, "BYTES")) for name, data in columns.items()]


def test_metadata_has_one_input_per_feature_typed_as_the_feature_needs() -> None:
    meta = oip.model_metadata("customers", "v1", FEATURES, "classification", ["no", "yes"], True, PROFILE)
    assert meta["name"] == "customers" and meta["versions"] == ["v1"] and meta["platform"]
    assert meta["inputs"] == [
        {"name": "plan", "datatype": "BYTES", "shape": [-1]},
        {"name": "tenure_months", "datatype": "FP32", "shape": [-1]},
        {"name": "photo", "datatype": "BYTES", "shape": [-1]},
        {"name": "zone", "datatype": "INT64", "shape": [-1]},  # integer categories (rare ones aside)
    ]
    assert meta["outputs"] == [
        {"name": "label", "datatype": "BYTES", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]},
    ]
    assert meta["parameters"] == {"classes": ["no", "yes"]}


def test_metadata_outputs_of_integer_classes_without_probabilities_and_of_regression() -> None:
    meta = oip.model_metadata("m", "v", {"x": "numeric"}, "classification", [0, 1, 2], False)
    assert meta["outputs"] == [{"name": "label", "datatype": "INT64", "shape": [-1]}]
    meta = oip.model_metadata("m", "v", {"x": "numeric"}, "regression", [], False)
    assert meta["outputs"] == [{"name": "value", "datatype": "FP32", "shape": [-1]}]
    assert "parameters" not in meta


def test_tensors_become_one_record_per_element() -> None:
    records = oip.tensors_to_records(
        FEATURES,
        [
            tensor("plan", ["basic", None]),
            tensor("tenure_months", [[3.0], ["abc"]], "FP32", [2, 1]),  # [n, 1], values left to /predict
            tensor("photo", ["aGk=", "s3://bucket/a.png"]),
            tensor("zone", [1, 12], "INT64"),
        ],
    )
    assert records == [
        {"plan": "basic", "tenure_months": 3.0, "photo": "aGk=", "zone": 1},
        {"plan": None, "tenure_months": "abc", "photo": "s3://bucket/a.png", "zone": 12},
    ]
    assert oip.tensors_to_records({"x": "numeric"}, [tensor("x", [], "FP32", [0])]) == []


@pytest.mark.parametrize(
    ("tensors", "message"),
    [
        (inputs(plan=["a"], tenure_months=[1], photo=["p"]), "input zone: missing"),
        (inputs(plan=["a"], tenure_months=[1], photo=["p"], zone=[1], coupon=["x"]), "input coupon: unknown"),
        (
            inputs(plan=["a", "b"], tenure_months=[1], photo=["p"], zone=[1]),
            "input tenure_months: 1 elements",
        ),
        ([*inputs(plan=["a"]), *inputs(plan=["b"])], "input plan: given twice"),
        ([{**tensor("plan", ["a"]), "shape": [2]}], "input plan: shape [2] holds 2 elements, data 1"),
        ([{**tensor("plan", ["a"]), "shape": [1, 2]}], "input plan: shape [1, 2] is neither"),
        ([{**tensor("plan", ["a"]), "datatype": "STRING"}], "input plan: unknown datatype 'STRING'"),
        ([{**tensor("plan", ["a"]), "data": "a"}], "input plan: data must be a list"),
        ([{"name": "plan", "datatype": "BYTES", "shape": [1]}], "input plan: no data"),
        ([{**tensor("plan", ["a"]), "parameters": {"binary_data_size": 4}}], "input plan: binary tensor"),
        ([{"datatype": "BYTES"}], "inputs[0] is not a tensor with a name"),
        ([], "inputs must be a non-empty list"),
        (None, "inputs must be a non-empty list"),
    ],
)
def test_malformed_tensors_are_refused_naming_the_input(tensors: Any, message: str) -> None:
    with pytest.raises(ProtocolError, match="^" + message.replace("[", r"\[").replace("]", r"\]")) as error:
        oip.tensors_to_records(FEATURES, tensors)
    assert error.value.status == 400


def test_answers_become_output_tensors() -> None:
    answers = [
        {"label": "yes", "probabilities": {"no": 0.25, "yes": 0.75}},
        {"label": "no", "probabilities": {"no": 0.5, "yes": 0.5}},
    ]
    assert oip.answers_to_outputs(answers, "classification", ["no", "yes"], True) == [
        {"name": "label", "datatype": "BYTES", "shape": [2], "data": ["yes", "no"]},
        {"name": "probabilities", "datatype": "FP32", "shape": [2, 2], "data": [0.25, 0.75, 0.5, 0.5]},
    ]
    only = oip.answers_to_outputs(answers, "classification", ["no", "yes"], True, ["probabilities"])
    assert [o["name"] for o in only] == ["probabilities"]
    integer = oip.answers_to_outputs([{"label": 2, "probabilities": {}}], "classification", [0, 2], False)
    assert integer == [{"name": "label", "datatype": "INT64", "shape": [1], "data": [2]}]
    assert oip.answers_to_outputs([{"prediction": 1.5}], "regression", [], False) == [
        {"name": "value", "datatype": "FP32", "shape": [1], "data": [1.5]}
    ]


def test_requested_outputs() -> None:
    assert oip.requested_outputs(None, ["label", "probabilities"]) == ["label", "probabilities"]
    assert oip.requested_outputs([{"name": "label", "parameters": {}}], ["label"]) == ["label"]
    with pytest.raises(ProtocolError, match=r"^output score: unknown"):
        oip.requested_outputs([{"name": "score"}], ["label"])


def test_refusals_of_predict_name_the_input_and_element() -> None:
    detail = [
        {"loc": ["records", 1, "tenure_months"], "msg": 'records[1].tenure_months: "abc" is not a number'},
        {"loc": ["records", 0, "plan"], "msg": "records[0].plan: [1] is not a category"},
    ]
    assert oip.refusal_message(detail) == (
        'input tenure_months[1]: "abc" is not a number; input plan[0]: [1] is not a category'
    )

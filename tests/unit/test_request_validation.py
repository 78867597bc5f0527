"""Reading prediction records as the model's features declare them: what is read, what is refused."""

from __future__ import annotations

import math
from typing import Any

import pytest
from mlpipeline.serving.limits import MAX_RECORDS, MAX_VALUE_CHARS
from mlpipeline.serving.validation import (
    MAX_PROBLEMS,
    Problem,
    TooManyRecords,
    UnreadableRecords,
    clean_records,
    within_request_limit,
)

FEATURES = {"petal_length": "numeric", "colour": "categorical"}


def refusal(records: list[Any], features: dict[str, str] = FEATURES) -> UnreadableRecords:
    with pytest.raises(UnreadableRecords) as caught:
        clean_records(features, records)
    return caught.value


def test_numbers_and_decimal_strings_are_read_as_floats() -> None:
    records = [
        {"petal_length": 5, "colour": "red"},
        {"petal_length": 5.1},
        {"petal_length": "5.1"},
        {"petal_length": " -3 "},
        {"petal_length": "1e3"},
        {"petal_length": ".5"},
    ]
    cleaned = clean_records(FEATURES, records)
    assert [r["petal_length"] for r in cleaned] == [5.0, 5.1, 5.1, -3.0, 1000.0, 0.5]
    assert all(isinstance(r["petal_length"], float) for r in cleaned)


def test_a_string_that_is_not_a_number_is_refused_naming_record_field_and_value() -> None:
    error = refusal([{"petal_length": 1.0}, {"petal_length": "abc", "colour": "red"}])
    assert error.problems == [Problem(1, "petal_length", "abc", "is not a number")]
    assert str(error) == 'records[1].petal_length: "abc" is not a number'
    assert error.problems[0].path == "records[1].petal_length"


@pytest.mark.parametrize("value", [True, False, "nan", "NaN", "inf", "1_000", "5,1", "", [1.0], {"cm": 1}])
def test_numeric_fields_refuse_what_is_not_a_number(value: Any) -> None:
    (problem,) = refusal([{"petal_length": value}]).problems
    assert (problem.index, problem.field, problem.value) == (0, "petal_length", value)
    assert problem.reason == "is not a number"


@pytest.mark.parametrize("value", [math.inf, -math.inf, "1e999", 10**400])
def test_numeric_fields_refuse_numbers_that_are_not_finite(value: Any) -> None:
    (problem,) = refusal([{"petal_length": value}]).problems
    assert problem.reason == "is not a finite number"


def test_categories_are_kept_as_sent() -> None:
    records = [{"colour": "red"}, {"colour": 3}, {"colour": 2.5}, {"colour": True}]
    assert clean_records(FEATURES, records) == records


@pytest.mark.parametrize("value", [["red"], {"name": "red"}])
def test_categorical_fields_refuse_lists_and_objects(value: Any) -> None:
    error = refusal([{"colour": value}])
    assert str(error).startswith("records[0].colour: ")
    assert error.problems[0].reason == "is not a category (a string, number or boolean)"


def test_null_nan_and_missing_fields_are_missing_values() -> None:
    records = [{"petal_length": None, "colour": None}, {"petal_length": math.nan, "colour": math.nan}, {}]
    assert clean_records(FEATURES, records) == [
        {"petal_length": None, "colour": None},
        {"petal_length": None, "colour": None},
        {},
    ]


def test_fields_the_model_does_not_declare_are_ignored() -> None:
    records = [{"petal_length": 1, "coupon": {"code": "x"}, "notes": "abc"}]
    assert clean_records(FEATURES, records) == [{"petal_length": 1.0}]


def test_a_record_that_is_not_an_object_is_refused() -> None:
    error = refusal([{"petal_length": 1}, [1, "red"]])
    assert str(error) == 'records[1]: [1, "red"] is not an object'


def test_every_problem_is_reported_in_record_order() -> None:
    error = refusal([{"petal_length": "x", "colour": ["a"]}, {"petal_length": 2}, {"petal_length": False}])
    assert [p.path for p in error.problems] == [
        "records[0].petal_length",
        "records[0].colour",
        "records[2].petal_length",
    ]
    assert str(error).count(";") == 2


def test_at_most_max_problems_are_reported() -> None:
    error = refusal([{"petal_length": "x"}] * (MAX_PROBLEMS * 3))
    assert len(error.problems) == MAX_PROBLEMS
    assert error.problems[-1].index == MAX_PROBLEMS - 1


def test_a_long_value_is_shortened_in_the_message() -> None:
    error = refusal([{"petal_length": "x" * 1_000}])
    assert len(str(error)) < 100 and str(error).endswith("… is not a number")


@pytest.mark.parametrize(
    "uri",
    [
        "local:///dev/zero",  # fsspec's local files under another name
        "file:///etc/passwd",
        "/etc/passwd",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",  # a cloud's metadata
        "https://internal.example/secret.png",
        "memory://x.png",
    ],
)
def test_an_image_is_read_only_inline_or_from_object_storage(uri: str) -> None:
    (problem,) = refusal([{"image": uri}], {"image": "image"}).problems
    assert problem.field == "image"
    assert "the server reads no local path or URL" in problem.reason


def test_a_category_or_number_longer_than_the_limit_is_refused() -> None:
    long = "x" * (MAX_VALUE_CHARS + 1)
    problems = refusal([{"colour": long, "petal_length": "1" * (MAX_VALUE_CHARS + 1)}]).problems
    assert [(p.field, p.reason) for p in problems] == [
        ("petal_length", f"is longer than {MAX_VALUE_CHARS} characters (MLP_MAX_VALUE_CHARS)"),
        ("colour", f"is longer than {MAX_VALUE_CHARS} characters (MLP_MAX_VALUE_CHARS)"),
    ]
    assert clean_records(FEATURES, [{"colour": "x" * MAX_VALUE_CHARS}]) == [{"colour": "x" * MAX_VALUE_CHARS}]


def test_more_records_than_a_request_may_carry_are_refused_as_a_whole() -> None:
    with pytest.raises(TooManyRecords, match=f"past the {MAX_RECORDS} records one request may carry"):
        within_request_limit([{"colour": "red"}] * (MAX_RECORDS + 1))
    within_request_limit([{"colour": "red"}] * MAX_RECORDS)
    # a labeling round reads its whole pool with clean_records: the bound is a request's only
    assert len(clean_records(FEATURES, [{"colour": "red"}] * (MAX_RECORDS + 1))) == MAX_RECORDS + 1

"""Reading prediction records as the model's features declare them: what is read, what is refused."""

from __future__ import annotations

import math
from typing import Any

import pytest
from mlpipeline.serving.validation import MAX_PROBLEMS, Problem, UnreadableRecords, clean_records

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
    error = refusal([{"petal_length": "x" * 10_000}])
    assert len(str(error)) < 100 and str(error).endswith("… is not a number")

"""The API models: examples parse, and every kind of bad input names its field and reason."""

from __future__ import annotations

from typing import Any

import pytest
from mlpipeline.api.manifest import ManifestError, load_manifest, parse_manifest
from mlpipeline.api.models import TrainSpec, parse_duration
from pydantic import ValidationError

from tests.conftest import EXAMPLES, example, mlpipeline, write_manifest


@pytest.mark.parametrize("name", ["iris", "diabetes", "customers", "digits"])
def test_examples_are_valid(name: str) -> None:
    pipeline = load_manifest(EXAMPLES / f"{name}.yaml")
    assert pipeline.metadata.name == name
    assert pipeline.spec.train.tune.search_space


def test_the_cycle_example_is_valid_and_reads_partitions() -> None:
    pipeline = load_manifest(EXAMPLES / "cycle.yaml")
    assert pipeline.spec.data.uri.endswith("month=*.csv") and pipeline.spec.retrain.on_new_data
    assert len(list((EXAMPLES / "data" / "sensors").glob("month=*.csv"))) == 6


def test_defaults_fill_what_the_manifest_leaves_out() -> None:
    spec = load_manifest(EXAMPLES / "diabetes.yaml").spec
    assert spec.preprocess.numeric.impute == "median"
    assert spec.serve.canary.steps == [10, 25, 50]
    assert spec.serve.canary.analysis.no_data == "hold"
    assert spec.train.tune.resolved_mode == "max"  # r2 is maximised


def errors_of(document: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(document)
    return {e.path: e.reason for e in caught.value.errors}


def test_wrong_type_names_the_field() -> None:
    doc = example("iris")
    doc["spec"]["train"]["tune"]["trials"] = "many"
    assert "valid integer" in errors_of(doc)["spec.train.tune.trials"]


def test_unknown_algorithm_lists_the_known_ones() -> None:
    doc = example("iris")
    doc["spec"]["train"]["tune"]["algorithm"] = "genetic"
    reason = errors_of(doc)["spec.train.tune.algorithm"]
    assert "'grid', 'random' or 'bayesian'" in reason


def test_empty_search_space_is_refused() -> None:
    doc = example("iris")
    doc["spec"]["train"]["tune"]["searchSpace"] = {}
    assert "at least 1 item" in errors_of(doc)["spec.train.tune.searchSpace"]


def test_search_param_needs_exactly_one_domain() -> None:
    doc = example("iris")
    doc["spec"]["train"]["tune"]["searchSpace"]["max_depth"] = {"choice": [1], "randint": [1, 3]}
    reason = errors_of(doc)["spec.train.tune.searchSpace.max_depth"]
    assert "exactly one of" in reason and "choice, randint" in reason


def test_grid_search_refuses_ranges() -> None:
    doc = example("iris")
    doc["spec"]["train"]["tune"]["algorithm"] = "grid"
    reason = errors_of(doc)["spec.train.tune"]
    assert "n_estimators" in reason and "min_samples_leaf" in reason and "max_depth" not in reason


def test_canary_steps_must_increase_within_100() -> None:
    doc = example("iris")
    doc["spec"]["serve"]["canary"]["steps"] = [10, 50, 25]
    assert "strictly increasing" in errors_of(doc)["spec.serve.canary.steps"]
    doc["spec"]["serve"]["canary"]["steps"] = [10, 150]
    assert "1..100" in errors_of(doc)["spec.serve.canary.steps"]


def test_unknown_field_is_an_error_not_silently_dropped() -> None:
    doc = example("iris")
    doc["spec"]["train"]["tune"]["trails"] = 4
    assert errors_of(doc)["spec.train.tune.trails"] == "unknown field"


def test_metric_must_fit_the_task() -> None:
    doc = example("diabetes")
    doc["spec"]["train"]["tune"]["metric"] = "accuracy"
    assert "does not apply to regression" in errors_of(doc)["spec.train"]


def test_unknown_model_lists_built_ins() -> None:
    doc = example("iris")
    doc["spec"]["train"]["model"] = "svm"
    reason = errors_of(doc)["spec.train"]
    assert "unknown model 'svm'" in reason and "logistic_regression" in reason


def test_gate_needs_a_bound() -> None:
    doc = example("iris")
    doc["spec"]["evaluate"] = {"metric": "accuracy"}
    assert errors_of(doc)["spec.evaluate"] == "set min, max or both"


@pytest.mark.parametrize(
    ("name", "gate", "path", "reason"),
    [
        ("iris", {"metric": "accuracy", "min": 1.5}, "min", "accuracy is at most 1 and min is 1.5"),
        ("iris", {"min": 1.01}, "min", "accuracy is at most 1 and min is 1.01"),  # the default metric
        ("iris", {"metric": "roc_auc", "min": 0.5, "max": -0.2}, "max", "roc_auc is at least 0"),
        ("diabetes", {"metric": "r2", "min": 2}, "min", "r2 is at most 1 and min is 2"),
        ("diabetes", {"metric": "rmse", "max": -1}, "max", "rmse is at least 0 and max is -1"),
    ],
)
def test_a_gate_no_model_can_pass_is_refused_at_its_field(
    name: str, gate: dict[str, Any], path: str, reason: str
) -> None:
    doc = example(name)
    doc["spec"]["evaluate"] = gate
    errors = errors_of(doc)
    assert list(errors) == [f"spec.evaluate.{path}"], errors
    assert errors[f"spec.evaluate.{path}"].startswith("no model can pass this gate: ")
    assert reason in errors[f"spec.evaluate.{path}"]


@pytest.mark.parametrize(
    ("name", "gate"),
    [
        ("iris", {"metric": "accuracy", "min": 1.0}),  # a perfect model passes
        ("iris", {"metric": "log_loss", "max": 0.0}),
        ("diabetes", {"metric": "r2", "min": 0.3, "max": 1}),
        ("diabetes", {"metric": "r2", "max": -3}),  # r2 has no lower bound
        ("diabetes", {"metric": "mae", "min": 40}),  # odd, but a model can pass it
    ],
)
def test_a_gate_some_model_can_pass_is_accepted(name: str, gate: dict[str, Any]) -> None:
    doc = example(name)
    doc["spec"]["evaluate"] = gate
    assert parse_manifest(doc).spec.evaluate.metric == gate["metric"]


def test_the_api_server_refuses_an_unreachable_gate_at_the_same_field() -> None:
    from mlpipeline.api.crd import build_crd

    schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    rules = schema["properties"]["spec"]["properties"]["evaluate"]["x-kubernetes-validations"]
    by_field = {r.get("fieldPath"): r for r in rules}
    assert by_field[".min"]["reason"] == by_field[".max"]["reason"] == "FieldValueInvalid"
    assert "self.min <= 1.0" in by_field[".min"]["rule"] and "'accuracy'" in by_field[".min"]["rule"]
    assert "'r2'" in by_field[".min"]["rule"] and "'rmse'" not in by_field[".min"]["rule"]
    assert "self.max >= 0.0" in by_field[".max"]["rule"] and "'rmse'" in by_field[".max"]["rule"]
    assert "'r2'" not in by_field[".max"]["rule"]
    assert by_field[".min"]["message"].startswith("no model can pass this gate")


def test_validate_command_refuses_an_unreachable_gate(tmp_path: Any) -> None:
    doc = example("iris")
    doc["spec"]["evaluate"] = {"metric": "accuracy", "min": 1.5}
    result = mlpipeline("validate", "-f", str(write_manifest(tmp_path / "gate.yaml", doc)), timeout=60)
    assert result.returncode == 1
    assert "spec.evaluate.min: no model can pass this gate: accuracy is at most 1" in result.stderr


def test_every_error_is_reported_at_once() -> None:
    doc = example("iris")
    doc["spec"]["data"]["testSize"] = 2
    doc["spec"]["train"]["tune"]["algorithm"] = "nope"
    assert {"spec.data.testSize", "spec.train.tune.algorithm"} <= set(errors_of(doc))


def test_durations() -> None:
    assert parse_duration("1m30s") == 90
    assert parse_duration("250ms") == 0.25
    with pytest.raises(ValueError):
        parse_duration("30 seconds")


def test_validate_command_prints_paths_and_fails(tmp_path: Any) -> None:
    doc = example("iris")
    doc["spec"]["train"]["tune"]["algorithm"] = "genetic"
    bad = write_manifest(tmp_path / "bad.yaml", doc)
    result = mlpipeline("validate", "-f", str(bad), timeout=60)
    assert result.returncode == 1
    assert "spec.train.tune.algorithm:" in result.stderr
    good = mlpipeline("validate", "-f", str(EXAMPLES / "iris.yaml"), timeout=60)
    assert good.returncode == 0 and "is valid" in good.stdout


def test_unreadable_manifest_file_is_a_clear_error(tmp_path: Any) -> None:
    result = mlpipeline("validate", "-f", str(tmp_path / "missing.yaml"), timeout=60)
    assert result.returncode == 1 and "No such file" in result.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("spec: [unclosed\n")
    result = mlpipeline("validate", "-f", str(broken), timeout=60)
    assert result.returncode == 1 and "(yaml)" in result.stderr


def test_max_concurrent_is_bounded_by_trials_except_for_a_grid() -> None:
    doc = example("diabetes")  # grid search: trials repeat the grid, whose points may run at once
    doc["spec"]["train"]["tune"].update(trials=1, maxConcurrent=4)
    parse_manifest(doc)
    doc = example("iris")
    doc["spec"]["train"]["tune"].update(trials=2, maxConcurrent=4)
    assert "must not exceed trials" in errors_of(doc)["spec.train.tune"]


def test_inline_trials_refuse_what_only_ray_does() -> None:
    doc = example("iris")  # maxConcurrent: 2
    doc["spec"]["train"]["tune"]["executor"] = "inline"
    assert "maxConcurrent needs executor ray or auto" in errors_of(doc)["spec.train.tune"]
    del doc["spec"]["train"]["tune"]["maxConcurrent"]
    parse_manifest(doc)
    doc["spec"]["train"]["distributed"] = {"workers": 2}
    assert "train.distributed needs executor ray or auto" in errors_of(doc)["spec.train"]


def test_the_api_s_built_in_model_names_are_the_ones_the_steps_build() -> None:
    """The API validates spec.train.model without loading the data plane; steps/estimators.py builds
    the models: the two lists must agree, task by task and in order (the error lists them)."""
    from mlpipeline.api.models import BUILTIN_MODELS
    from mlpipeline.steps.estimators import builtin_models

    for task, names in BUILTIN_MODELS.items():
        assert list(names) == builtin_models(task), task
    with pytest.raises(ValidationError, match="built-in: ridge, random_forest"):
        space = {"alpha": {"choice": [1.0]}}
        TrainSpec.model_validate(
            {"task": "regression", "model": "logistic_regression", "tune": {"searchSpace": space}}
        )

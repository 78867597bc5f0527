"""Real Ray Tune runs through the tune step command: on Ray, and inline (what executor auto picks
for these small data sets)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import example
from tests.workload.conftest import train


def trials_of(run: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    tune_dir = Path(run["steps"]["tune"])
    return json.loads((tune_dir / "trials.json").read_text()), json.loads(
        (tune_dir / "best.json").read_text()
    )


def executor_of(run: dict[str, Any]) -> str:
    return str(json.loads((Path(run["steps"]["tune"]) / "result.json").read_text())["executor"])


def test_grid_search_tries_every_value_and_picks_the_best_inline_and_on_ray_alike(tmp_path: Path) -> None:
    (tmp_path / "auto").mkdir()
    (tmp_path / "ray").mkdir()
    run = train(tmp_path / "auto", "diabetes")
    assert executor_of(run) == "inline"  # 353 train rows of a ridge regression
    trials, best = trials_of(run)
    assert sorted(t["config"]["alpha"] for t in trials) == [0.01, 0.1, 1.0, 10.0]
    assert all(t["folds"] == 3 and not t["stoppedEarly"] for t in trials)  # scheduler: none
    assert best["score"] == max(t["r2"] for t in trials)
    assert best["config"] == max(trials, key=lambda t: t["r2"])["config"]
    document = example("diabetes")
    document["spec"]["train"]["tune"]["executor"] = "ray"
    on_ray = train(tmp_path / "ray", "diabetes", document)
    assert executor_of(on_ray) == "ray"
    ray_trials, ray_best = trials_of(on_ray)
    by_alpha = {t["config"]["alpha"]: t for t in ray_trials}
    for t in trials:  # the same folds of the same seed: the same scores, trial by trial
        assert by_alpha[t["config"]["alpha"]]["r2"] == pytest.approx(t["r2"], abs=1e-9)
        assert by_alpha[t["config"]["alpha"]]["curve"] == pytest.approx(t["curve"], abs=1e-9)
    assert ray_best == best


def test_random_search_with_asha_samples_within_bounds(customers_model: dict[str, Any]) -> None:
    trials, best = trials_of(customers_model)
    assert len(trials) == 6
    for trial in trials:
        config = trial["config"]
        assert 0.01 <= config["learning_rate"] <= 0.3
        assert config["max_depth"] in (2, 3, 4) and 50 <= config["max_iter"] < 200
        assert 1 <= trial["folds"] <= 3
    assert len({t["config"]["learning_rate"] for t in trials}) == 6  # sampled, not repeated
    assert best["mode"] == "max" and best["score"] == max(t["roc_auc"] for t in trials if t["folds"] == 3)

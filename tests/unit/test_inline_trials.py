"""Trials inline: Ray Tune's search algorithms and ASHA driven in one process, and when a tune step
picks that executor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mlpipeline.api.models import TuneSpec
from mlpipeline.steps import search_space
from mlpipeline.steps.inline_trials import Proposals, Report, run_trials, variants
from mlpipeline.steps.tune import INLINE_MAX_ROWS, runs_inline
from ray import tune
from ray.tune.search import BasicVariantGenerator


def spec(algorithm: str, space: dict[str, Any], **extra: Any) -> TuneSpec:
    return TuneSpec.model_validate({"algorithm": algorithm, "searchSpace": space, "metric": "r2", **extra})


def proposals(tune_spec: TuneSpec, seed: int = 7) -> Proposals:
    return Proposals(
        search_space.search_algorithm(tune_spec, seed),
        search_space.param_space(tune_spec),
        search_space.num_samples(tune_spec),
        seed,
        tune_spec.metric,
        tune_spec.resolved_mode,
    )


def test_grid_and_random_propose_what_ray_tune_proposes_with_the_same_seed() -> None:
    space = {"a": tune.uniform(0, 1), "b": tune.grid_search([1, 2]), "c": tune.randint(1, 50)}
    on_ray = BasicVariantGenerator(random_state=7)
    on_ray.add_configurations({"e": {"run": lambda config: None, "config": space, "num_samples": 3}})
    expected = []
    while (created := on_ray.next_trial()) is not None:
        expected.append(created.config)
    assert len(expected) == 6
    assert list(variants(space, 3, 7)) == expected
    assert list(variants(space, 3, 8)) != expected  # the seed decides


def climbing(config: dict[str, Any], report: Report) -> None:
    """A trial whose score after report i is quality * i: its ranking shows from the first report."""
    for step in range(1, 5):
        report({"r2": config["quality"] * step, "fold": step}, None)


def test_asha_stops_trials_below_the_median_of_earlier_ones_at_its_rungs(tmp_path: Path) -> None:
    tune_spec = spec("grid", {"quality": {"grid": [0.9, 0.1, 0.8, 0.05, 0.95]}}, scheduler="asha")
    done = run_trials(
        climbing, proposals(tune_spec), search_space.scheduler(tune_spec, 4), "r2", "max", tmp_path
    )
    by_quality = {t.config["quality"]: t for t in done}
    assert [t.config["quality"] for t in done] == [0.9, 0.1, 0.8, 0.05, 0.95]  # the grid's order
    assert len(by_quality[0.9].results) == 4  # the first: nothing to beat
    assert by_quality[0.1].stopped and len(by_quality[0.1].results) == 1
    assert by_quality[0.05].stopped and len(by_quality[0.05].results) == 1
    assert len(by_quality[0.95].results) == 4
    assert [r["training_iteration"] for r in by_quality[0.95].results] == [1, 2, 3, 4]


def test_without_a_scheduler_every_trial_runs_to_its_end(tmp_path: Path) -> None:
    tune_spec = spec("grid", {"quality": {"grid": [0.9, 0.1]}}, scheduler="none")
    done = run_trials(
        climbing, proposals(tune_spec), search_space.scheduler(tune_spec, 4), "r2", "max", tmp_path
    )
    assert [len(t.results) for t in done] == [4, 4] and not any(t.stopped for t in done)
    assert [t.results[-1]["r2"] for t in done] == pytest.approx([3.6, 0.4])


def test_bayesian_search_learns_from_each_trial_and_a_failing_trial_is_recorded(tmp_path: Path) -> None:
    tune_spec = spec("bayesian", {"quality": {"uniform": [0.0, 1.0]}}, trials=6, scheduler="none")
    proposed = proposals(tune_spec)

    def sometimes_failing(config: dict[str, Any], report: Report) -> None:
        if config["quality"] < 0.2:
            raise ValueError("diverged")
        climbing(config, report)

    done = run_trials(
        sometimes_failing, proposed, search_space.scheduler(tune_spec, 4), "r2", "max", tmp_path
    )
    assert len(done) == 6 and all(0.0 <= t.config["quality"] <= 1.0 for t in done)
    assert len({t.config["quality"] for t in done}) == 6
    for t in done:
        assert (t.error == "ValueError: diverged") == (t.config["quality"] < 0.2)
    study = proposed.searcher._ot_study  # Optuna was told every outcome, failures included
    assert len(study.trials) == 6 and all(t.state.is_finished() for t in study.trials)


def test_a_checkpoint_reported_by_a_trial_is_kept_after_its_folder_is_gone(tmp_path: Path) -> None:
    tune_spec = spec("grid", {"quality": {"grid": [0.5]}}, scheduler="none")

    def saving(config: dict[str, Any], report: Report) -> None:
        folder = tmp_path / "scratch"
        folder.mkdir()
        (folder / "model.joblib").write_text("weights")
        report({"r2": 0.5, "epoch": 1}, str(folder))
        (folder / "model.joblib").unlink()

    [trial] = run_trials(
        saving, proposals(tune_spec), search_space.scheduler(tune_spec, 1), "r2", "max", tmp_path / "kept"
    )
    assert trial.checkpoint is not None and (trial.checkpoint / "model.joblib").read_text() == "weights"


@pytest.mark.parametrize(
    ("executor", "by_epoch", "gpu", "distributed", "rows", "inline"),
    [
        ("auto", False, 0, False, 150, True),  # iris: Ray's start-up would be most of the step
        ("auto", False, 0, False, INLINE_MAX_ROWS + 1, False),  # many rows: trials in parallel pay
        ("auto", True, 0, False, 150, False),  # epochs of a network: long trials
        ("auto", False, 1, False, 150, False),  # GPUs are Ray's to share out
        ("auto", False, 0, True, 150, False),  # train.distributed, or the driver of a RayJob
        ("ray", False, 0, False, 150, False),
        ("inline", True, 0, False, 10**6, True),
    ],
)
def test_which_executor_a_tune_step_picks(
    executor: str, by_epoch: bool, gpu: float, distributed: bool, rows: int, inline: bool
) -> None:
    tune_spec = spec("random", {"quality": {"uniform": [0.0, 1.0]}}, executor=executor)
    assert runs_inline(tune_spec, by_epoch, gpu, distributed, rows) is inline

"""Translation of the declared search space into Ray Tune domains, searchers and schedulers."""

from __future__ import annotations

from mlpipeline.api.models import TuneSpec
from mlpipeline.steps import search_space
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search import BasicVariantGenerator
from ray.tune.search.optuna import OptunaSearch
from ray.tune.search.sample import Categorical, Float, Integer

SPACE = {
    "a": {"choice": [1, 2]},
    "b": {"grid": ["x", "y"]},
    "c": {"uniform": [0.0, 1.0]},
    "d": {"loguniform": [0.001, 1.0]},
    "e": {"randint": [1, 10]},
}


def spec(algorithm: str, space: dict[str, object] | None = None, **extra: object) -> TuneSpec:
    return TuneSpec.model_validate({"algorithm": algorithm, "searchSpace": space or SPACE, **extra})


def test_random_search_domains() -> None:
    space = search_space.param_space(spec("random"))
    assert isinstance(space["a"], Categorical) and space["a"].categories == [1, 2]
    assert space["b"] == tune.grid_search(["x", "y"])
    assert isinstance(space["c"], Float) and (space["c"].lower, space["c"].upper) == (0.0, 1.0)
    assert isinstance(space["d"], Float) and "LogUniform" in type(space["d"].sampler).__name__
    assert isinstance(space["e"], Integer) and (space["e"].lower, space["e"].upper) == (1, 10)


def test_grid_search_enumerates_choices_once() -> None:
    grid = spec("grid", {"a": {"choice": [1, 2, 3]}, "b": {"grid": ["x", "y"]}}, trials=50)
    space = search_space.param_space(grid)
    assert space == {"a": tune.grid_search([1, 2, 3]), "b": tune.grid_search(["x", "y"])}
    assert search_space.num_samples(grid) == 1


def test_bayesian_search_uses_optuna_and_turns_grids_into_choices() -> None:
    bayes = spec("bayesian", trials=12, metric="log_loss")
    space = search_space.param_space(bayes)
    assert isinstance(space["b"], Categorical)
    searcher = search_space.search_algorithm(bayes, seed=1)
    assert isinstance(searcher, OptunaSearch)
    assert searcher.metric == "log_loss" and searcher.mode == "min"
    assert search_space.num_samples(bayes) == 12


def test_random_search_is_seeded_basic_variants() -> None:
    assert isinstance(search_space.search_algorithm(spec("random"), seed=3), BasicVariantGenerator)


def test_schedulers() -> None:
    asha = search_space.scheduler(spec("random", scheduler="asha", folds=5), horizon=5)
    assert isinstance(asha, ASHAScheduler) and asha._max_t == 5
    assert isinstance(search_space.scheduler(spec("random", scheduler="none"), horizon=5), FIFOScheduler)

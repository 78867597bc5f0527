"""Translation of the declared search space, algorithm and scheduler into Ray Tune objects."""

from __future__ import annotations

from typing import Any

from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import BasicVariantGenerator, Searcher

from mlpipeline.api.models import SearchParam, TuneSpec


def to_domain(param: SearchParam, algorithm: str) -> Any:
    if param.grid is not None:
        # Optuna cannot enumerate a grid: for bayesian search a grid is a categorical choice.
        return tune.choice(param.grid) if algorithm == "bayesian" else tune.grid_search(param.grid)
    if param.choice is not None:
        return tune.grid_search(param.choice) if algorithm == "grid" else tune.choice(param.choice)
    if param.uniform is not None:
        return tune.uniform(*param.uniform)
    if param.loguniform is not None:
        return tune.loguniform(*param.loguniform)
    assert param.randint is not None
    return tune.randint(*param.randint)


def param_space(spec: TuneSpec) -> dict[str, Any]:
    return {name: to_domain(p, str(spec.algorithm)) for name, p in spec.search_space.items()}


def num_samples(spec: TuneSpec) -> int:
    """Grid search runs every combination once; the others run ``trials`` samples."""
    return 1 if spec.algorithm == "grid" else spec.trials


def search_algorithm(spec: TuneSpec, seed: int) -> Searcher | BasicVariantGenerator:
    if spec.algorithm == "bayesian":
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        return OptunaSearch(
            metric=spec.metric,
            mode=spec.resolved_mode,
            sampler=optuna.samplers.TPESampler(seed=seed),
        )
    return BasicVariantGenerator(random_state=seed)


def scheduler(spec: TuneSpec, horizon: int) -> TrialScheduler:
    """ASHA over the trial's reports (folds, or epochs of a deep-learning family) up to ``horizon``."""
    if spec.scheduler == "asha":
        return ASHAScheduler(
            time_attr="training_iteration",
            max_t=horizon,
            grace_period=1,
            reduction_factor=2,
        )
    return FIFOScheduler()  # type: ignore[no-untyped-call]

"""The model registry: built-in estimators by task, and bring-your-own factories."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

_BUILTIN: dict[str, dict[str, str]] = {
    "classification": {
        "logistic_regression": "sklearn.linear_model:LogisticRegression",
        "random_forest": "sklearn.ensemble:RandomForestClassifier",
        "gradient_boosting": "sklearn.ensemble:HistGradientBoostingClassifier",
    },
    "regression": {
        "ridge": "sklearn.linear_model:Ridge",
        "random_forest": "sklearn.ensemble:RandomForestRegressor",
        "gradient_boosting": "sklearn.ensemble:HistGradientBoostingRegressor",
    },
}
_DEFAULTS: dict[str, dict[str, Any]] = {
    "logistic_regression": {"max_iter": 1000},
    "random_forest": {"n_jobs": 1},
}


def builtin_models(task: str) -> list[str]:
    return list(_BUILTIN[task])


def load_object(ref: str) -> Any:
    """Imports ``package.module:attribute``."""
    module_name, _, attr = ref.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot load {ref!r}: {exc}") from exc


def estimator_factory(task: str, model: str) -> Callable[..., Any]:
    """A callable building an unfitted estimator from hyperparameters."""
    if ":" in model:
        factory = load_object(model)
        if not callable(factory):
            raise ValueError(f"{model!r} is not callable")
        return factory  # type: ignore[no-any-return]
    cls = load_object(_BUILTIN[task][model])
    defaults = _DEFAULTS.get(model, {})

    def build(**params: Any) -> Any:
        accepted = cls().get_params()
        extra = {k: v for k, v in defaults.items() if k in accepted}
        return cls(**{**extra, **params})

    return build


def build_estimator(task: str, model: str, params: dict[str, Any], seed: int) -> Any:
    estimator = estimator_factory(task, model)(**params)
    if hasattr(estimator, "get_params") and "random_state" in estimator.get_params():
        estimator.set_params(random_state=seed)
    return estimator

"""The model registry: built-in estimators by task, and bring-your-own factories."""

from __future__ import annotations

import glob
import importlib
import os
from collections.abc import Callable
from typing import Any

_BUILTIN: dict[str, dict[str, str]] = {
    "classification": {
        "logistic_regression": "sklearn.linear_model:LogisticRegression",
        "random_forest": "sklearn.ensemble:RandomForestClassifier",
        "gradient_boosting": "sklearn.ensemble:HistGradientBoostingClassifier",
        "xgboost": "xgboost:XGBClassifier",
        "torch_mlp": "mlpipeline.deep.estimators:TorchMLPClassifier",
        "torch_cnn": "mlpipeline.deep.estimators:TorchCNNClassifier",
    },
    "regression": {
        "ridge": "sklearn.linear_model:Ridge",
        "random_forest": "sklearn.ensemble:RandomForestRegressor",
        "gradient_boosting": "sklearn.ensemble:HistGradientBoostingRegressor",
        "xgboost": "xgboost:XGBRegressor",
        "torch_mlp": "mlpipeline.deep.estimators:TorchMLPRegressor",
    },
}
_DEFAULTS: dict[str, dict[str, Any]] = {
    "logistic_regression": {"max_iter": 1000},
    "random_forest": {"n_jobs": 1},
    "xgboost": {"n_jobs": 1, "tree_method": "hist"},
}
DEEP_EXTRA = {"torch", "xgboost"}
"""Top-level packages of the ``deep`` extra: a missing one is an install problem, said as such."""
EPOCHS = 20
"""Epochs of an epoch-wise family when neither the search space nor the model sets them."""


def builtin_models(task: str) -> list[str]:
    return list(_BUILTIN[task])


def load_object(ref: str) -> Any:
    """Imports ``package.module:attribute``."""
    module_name, _, attr = ref.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except ModuleNotFoundError as exc:
        if exc.name in DEEP_EXTRA:
            raise ValueError(
                f"{ref!r} needs {exc.name}, which is not installed: install the deep-learning extra "
                "(pip install 'mlpipeline-operator[deep]') or use an image that has it"
            ) from exc
        raise ValueError(f"cannot load {ref!r}: {exc}") from exc
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot load {ref!r}: {exc}") from exc


def model_module(task: str, model: str) -> str:
    """The module that defines a model (``package.module:attribute`` or a built-in name)."""
    return (model if ":" in model else _BUILTIN[task].get(model, "")).partition(":")[0]


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


def build_estimator(
    task: str, model: str, params: dict[str, Any], seed: int, context: dict[str, Any] | None = None
) -> Any:
    """The estimator for ``params``, given what the data and the trial decide when the model takes
    it (``context``: ``input_shape`` of images, ``device`` cuda or cpu)."""
    estimator = estimator_factory(task, model)(**params)
    accepted = estimator.get_params() if hasattr(estimator, "get_params") else {}
    if "random_state" in accepted:
        estimator.set_params(random_state=seed)
    for name, value in (context or {}).items():
        if name in accepted and name not in params and value is not None:
            estimator.set_params(**{name: value})
    return estimator


def trains_by_epoch(estimator: Any) -> bool:
    """Epoch-wise families report after each epoch in tuning instead of after each fold."""
    return hasattr(estimator, "epochs_fit")


def visible_device() -> str:
    """cuda when this process sees an NVIDIA GPU (the device plugin mounts /dev/nvidia<N>; Ray
    empties CUDA_VISIBLE_DEVICES for a trial without one), else cpu."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return "cpu"
    return "cuda" if glob.glob("/dev/nvidia[0-9]*") else "cpu"


def max_epochs(estimator: Any, space: dict[str, Any]) -> int:
    """The most epochs any trial of the search space trains: the scheduler's horizon."""
    param = space.get("epochs")
    if param is None:
        return int(estimator.get_params().get("epochs") or EPOCHS)
    values = param.grid or param.choice or ([param.randint[1] - 1] if param.randint else None)
    if values is None:
        values = [(param.uniform or param.loguniform)[1]]
    return max(int(v) for v in values)

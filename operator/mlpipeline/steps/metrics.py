"""Scores of a fitted estimator, or of predictions already made, by metric name."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import metrics as skm

PROBABILITY_METRICS = ("roc_auc", "log_loss")


def score(metric: str, estimator: Any, features: Any, target: np.ndarray) -> float:
    if metric in PROBABILITY_METRICS:
        proba = estimator.predict_proba(features)
        labels = list(getattr(estimator, "classes_", range(proba.shape[1])))
        return score_probabilities(metric, proba, labels, target)
    return score_predictions(metric, estimator.predict(features), target)


def score_probabilities(metric: str, proba: np.ndarray, labels: list[Any], target: np.ndarray) -> float:
    """roc_auc or log_loss of class probabilities, one column per class of ``labels``."""
    if metric == "log_loss":
        return float(skm.log_loss(target, proba, labels=labels))
    if metric != "roc_auc":
        raise ValueError(f"{metric!r} is not scored on probabilities")
    if proba.shape[1] == 2:
        return float(skm.roc_auc_score(target, proba[:, 1]))
    return float(skm.roc_auc_score(target, proba, multi_class="ovr", labels=labels))


def score_predictions(metric: str, predicted: np.ndarray, target: np.ndarray) -> float:
    if metric == "accuracy":
        return float(skm.accuracy_score(target, predicted))
    if metric == "f1_macro":
        return float(skm.f1_score(target, predicted, average="macro"))
    if metric == "r2":
        return float(skm.r2_score(target, predicted))
    if metric == "rmse":
        return float(np.sqrt(skm.mean_squared_error(target, predicted)))
    if metric == "mae":
        return float(skm.mean_absolute_error(target, predicted))
    raise ValueError(f"unknown metric {metric!r}")

"""Scores of a fitted estimator, by metric name."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import metrics as skm


def score(metric: str, estimator: Any, features: Any, target: np.ndarray) -> float:
    if metric in ("roc_auc", "log_loss"):
        proba = estimator.predict_proba(features)
        labels = list(getattr(estimator, "classes_", range(proba.shape[1])))
        if metric == "log_loss":
            return float(skm.log_loss(target, proba, labels=labels))
        if proba.shape[1] == 2:
            return float(skm.roc_auc_score(target, proba[:, 1]))
        return float(skm.roc_auc_score(target, proba, multi_class="ovr", labels=labels))
    predicted = estimator.predict(features)
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

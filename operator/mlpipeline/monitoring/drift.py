"""Drift of served data against the training profile: per feature and for the predictions, the
Jensen-Shannon distance (scipy, base 2, so 0 = the same distribution and 1 = disjoint) between the
training distribution and the served one, both over the profile's buckets (quantile bins of a
numeric column, the frequent categories of a categorical one). A distance, unlike a KS p-value,
does not flag every tiny difference once samples are large; below ``min_samples`` the answer is
"not enough data" (None), never "drift"."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.spatial.distance import jensenshannon

from mlpipeline.monitoring.drift_metrics import PREDICTION
from mlpipeline.monitoring.profile import OTHER, bin_fractions


def buckets(column_profile: dict[str, Any], values: Sequence[Any]) -> tuple[list[float], list[float]] | None:
    """The training and the served shares of each of the profile's buckets, or None when the
    profile has no buckets (an empty column) or there are no values."""
    present = [v for v in values if v is not None and v == v]  # NaN != NaN
    if not present:
        return None
    if column_profile["type"] == "numeric":
        edges = np.asarray(column_profile.get("edges") or [])
        if len(edges) < 2:
            return None
        served = bin_fractions(np.asarray(present, dtype=float), edges)
        return list(column_profile["fractions"]), served
    known: dict[str, float] = column_profile.get("frequencies") or {}
    if not known:
        return None
    counts = dict.fromkeys(known, 0)
    counts.setdefault(OTHER, 0)
    for value in present:
        key = str(value)
        counts[key if key in known else OTHER] += 1
    names = list(counts)
    return [known.get(n, 0.0) for n in names], [counts[n] / len(present) for n in names]


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    value: float | None  # None: not enough data
    training: dict[str, float]  # bucket -> share, for the report
    served: dict[str, float]


@dataclass(frozen=True)
class DriftReport:
    samples: int
    min_samples: int
    features: list[FeatureDrift] = field(default_factory=list)

    @property
    def enough(self) -> bool:
        return self.samples >= self.min_samples


def bucket_names(column_profile: dict[str, Any], count: int) -> list[str]:
    if column_profile["type"] == "numeric":
        edges = column_profile.get("edges") or []
        return [f"{edges[i]:.3g} to {edges[i + 1]:.3g}" for i in range(len(edges) - 1)]
    names = list(column_profile.get("frequencies") or {})
    return [*names, OTHER][:count]


def measure(
    profile: dict[str, Any], records: Sequence[dict[str, Any]], predictions: Sequence[Any], min_samples: int
) -> DriftReport:
    """Drift of every profiled feature and of the predictions (against the training labels) over
    ``records`` and ``predictions``, the served sample."""
    columns: dict[str, tuple[dict[str, Any], list[Any]]] = {
        name: (column, [r.get(name) for r in records]) for name, column in profile["columns"].items()
    }
    if profile.get("label") and predictions:
        columns[PREDICTION] = (profile["label"], list(predictions))
    enough = len(records) >= min_samples
    features = []
    for name, (column, values) in columns.items():
        shares = buckets(column, values)
        if shares is None:
            features.append(FeatureDrift(name, None, {}, {}))
            continue
        expected, served = shares
        labels = bucket_names(column, len(expected))
        value = float(jensenshannon(expected, served, base=2)) if enough else None
        training, now = dict(zip(labels, expected, strict=True)), dict(zip(labels, served, strict=True))
        features.append(FeatureDrift(name, value, training, now))
    return DriftReport(len(records), min_samples, features)

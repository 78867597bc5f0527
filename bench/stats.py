"""Repeated measurements: a nearest-rank percentile, the median, mean and spread (min, max) of each
figure across runs, and ratios of medians."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank ``q`` quantile (0.5, 0.99) of ``values``; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def spread(values: Sequence[float | None]) -> dict[str, float] | None:
    """Median, mean, min and max of one figure across runs (runs without it left out)."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    return {
        "median": round(statistics.median(present), 4),
        "mean": round(statistics.fmean(present), 4),
        "min": min(present),
        "max": max(present),
    }


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def summarise(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One dict for several runs' dicts of the same shape: each number becomes its spread, nested
    dicts are summarised alike, anything else is kept when every run agrees, else listed."""
    summary: dict[str, Any] = {}
    for key in runs[0]:
        values = [run.get(key) for run in runs]
        if all(v is None or _number(v) for v in values):
            summary[key] = spread(values)
        elif all(isinstance(v, Mapping) for v in values):
            summary[key] = summarise([v for v in values if isinstance(v, Mapping)])
        else:
            summary[key] = values[0] if all(v == values[0] for v in values) else values
    return summary


def ratio(ours: Mapping[str, float] | None, baseline: Mapping[str, float] | None) -> float | None:
    """Ratio of the medians of two spreads; None when either is missing or the baseline's is 0."""
    if not ours or not baseline or not baseline["median"]:
        return None
    return round(ours["median"] / baseline["median"], 3)


def mean_spread(values: Sequence[float | None]) -> dict[str, float] | None:
    """Mean, sample standard deviation, min and max of one figure across runs (runs without it left
    out)."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    sd = statistics.stdev(present) if len(present) > 1 else 0.0
    return {
        "mean": round(statistics.fmean(present), 4),
        "sd": round(sd, 4),
        "min": round(min(present), 4),
        "max": round(max(present), 4),
    }


def paired_difference(ours: Sequence[float], baseline: Sequence[float]) -> dict[str, Any]:
    """The mean of ``ours - baseline`` over paired runs with its 95 % confidence interval (Student's
    t): an interval that holds 0 is a difference the runs cannot tell from noise."""
    from scipy.stats import t

    differences = [a - b for a, b in zip(ours, baseline, strict=True)]
    mean = statistics.fmean(differences)
    if len(differences) < 2:
        return {"mean": round(mean, 4), "ci95": None}
    half = float(t.ppf(0.975, len(differences) - 1)) * statistics.stdev(differences) / len(differences) ** 0.5
    return {"mean": round(mean, 4), "ci95": [round(mean - half, 4), round(mean + half, 4)]}

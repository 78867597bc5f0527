"""Distances between two distributions over the same buckets, in plain Python so the control
plane can compare prediction counts without loading numpy."""

from __future__ import annotations

import math
from collections.abc import Mapping
from statistics import NormalDist


def psi(expected: dict[str, float], actual: dict[str, float], floor: float = 1e-4) -> float:
    """Population stability index of two distributions over the same buckets."""
    total = 0.0
    for key in set(expected) | set(actual):
        e = max(expected.get(key, 0.0), floor)
        a = max(actual.get(key, 0.0), floor)
        total += (a - e) * math.log(a / e)
    return total


def distribution(counts: Mapping[str, float]) -> dict[str, float]:
    total = sum(counts.values())
    return {k: v / total for k, v in counts.items()} if total > 0 else {}


def prediction_shift(stable: Mapping[str, float], canary: Mapping[str, float]) -> float | None:
    """The prediction shift of a canary: the PSI of its predicted classes against the stable
    version's, from counts per class; None when either counted nothing. The canary measures it
    live, evaluate offline on held-out rows: one definition for both."""
    if not any(stable.values()) or not any(canary.values()):
        return None
    return psi(distribution(stable), distribution(canary))


def chance_shift(classes: int, stable: float, canary: float, confidence: float = 0.99) -> float:
    """The shift that chance alone exceeds with probability 1 - ``confidence`` when ``stable`` and
    ``canary`` predictions are drawn from one distribution over ``classes`` classes: the PSI of two
    samples is then about chi-square(classes - 1) x (1/stable + 1/canary) (Wilson-Hilferty's
    approximation of the quantile). A few requests cannot show a small shift; many can."""
    if classes < 2 or stable <= 0 or canary <= 0:
        return 0.0
    df = classes - 1
    z = NormalDist().inv_cdf(confidence)
    quantile = df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3
    return quantile * (1 / stable + 1 / canary)

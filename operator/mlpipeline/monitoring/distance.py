"""Distances between two distributions over the same buckets, in plain Python so the control
plane can compare prediction counts without loading numpy."""

from __future__ import annotations

import math


def psi(expected: dict[str, float], actual: dict[str, float], floor: float = 1e-4) -> float:
    """Population stability index of two distributions over the same buckets."""
    total = 0.0
    for key in set(expected) | set(actual):
        e = max(expected.get(key, 0.0), floor)
        a = max(actual.get(key, 0.0), floor)
        total += (a - e) * math.log(a / e)
    return total

"""Data profiles and the population stability index used for drift and prediction shift."""

from __future__ import annotations

import numpy as np
import pandas as pd
from mlpipeline.monitoring.profile import column_psi, profile_frame, psi


def test_profile_numeric_and_categorical() -> None:
    frame = pd.DataFrame({"x": np.arange(100, dtype=float), "c": ["a"] * 70 + ["b"] * 29 + [None]})
    profile = profile_frame(frame, {"x": "numeric", "c": "categorical"})
    x, c = profile["columns"]["x"], profile["columns"]["c"]
    assert profile["rows"] == 100 and x["min"] == 0 and x["max"] == 99
    assert abs(sum(x["fractions"]) - 1) < 1e-9 and len(x["fractions"]) == 10
    assert c["nullFraction"] == 0.01 and abs(c["frequencies"]["a"] - 70 / 99) < 1e-9


def test_psi_is_zero_for_the_same_distribution_and_grows_with_shift() -> None:
    rng = np.random.default_rng(0)
    reference = pd.Series(rng.normal(0, 1, 5000))
    column = profile_frame(pd.DataFrame({"x": reference}), {"x": "numeric"})["columns"]["x"]
    same = column_psi(column, pd.Series(rng.normal(0, 1, 5000)))
    shifted = column_psi(column, pd.Series(rng.normal(1, 1, 5000)))
    assert same < 0.02 < 0.2 < shifted


def test_psi_of_categories() -> None:
    assert psi({"a": 0.5, "b": 0.5}, {"a": 0.5, "b": 0.5}) == 0
    assert psi({"a": 0.5, "b": 0.5}, {"a": 0.9, "b": 0.1}) > 0.5

"""Per-column data profiles, kept with every model, and the population stability index between
a profile and new data — the statistics drift detection and the canary's prediction check use."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlpipeline.monitoring.distance import psi

BINS = 10
TOP_CATEGORIES = 20
OTHER = "__other__"


def profile_column(series: pd.Series, kind: str) -> dict[str, Any]:
    values = series.dropna()
    out: dict[str, Any] = {
        "type": kind,
        "count": int(series.size),
        "nullFraction": float(series.isna().mean()) if series.size else 0.0,
    }
    if kind == "image":
        return out  # no distribution of references: image drift is left to the model's outputs
    if kind == "numeric":
        numbers = values.astype(float).to_numpy()
        if numbers.size:
            edges = np.unique(np.quantile(numbers, np.linspace(0, 1, BINS + 1)))
            out.update(
                mean=float(numbers.mean()),
                std=float(numbers.std()),
                min=float(numbers.min()),
                max=float(numbers.max()),
                edges=[float(e) for e in edges],
                fractions=bin_fractions(numbers, edges),
            )
    else:
        counts = values.astype(str).value_counts(normalize=True)
        top = counts.head(TOP_CATEGORIES)
        frequencies = {str(k): float(v) for k, v in top.items()}
        if len(counts) > TOP_CATEGORIES:
            frequencies[OTHER] = float(counts.iloc[TOP_CATEGORIES:].sum())
        out["frequencies"] = frequencies
    return out


def bin_fractions(numbers: np.ndarray, edges: np.ndarray) -> list[float]:
    if len(edges) < 2:
        return [1.0]
    inner = edges[1:-1]
    counts = np.bincount(np.searchsorted(inner, numbers, side="right"), minlength=len(edges) - 1)
    return [float(c) for c in counts / max(numbers.size, 1)]


def profile_frame(
    frame: pd.DataFrame, kinds: dict[str, str], label: str | None = None, label_kind: str = "categorical"
) -> dict[str, Any]:
    """Every feature's profile and, with ``label``, the label's (the reference of prediction drift)."""
    profile: dict[str, Any] = {
        "rows": len(frame),
        "columns": {name: profile_column(frame[name], kind) for name, kind in kinds.items()},
    }
    if label is not None:
        profile["label"] = profile_column(frame[label], label_kind)
    return profile


def column_psi(column_profile: dict[str, Any], values: pd.Series) -> float:
    """PSI of new values of a column against its profile."""
    if column_profile["type"] == "numeric":
        edges = np.asarray(column_profile.get("edges", []))
        numbers = values.dropna().astype(float).to_numpy()
        if len(edges) < 2 or not numbers.size:
            return 0.0
        expected = dict(enumerate(column_profile["fractions"]))
        actual = dict(enumerate(bin_fractions(numbers, edges)))
        return psi({str(k): v for k, v in expected.items()}, {str(k): v for k, v in actual.items()})
    known = column_profile.get("frequencies")
    if not known:
        return 0.0
    observed = values.dropna().astype(str)
    mapped = observed.where(observed.isin(list(known)), OTHER)
    actual_counts = mapped.value_counts(normalize=True)
    return psi(known, {str(k): float(v) for k, v in actual_counts.items()})

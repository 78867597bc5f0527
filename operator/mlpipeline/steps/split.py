"""Which rows may score a model. A labeling round's partition says where each label came from
(column ``mlp_provenance``: ``auto`` the model's own label, ``human`` or ``audit`` a person's); a
row without it comes from the original data. A model's own labels may train a model but never score
one: the held-out split of ingest (the gate, status.model.score, the report) and the validation
folds of tune are drawn from the other rows only, and every automatic row goes to the training side.
Pure."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import numpy as np
import pandas as pd

from mlpipeline.labeling.select import AUDIT, AUTO, HUMAN

PROVENANCE = "mlp_provenance"
NEWEST = "newest"  # the split of the newest partition's rows ingest writes when it read several
"""The column of a labeling round's partition that says who labeled each row."""


class Splitter(Protocol):
    """A scikit-learn cross-validator: KFold, StratifiedKFold, ShuffleSplit, StratifiedShuffleSplit."""

    def split(self, X: Any, y: Any = None) -> Iterable[tuple[np.ndarray, np.ndarray]]: ...


def trusted_rows(frame: pd.DataFrame) -> np.ndarray:
    """Per row of ``frame``: True where its label may score a model (a person's label, or the
    original data's), False where the model produced it. ValueError on a provenance it does not know."""
    if PROVENANCE not in frame.columns:
        return np.ones(len(frame), dtype=bool)
    values = frame[PROVENANCE].astype(object).where(frame[PROVENANCE].notna(), "").astype(str).str.strip()
    unknown = sorted(set(values) - {AUTO, HUMAN, AUDIT, ""})
    if unknown:
        raise ValueError(
            f"column {PROVENANCE!r} holds {', '.join(map(repr, unknown[:5]))}; "
            f"known: {AUTO!r}, {HUMAN!r}, {AUDIT!r} or empty (the original data)"
        )
    return np.asarray(values != AUTO, dtype=bool)


def scored_splits(
    splitter: Splitter, target: Any, trusted: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The splits of ``splitter`` drawn from the trusted rows only, as positions in all the rows:
    (rows to fit: the split's trusted training rows, then every automatic row; rows to score:
    trusted rows only). Without automatic rows, exactly the splitter's own splits of all the rows.
    ValueError (from the splitter) when the trusted rows cannot be split so."""
    trusted = np.asarray(trusted, dtype=bool)
    scored = np.flatnonzero(trusted)
    automatic = np.flatnonzero(~trusted)
    labels = np.asarray(target)[scored]
    return [
        (np.concatenate([scored[fit], automatic]), scored[held])
        for fit, held in splitter.split(np.zeros((len(scored), 1)), labels)
    ]

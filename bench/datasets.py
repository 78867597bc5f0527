"""Public labeled data sets that ship inside Python packages (nothing is downloaded), as a feature
frame and a label column of strings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn import datasets


@dataclass(frozen=True)
class LabeledData:
    description: str
    load: Callable[[], tuple[pd.DataFrame, pd.Series]]
    seed_rows: int  # the small labeled seed a first model is trained on


def _sklearn(loader: Callable[..., object]) -> Callable[[], tuple[pd.DataFrame, pd.Series]]:
    def load() -> tuple[pd.DataFrame, pd.Series]:
        bunch = loader(as_frame=True)
        frame = bunch.data.copy()  # type: ignore[attr-defined]
        return frame, bunch.target.astype(str)  # type: ignore[attr-defined]

    return load


def _affairs() -> tuple[pd.DataFrame, pd.Series]:
    try:
        from statsmodels.datasets import fair
    except ImportError:
        raise SystemExit(
            "the affairs data set ships with statsmodels: make bench-labeling installs it"
        ) from None
    frame = fair.load_pandas().data
    label = pd.Series(np.where(frame["affairs"] > 0, "yes", "no"), index=frame.index)
    return frame.drop(columns=["affairs"]), label


DATASETS = {
    "breast_cancer": LabeledData(
        "scikit-learn's Wisconsin breast cancer: 569 rows, 30 numeric features, binary",
        _sklearn(datasets.load_breast_cancer),
        20,
    ),
    "wine": LabeledData(
        "scikit-learn's wine: 178 rows, 13 numeric features, 3 classes", _sklearn(datasets.load_wine), 12
    ),
    "digits": LabeledData(
        "scikit-learn's 8x8 digit images: 1,797 rows, 64 pixel features, 10 classes",
        _sklearn(datasets.load_digits),
        40,
    ),
    "affairs": LabeledData(
        "statsmodels' Fair (1978) affairs survey: 6,366 rows, 8 features, binary (any affair), noisy",
        _affairs,
        20,
    ),
}

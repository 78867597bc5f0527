"""Preprocessing is fitted on the train split only and copes with what serving will see."""

from __future__ import annotations

import numpy as np
import pandas as pd
from mlpipeline.api.models import PreprocessSpec
from mlpipeline.steps.preprocess import as_object_categories, build_preprocessor

FEATURES = {"x": "numeric", "color": "categorical"}


def fitted(spec: dict[str, object] | None = None):  # type: ignore[no-untyped-def]
    train = pd.DataFrame({"x": [1.0, 2.0, 3.0, np.nan], "color": ["red", "blue", "red", None]})
    transformer = build_preprocessor(PreprocessSpec.model_validate(spec or {}), FEATURES)
    transformer.fit(as_object_categories(train, FEATURES))
    return transformer


def test_statistics_come_from_the_train_split_only() -> None:
    transformer = fitted()
    scaler = transformer.named_transformers_["numeric"].named_steps["scale"]
    assert scaler.mean_[0] == np.mean([1.0, 2.0, 3.0, 2.0])  # median-imputed train values


def test_missing_values_and_unseen_categories() -> None:
    transformer = fitted()
    rows = pd.DataFrame({"x": [np.nan, 10.0], "color": ["green", None]})
    out = transformer.transform(as_object_categories(rows, FEATURES))
    assert not np.isnan(out).any()
    assert out[0, 1:].tolist() == [0.0, 0.0]  # unseen "green": all one-hot columns zero
    assert out[1, 1:].tolist() == [0.0, 1.0]  # missing color imputed to the most frequent, red


def test_none_and_nan_are_both_missing() -> None:
    transformer = fitted()
    with_none = pd.DataFrame({"x": [1.0, 2.0], "color": [None, "blue"]})
    with_nan = pd.DataFrame({"x": [1.0, 2.0], "color": [np.nan, "blue"]})
    one = transformer.transform(as_object_categories(with_none, FEATURES))
    two = transformer.transform(as_object_categories(with_nan, FEATURES))
    assert one.tolist() == two.tolist() and one[0, 1:].tolist() == [0.0, 1.0]  # imputed to red


def test_ordinal_encoding_marks_unknown_as_minus_one() -> None:
    transformer = fitted({"categorical": {"encode": "ordinal"}, "numeric": {"scale": "none"}})
    out = transformer.transform(
        as_object_categories(pd.DataFrame({"x": [1.0], "color": ["green"]}), FEATURES)
    )
    assert out.tolist() == [[1.0, -1.0]]


def test_a_missing_column_is_treated_as_missing_values() -> None:
    transformer = fitted()
    out = transformer.transform(as_object_categories(pd.DataFrame({"color": ["blue"]}), FEATURES))
    assert out.shape == (1, 3) and not np.isnan(out).any()

"""Preprocess: imputation, scaling and encoding fitted on the train split only, persisted so that
serving applies exactly the same transform."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, OrdinalEncoder, StandardScaler

from mlpipeline.api.models import PreprocessSpec
from mlpipeline.steps import artifacts
from mlpipeline.steps.images import ImageTransform

PREPROCESSOR = "preprocessor.joblib"


def build_preprocessor(spec: PreprocessSpec, features: dict[str, str]) -> ColumnTransformer:
    numeric = [c for c, k in features.items() if k == "numeric"]
    categorical = [c for c, k in features.items() if k == "categorical"]
    pictures = [c for c, k in features.items() if k == "image"]
    num_steps: list[tuple[str, Any]] = []
    if spec.numeric.impute != "none":
        num_steps.append(("impute", SimpleImputer(strategy=str(spec.numeric.impute))))
    if spec.numeric.scale == "standard":
        num_steps.append(("scale", StandardScaler()))
    elif spec.numeric.scale == "minmax":
        num_steps.append(("scale", MinMaxScaler()))
    cat_steps: list[tuple[str, Any]] = []
    if spec.categorical.impute != "none":
        cat_steps.append(
            ("impute", SimpleImputer(strategy=str(spec.categorical.impute), fill_value="__missing__"))
        )
    if spec.categorical.encode == "onehot":
        cat_steps.append(("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False)))
    else:
        cat_steps.append(("encode", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)))
    transformers: list[tuple[str, Any, Any]] = []
    if numeric:
        transformers.append(("numeric", Pipeline(num_steps) if num_steps else "passthrough", numeric))
    if categorical:
        transformers.append(("categorical", Pipeline(cat_steps), categorical))
    size = (spec.image.size[0], spec.image.size[1])
    for column in pictures:  # a transformer per image column: each reads one column of references
        transformers.append((f"image:{column}", ImageTransform(size, spec.image.channels), column))
    return ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0)


def as_object_categories(frame: Any, features: dict[str, str]) -> Any:
    """Categorical columns as strings with every kind of missing value (None, NaN) as NaN, which is
    what the imputers recognise, so training and serving agree whatever JSON or pandas produced."""
    frame = frame.copy()
    for column, kind in features.items():
        if column not in frame.columns:
            frame[column] = np.nan
        if kind == "categorical":
            values = frame[column]
            frame[column] = values.astype(str).where(values.notna(), np.nan).astype(object)
    return frame[list(features)]


def run(spec: PreprocessSpec, data_uri: str, out: str) -> dict[str, Any]:
    schema = artifacts.read_json(artifacts.join(data_uri, "schema.json"))
    train = artifacts.read_table(artifacts.join(data_uri, "train.parquet"))
    features = schema["features"]
    transformer = build_preprocessor(spec, features)
    transformed = transformer.fit_transform(as_object_categories(train, features))
    artifacts.write_object(artifacts.join(out, PREPROCESSOR), transformer)
    return {"summary": f"{len(features)} columns -> {transformed.shape[1]} features"}

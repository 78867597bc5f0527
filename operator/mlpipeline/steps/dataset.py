"""The matrices steps train and score on: a split, transformed by the fitted preprocessor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlpipeline.steps import artifacts
from mlpipeline.steps.preprocess import PREPROCESSOR, as_object_categories
from mlpipeline.steps.split import trusted_rows


@dataclass
class Dataset:
    schema: dict[str, Any]
    preprocessor: Any

    @classmethod
    def load(cls, data_uri: str, preprocess_uri: str) -> Dataset:
        return cls(
            schema=artifacts.read_json(artifacts.join(data_uri, "schema.json")),
            preprocessor=artifacts.read_object(artifacts.join(preprocess_uri, PREPROCESSOR)),
        )

    def target(self, values: Any) -> np.ndarray:
        if self.schema["task"] != "classification":
            return np.asarray(values, dtype=float)
        index = {str(c): i for i, c in enumerate(self.schema["classes"])}
        return np.asarray([index[str(v)] for v in values], dtype=int)

    def split(self, data_uri: str, name: str) -> tuple[np.ndarray, np.ndarray]:
        features, target, _ = self.rows(data_uri, name)
        return features, target

    @staticmethod
    def frame(data_uri: str, name: str) -> pd.DataFrame:
        """A split as ingest wrote it: features, label and provenance."""
        return artifacts.read_table(artifacts.join(data_uri, f"{name}.parquet"))

    def rows(self, data_uri: str, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A split's features and target, and per row whether its label may score a model (False:
        the model labeled it itself in a labeling round; see steps/split.py)."""
        frame = self.frame(data_uri, name)
        features = self.preprocessor.transform(as_object_categories(frame, self.schema["features"]))
        trusted = trusted_rows(frame)
        return np.asarray(features, dtype=float), self.target(frame[self.schema["label"]]), trusted

"""What a packaged model is: estimator + fitted preprocessing + label encoding + metadata, with the
one prediction function both the BentoML service and the tests call. Records are read as
serving/validation.py describes: a value that cannot be read raises UnreadableRecords."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlpipeline import store
from mlpipeline.protocol import MODEL_EXPORT
from mlpipeline.serving.validation import clean_records
from mlpipeline.steps.preprocess import as_object_categories


@dataclass
class ModelBundle:
    estimator: Any
    preprocessor: Any
    schema: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    # a key per training row (steps/baseline.row_keys): which held-out rows of a later run this
    # model has seen; None in models packaged before it was kept
    trained_on: np.ndarray | None = None

    @property
    def classes(self) -> list[Any]:
        return list(self.schema.get("classes", []))

    @property
    def features(self) -> dict[str, str]:
        return dict(self.schema["features"])

    def transform(self, rows: list[dict[str, Any]]) -> np.ndarray:
        """Features of records already read by clean_records."""
        frame = pd.DataFrame.from_records(rows) if rows else pd.DataFrame()
        for column, kind in self.features.items():
            if kind == "numeric" and column in frame.columns:
                frame[column] = frame[column].astype(float)
        return np.asarray(
            self.preprocessor.transform(as_object_categories(frame, self.features)), dtype=float
        )

    def predict(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self.predict_rows(clean_records(self.features, records))

    def predict_rows(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One answer per record already read (the service reads each request before batching)."""
        if not rows:
            return []
        features = self.transform(rows)
        if self.schema["task"] != "classification":
            return [{"prediction": float(v)} for v in self.estimator.predict(features)]
        classes = self.classes
        if hasattr(self.estimator, "predict_proba"):
            proba = self.estimator.predict_proba(features)
            columns = [classes[int(i)] for i in getattr(self.estimator, "classes_", range(len(classes)))]
            answers = []
            for row in proba:
                probabilities = {str(c): float(p) for c, p in zip(columns, row, strict=True)}
                answers.append({"label": columns[int(np.argmax(row))], "probabilities": probabilities})
            return answers
        return [{"label": classes[int(i)], "probabilities": {}} for i in self.estimator.predict(features)]


def load_bundle(tag: str, uri: str | None = None) -> tuple[str, ModelBundle]:
    """A packaged model by its BentoML tag, imported from its export at ``uri`` when the local
    model store lacks it (a fresh pod); returns its version and bundle."""
    import bentoml
    import joblib

    from mlpipeline.steps.package import BUNDLE

    try:
        model = bentoml.models.get(tag)
    except bentoml.exceptions.NotFound:
        if not uri:
            raise
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / MODEL_EXPORT
            local.write_bytes(store.read_bytes(uri))
            model = bentoml.models.import_model(str(local))
    return model.tag.version or "", joblib.load(model.path_of(BUNDLE))

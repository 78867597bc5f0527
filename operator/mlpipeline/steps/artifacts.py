"""Tables and Python objects in the artifact store (pandas, joblib); bytes, JSON and fingerprints
come from mlpipeline.store."""

from __future__ import annotations

import io
from typing import Any

import joblib
import pandas as pd

from mlpipeline.store import StepError, fingerprint, join, read_bytes, read_json, write_bytes, write_json

__all__ = [
    "StepError",
    "fingerprint",
    "join",
    "read_bytes",
    "read_json",
    "read_object",
    "read_table",
    "write_bytes",
    "write_json",
    "write_object",
    "write_table",
]


def read_object(uri: str) -> Any:
    return joblib.load(io.BytesIO(read_bytes(uri)))


def write_object(uri: str, value: Any) -> None:
    buffer = io.BytesIO()
    joblib.dump(value, buffer)
    write_bytes(uri, buffer.getvalue())


def read_table(uri: str) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(read_bytes(uri)))


def write_table(uri: str, frame: pd.DataFrame) -> None:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    write_bytes(uri, buffer.getvalue())

"""Ingest: read the data, validate it against the spec, write a train/test split and a profile."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit

from mlpipeline import store
from mlpipeline.api.models import ColumnType, MLPipelineSpec
from mlpipeline.engine.plan import with_data
from mlpipeline.monitoring.profile import profile_frame
from mlpipeline.protocol import is_pattern, keyed
from mlpipeline.steps import artifacts, images
from mlpipeline.steps.artifacts import StepError
from mlpipeline.steps.split import NEWEST, PROVENANCE, scored_splits, trusted_rows


def data_format(uri: str, declared: str | None) -> str:
    if declared:
        return declared
    lowered = uri.lower().split("?", 1)[0]
    if lowered.endswith((".parquet", ".pq")):
        return "parquet"
    if lowered.endswith((".csv", ".csv.gz", ".txt")):
        return "csv"
    raise StepError(f"spec.data.format: cannot infer the format of {uri}; set csv, parquet or images")


def read_data(uri: str, fmt: str) -> pd.DataFrame:
    raw = artifacts.read_bytes(uri)
    try:
        if fmt == "parquet":
            return pd.read_parquet(io.BytesIO(raw))
        compression = "gzip" if uri.lower().endswith(".gz") else None
        return pd.read_csv(io.BytesIO(raw), compression=compression)
    except pd.errors.EmptyDataError:
        raise StepError(f"{uri}: the file is empty") from None
    except pd.errors.ParserError as exc:
        raise StepError(f"{uri}: malformed CSV: {exc}") from None
    except (ValueError, OSError) as exc:
        raise StepError(f"{uri}: cannot parse as {fmt}: {exc}") from None


def infer_kinds(frame: pd.DataFrame, declared: dict[str, str], label: str) -> dict[str, str]:
    kinds: dict[str, str] = {}
    for name in frame.columns:
        if name == label:
            continue
        kind = declared.get(name)
        if kind is None:
            kind = "numeric" if pd.api.types.is_numeric_dtype(frame[name]) else "categorical"
        elif kind == "numeric" and not pd.api.types.is_numeric_dtype(frame[name]):
            converted = pd.to_numeric(frame[name], errors="coerce")
            bad = frame[name][converted.isna() & frame[name].notna()]
            if len(bad):
                raise StepError(
                    f"column {name!r} is declared numeric (spec.data.columns) but holds "
                    f"{len(bad)} non-numeric values, e.g. {bad.iloc[0]!r}"
                )
            frame[name] = converted
        kinds[str(name)] = kind
    return kinds


def validate(frame: pd.DataFrame, spec: MLPipelineSpec) -> dict[str, str]:
    data = spec.data
    missing = sorted(set(data.columns) - set(map(str, frame.columns)))
    if data.label not in frame.columns:
        columns = ", ".join(map(str, frame.columns[:20]))
        raise StepError(
            f"label column {data.label!r} (spec.data.label) is not in the data; columns: {columns}"
        )
    if missing:
        raise StepError(
            f"columns declared in spec.data.columns are missing from the data: {', '.join(missing)}"
        )
    if len(frame) < data.min_rows:
        raise StepError(
            f"the data has {len(frame)} rows; spec.data.minRows asks for at least {data.min_rows}"
        )
    if frame[data.label].isna().any():
        raise StepError(
            f"label column {data.label!r} has {int(frame[data.label].isna().sum())} missing values"
        )
    kinds = infer_kinds(frame, {k: str(v) for k, v in data.columns.items()}, data.label)
    if not kinds:
        raise StepError("the data has no feature columns besides the label")
    too_sparse = {c: frame[c].isna().mean() for c in kinds if frame[c].isna().mean() > data.max_null_fraction}
    if too_sparse:
        detail = ", ".join(f"{c} ({f:.0%})" for c, f in too_sparse.items())
        raise StepError(
            "columns with more missing values than "
            f"spec.data.maxNullFraction={data.max_null_fraction}: {detail}"
        )
    if spec.train.task == "classification":
        counts = frame[data.label].value_counts()
        rare = counts[counts < data.min_class_count]
        if len(counts) < 2:
            raise StepError(
                f"label column {data.label!r} has a single class; classification needs two or more"
            )
        if len(rare):
            detail = ", ".join(f"{k!r}: {v}" for k, v in rare.items())
            raise StepError(
                f"classes with fewer rows than spec.data.minClassCount={data.min_class_count}: {detail}"
            )
    elif not pd.api.types.is_numeric_dtype(frame[data.label]):
        raise StepError(f"label column {data.label!r} must be numeric for regression")
    return kinds


def read_partitions(spec: MLPipelineSpec) -> tuple[pd.DataFrame, list[str], int]:
    """The data behind spec.data.uri: one file, or the window of partitions a pattern matches, in
    order; the partitions read; and how many rows the newest gave (the frame's last ones)."""
    uri = spec.data.uri
    if spec.data.format == "images":
        table = images.folder_table(uri, spec.data.label)
        return table, [uri], len(table)
    if not is_pattern(uri):
        frame = read_data(uri, data_format(uri, spec.data.format))
        images.resolve(frame, image_columns(spec, frame), uri)
        return frame, [uri], len(frame)
    found = [p.uri for p in store.partitions(uri)]
    if not found:
        raise StepError(f"spec.data.uri: no partition matches {uri}")
    window = found[-spec.data.last_partitions :] if spec.data.last_partitions else found
    frames = [read_data(p, data_format(p, spec.data.format)) for p in window]
    for name, frame in zip(window, frames, strict=True):
        images.resolve(frame, image_columns(spec, frame), name)
    # a labeling round's partition has a provenance column the seed and older partitions lack
    columns = [[c for c in f.columns if c != PROVENANCE] for f in frames]
    for name, cols in zip(window[1:], columns[1:], strict=True):
        if set(cols) != set(columns[0]):
            raise StepError(f"{name}: columns {sorted(cols)} differ from {window[0]}'s {sorted(columns[0])}")
    return pd.concat(frames, ignore_index=True), window, len(frames[-1])


def image_columns(spec: MLPipelineSpec, frame: pd.DataFrame) -> list[str]:
    declared = [c for c, kind in spec.data.columns.items() if kind == "image"]
    return [c for c in declared if c in frame.columns]


def holdout(spec: MLPipelineSpec, labels: pd.Series, trusted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the train and test rows: spec.data.testSize of the trusted rows (a person's
    label or the original data's) is held out, stratified by class; rows the model labeled itself
    all train. Without automatic labels, the split scikit-learn's train_test_split makes."""
    classification = spec.train.task == "classification"
    scored = int(trusted.sum())
    automatic = len(trusted) - scored
    if not scored:
        raise StepError(
            f"every one of the {len(trusted)} rows was labeled by the model itself ({PROVENANCE} auto); "
            "the gate scores only labels people gave or the original data holds: add such rows"
        )
    classes = labels[trusted].nunique() if classification else 1
    test_rows = max(round(scored * spec.data.test_size), classes)
    kind = StratifiedShuffleSplit if classification else ShuffleSplit
    splitter = kind(n_splits=1, test_size=test_rows, random_state=spec.data.seed)
    try:
        return scored_splits(splitter, labels.to_numpy(), trusted)[0]
    except ValueError as exc:
        where = f" of the {scored} rows not labeled by the model ({automatic} are)" if automatic else ""
        raise StepError(
            f"cannot split the data{where} (spec.data.testSize={spec.data.test_size}): {exc}"
        ) from None


def run(spec: MLPipelineSpec, out: str) -> dict[str, Any]:
    frame, read, newest_rows = read_partitions(spec)
    frame.columns = [str(c) for c in frame.columns]
    try:
        trusted = trusted_rows(frame)
    except ValueError as exc:
        raise StepError(f"spec.data.uri: {exc}") from None
    provenance = frame.pop(PROVENANCE) if PROVENANCE in frame.columns else None
    if spec.data.format == "images":
        spec.data.columns.setdefault("image", ColumnType.image)
    kinds = validate(frame, spec)
    pictures = [c for c, kind in kinds.items() if kind == "image"]
    size = spec.preprocess.image.size
    images.check_readable(frame, pictures, (size[0], size[1]), spec.preprocess.image.channels)
    label = spec.data.label
    classification = spec.train.task == "classification"
    train_rows, test_rows = holdout(spec, frame[label], trusted)
    if provenance is not None:  # kept beside the features: tune's validation folds read it
        frame[PROVENANCE] = provenance.fillna("").astype(str)
    train, test = frame.iloc[train_rows], frame.iloc[test_rows]
    schema: dict[str, Any] = {"label": label, "task": spec.train.task, "features": kinds}
    if classification:
        schema["classes"] = sorted(frame[label].unique().tolist(), key=str)
    profile = profile_frame(train, kinds, label, "categorical" if classification else "numeric")
    artifacts.write_table(artifacts.join(out, "train.parquet"), train)
    artifacts.write_table(artifacts.join(out, "test.parquet"), test)
    if len(read) > 1:  # what the newest data looks like: evaluate expects the canary's shift on it
        newest = frame.iloc[len(frame) - newest_rows :]
        artifacts.write_table(artifacts.join(out, f"{NEWEST}.parquet"), newest)
        schema[NEWEST] = NEWEST  # the split's name, as "train" and "test"
    artifacts.write_json(artifacts.join(out, "schema.json"), schema)
    artifacts.write_json(artifacts.join(out, "profile.json"), profile)
    summary = f"{len(frame)} rows, {len(kinds)} features"
    if len(read) > 1 or is_pattern(spec.data.uri):
        summary += f", {len(read)} partitions (newest {read[-1].rsplit('/', 1)[-1]})"
    if classification:
        summary += f", {len(schema['classes'])} classes"
    automatic = int((~trusted).sum())
    if automatic:
        summary += f", {automatic} labeled by the model (they train, never score)"
    result = {"summary": summary, "rows": len(frame), "train": len(train), "test": len(test)}
    return result | {"partitions": len(read), "newest": read[-1], "autoLabels": automatic}


def run_keyed(spec: MLPipelineSpec, out: str, spec_key: str, reuse: bool) -> dict[str, Any]:
    """Ingest in a cluster: takes the data's fingerprint from a listing (names and ETags, or sizes
    and modification times: no data is read), writes under ``out`` named by its key, and reports
    the output an earlier run left there, when it finds one, without reading the data again."""
    data = store.fingerprint(spec.data.uri, read=False)
    target = keyed(out, with_data(spec_key, data))
    earlier = store.finished(target) if reuse else None
    if earlier is not None:
        return {**earlier, "out": target, "data": data, "cached": True}
    store.unfinish(target)
    return {**run(spec, target), "out": target, "data": data, "cached": False}

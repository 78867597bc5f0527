"""The model that serves, measured beside the candidate at evaluate: on the held-out rows neither
trained on (a packaged model keeps a key per training row, so rows it has seen are left out), both
score the gate metric, and the shift between their predicted classes is measured as the canary
measures it live (monitoring.distance.prediction_shift). Both predict through their bundles, as
their servers do. The canary then judges its live shift against this expectation and fails a
candidate that scored worse here (monitoring/analysis.py)."""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from mlpipeline.monitoring.distance import prediction_shift
from mlpipeline.serving.bundle import ModelBundle, load_bundle
from mlpipeline.steps.metrics import PROBABILITY_METRICS, score_predictions, score_probabilities


def row_keys(frame: pd.DataFrame, schema: dict[str, Any]) -> np.ndarray:
    """A 64-bit key per row, of its features and label: the same row read again gets the same key."""
    columns = [c for c in [*sorted(schema["features"]), schema["label"]] if c in frame.columns]
    keys = pd.util.hash_pandas_object(frame[columns].astype(str), index=False)
    return np.asarray(keys, dtype=np.uint64)


def records(frame: pd.DataFrame, features: list[str]) -> list[dict[str, Any]]:
    """Rows as the records a client sends (a missing value is NaN, which the server reads as null)."""
    return list(frame[features].to_dict(orient="records"))


def against_serving(
    tag: str,
    uri: str | None,
    candidate: ModelBundle,
    frame: pd.DataFrame,
    metric: str,
    newest: pd.DataFrame | None = None,
) -> dict[str, Any] | None:
    """``compare`` with the serving model ``tag`` (imported from ``uri`` when the local model store
    lacks it); None, with a warning, when it cannot be loaded or cannot answer these rows."""
    try:
        version, serving = load_bundle(tag, uri)
        return compare(candidate, serving, version, frame, metric, newest)
    except Exception as exc:  # the comparison informs the canary: it never fails the gate
        print(f"warning: not compared with the serving model {tag}: {exc}", file=sys.stderr)
        return None


def compare(
    candidate: ModelBundle,
    serving: ModelBundle,
    version: str,
    frame: pd.DataFrame,
    metric: str,
    newest: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Both models on the rows of ``frame`` (held-out rows that may score) that ``serving`` did not
    train on: the shape of status.model.baseline. The prediction shift the canary is to expect is
    measured on ``newest`` when given (every row of the newest partition: what live traffic looks
    like now, where the two models may disagree far more than on older rows; no label is needed),
    else on those held-out rows."""
    schema = candidate.schema
    seen = serving.trained_on
    unseen = frame[~np.isin(row_keys(frame, schema), seen)] if seen is not None else frame
    result: dict[str, Any] = {"version": version, "metric": metric, "rows": len(unseen)}
    if unseen.empty:
        return result
    asked = records(unseen, list(schema["features"]))
    mine, theirs = candidate.predict(asked), serving.predict(asked)
    target = targets(unseen[schema["label"]], schema)
    ours, others = outputs(metric, mine, schema), outputs(metric, theirs, schema)
    if ours is not None and others is not None:
        result["score"] = score_outputs(metric, others, target)
        result["candidateScore"] = score_outputs(metric, ours, target)
        result["scoreError"] = difference_error(metric, ours, others, target)
    if schema["task"] == "classification":
        if newest is not None and not newest.empty:
            on = records(newest, list(schema["features"]))
            theirs, mine = serving.predict(on), candidate.predict(on)
        counts = [Counter(str(a["label"]) for a in answers) for answers in (theirs, mine)]
        result["predictionShift"] = prediction_shift(*counts)
        result["shiftRows"] = len(theirs)
    return result


def targets(truth: pd.Series, schema: dict[str, Any]) -> np.ndarray:
    if schema["task"] != "classification":
        return np.asarray(truth, dtype=float)
    index = {str(c): i for i, c in enumerate(schema["classes"])}
    return np.asarray([index[str(v)] for v in truth], dtype=int)


def outputs(metric: str, answers: list[dict[str, Any]], schema: dict[str, Any]) -> np.ndarray | None:
    """What ``metric`` scores of a model's answers (as its server gives them): predictions, class
    indices of ``schema``, or class probabilities; None when the answers lack the probabilities."""
    if schema["task"] != "classification":
        return np.asarray([a["prediction"] for a in answers], dtype=float)
    classes = [str(c) for c in schema["classes"]]
    if metric in PROBABILITY_METRICS:
        if not all(a.get("probabilities") for a in answers):
            return None
        return np.asarray([[a["probabilities"].get(c, 0.0) for c in classes] for a in answers])
    index = {c: i for i, c in enumerate(classes)}
    return np.asarray([index.get(str(a["label"]), -1) for a in answers], dtype=int)


def score_outputs(metric: str, predicted: np.ndarray, target: np.ndarray) -> float:
    if metric in PROBABILITY_METRICS:
        return score_probabilities(metric, predicted, list(range(predicted.shape[1])), target)
    return score_predictions(metric, predicted, target)


def difference_error(
    metric: str, ours: np.ndarray, others: np.ndarray, target: np.ndarray, draws: int = 200
) -> float | None:
    """The standard error of the candidate's score minus the serving model's, by bootstrap over
    the compared rows (paired: both scored on each draw's rows): how much of a difference chance
    makes on so few rows. None when too few draws can be scored (a class missing from most)."""
    rng = np.random.default_rng(0)
    differences = []
    for _ in range(draws):
        rows = rng.integers(0, len(target), len(target))
        try:
            mine = score_outputs(metric, ours[rows], target[rows])
            differences.append(mine - score_outputs(metric, others[rows], target[rows]))
        except ValueError:  # e.g. roc_auc of a draw holding a single class
            continue
    return float(np.std(differences, ddof=1)) if len(differences) >= draws // 2 else None

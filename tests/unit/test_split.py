"""Which rows score a model: labels a labeling round's model gave itself (provenance ``auto``) train
but never score — not in the held-out split the gate, status.model.score and the report use, not in
tune's validation folds — so a round's partition cannot raise the gated score by itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlpipeline.api.manifest import parse_spec
from mlpipeline.api.models import MLPipelineSpec
from mlpipeline.steps import artifacts, ingest, label, tune
from mlpipeline.steps.split import PROVENANCE, scored_splits, trusted_rows
from sklearn.model_selection import (
    KFold,
    ShuffleSplit,
    StratifiedKFold,
    StratifiedShuffleSplit,
    train_test_split,
)

from tests.conftest import example


def table(rows: int, seed: int = 0, provenance: str | None = None, first_id: int = 0) -> pd.DataFrame:
    """Two numeric features, a label that follows them, an id per row (which rows were scored)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 2))
    frame = pd.DataFrame(
        {
            "id": range(first_id, first_id + rows),
            "x1": x[:, 0],
            "x2": x[:, 1],
            "y": np.where(x[:, 0] > 0, "a", "b"),
        }
    )
    if provenance is not None:
        frame[PROVENANCE] = provenance
    return frame


def flipped(frame: pd.DataFrame) -> pd.DataFrame:
    """Deliberately wrong labels."""
    return frame.assign(y=frame["y"].map({"a": "b", "b": "a"}))


def interleave(trusted: pd.DataFrame, automatic: pd.DataFrame, seed: int = 1) -> pd.DataFrame:
    """Automatic rows spread among the trusted ones, the trusted ones in their own order."""
    merged = pd.concat([trusted, automatic], ignore_index=True)
    order = np.random.default_rng(seed).permutation(len(merged))
    keep = np.sort(order[: len(trusted)])  # slots of the trusted rows, in order
    slots = np.full(len(merged), -1)
    slots[keep] = np.arange(len(trusted))
    slots[slots < 0] = np.arange(len(trusted), len(merged))
    return merged.iloc[slots].reset_index(drop=True)


def spec_for(uri: str, **data: Any) -> MLPipelineSpec:
    document = example("iris")["spec"]
    document["data"] = {"uri": uri, "label": "y", "testSize": 0.25, "seed": 7, **data}
    return parse_spec(document)


def ids(frame: pd.DataFrame, rows: np.ndarray) -> list[int]:
    return sorted(frame["id"].iloc[rows].tolist())


def test_provenance_says_which_rows_may_score() -> None:
    frame = pd.DataFrame({PROVENANCE: ["auto", "human", "audit", None, "", " auto "]})
    assert trusted_rows(frame).tolist() == [False, True, True, True, True, False]
    assert trusted_rows(pd.DataFrame({"x": [1, 2]})).tolist() == [True, True]  # the original data
    with pytest.raises(ValueError, match=r"'model'.*known: 'auto', 'human', 'audit'"):
        trusted_rows(pd.DataFrame({PROVENANCE: ["human", "model"]}))


def test_without_automatic_rows_the_splits_are_scikit_learns_own() -> None:
    frame = table(60)
    everyone = np.ones(len(frame), dtype=bool)
    train, test = train_test_split(frame, test_size=15, random_state=7, stratify=frame["y"])
    splitter = StratifiedShuffleSplit(n_splits=1, test_size=15, random_state=7)
    fit, held = scored_splits(splitter, frame["y"], everyone)[0]
    assert frame["id"].iloc[fit].tolist() == train["id"].tolist()  # the same rows in the same order
    assert frame["id"].iloc[held].tolist() == test["id"].tolist()
    x = np.arange(50.0)  # tune's epoch-wise hold-out: a share, unstratified (regression)
    fit_x, valid_x = train_test_split(x, test_size=0.2, random_state=7)
    fit, held = scored_splits(ShuffleSplit(n_splits=1, test_size=0.2, random_state=7), x, everyone[:50])[0]
    assert x[fit].tolist() == fit_x.tolist() and x[held].tolist() == valid_x.tolist()
    folds = StratifiedKFold(3, shuffle=True, random_state=7)
    for (a, b), (c, d) in zip(
        scored_splits(folds, frame["y"], everyone), folds.split(frame, frame["y"]), strict=True
    ):
        assert a.tolist() == c.tolist() and b.tolist() == d.tolist()


@pytest.mark.parametrize(
    "splitter",
    [
        StratifiedShuffleSplit(n_splits=1, test_size=0.25, random_state=7),
        StratifiedKFold(3, shuffle=True, random_state=7),
        KFold(4, shuffle=True, random_state=7),
    ],
)
def test_automatic_rows_only_train_and_wrong_ones_do_not_change_what_is_scored(splitter: Any) -> None:
    people = table(40, seed=0, provenance="human")
    people.loc[::5, PROVENANCE] = None  # some rows of the original data
    model = flipped(table(80, seed=1, provenance="auto", first_id=1000))  # every automatic label wrong
    alone = scored_splits(splitter, people["y"], trusted_rows(people))
    data = interleave(people, model)
    trusted = trusted_rows(data)
    assert int((~trusted).sum()) == 80
    automatic = set(data["id"][~trusted])
    with_round = scored_splits(splitter, data["y"], trusted)
    assert len(with_round) == len(alone)
    for (fit, held), (fit_alone, held_alone) in zip(with_round, alone, strict=True):
        assert not automatic & set(data["id"].iloc[held])  # never scored
        assert automatic <= set(data["id"].iloc[fit])  # always trained on
        assert ids(data, held) == ids(people, held_alone)  # the very rows scored without the round
        assert set(data["id"].iloc[fit]) - automatic == set(people["id"].iloc[fit_alone])


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


def test_ingest_holds_out_only_trusted_rows_whatever_a_round_adds(tmp_path: Path) -> None:
    seed = table(40, seed=0)
    write_csv(seed, tmp_path / "before" / "0-seed.csv")
    write_csv(seed, tmp_path / "after" / "0-seed.csv")
    people = table(20, seed=2, provenance="human", first_id=500)
    write_csv(people, tmp_path / "before" / "labels-1.csv")
    wrong = flipped(table(100, seed=3, provenance="auto", first_id=1000))
    write_csv(interleave(people, wrong), tmp_path / "after" / "labels-1.csv")

    before = ingest.run(spec_for(f"{tmp_path}/before/*.csv"), str(tmp_path / "out-before"))
    after = ingest.run(spec_for(f"{tmp_path}/after/*.csv"), str(tmp_path / "out-after"))
    test_before = artifacts.read_table(str(tmp_path / "out-before" / "test.parquet"))
    test_after = artifacts.read_table(str(tmp_path / "out-after" / "test.parquet"))
    train_after = artifacts.read_table(str(tmp_path / "out-after" / "train.parquet"))
    assert (test_after[PROVENANCE] != "auto").all()
    assert test_after["id"].tolist() == test_before["id"].tolist()  # the same rows scored, same order
    assert set(wrong["id"]) <= set(train_after["id"])
    assert before["test"] == after["test"] == 15  # testSize 0.25 of the 60 trusted rows
    assert after["autoLabels"] == 100 and "100 labeled by the model" in after["summary"]
    schema = json.loads((tmp_path / "out-after" / "schema.json").read_text())
    assert PROVENANCE not in schema["features"]  # who labeled a row is no feature


def test_ingest_refuses_data_labeled_only_by_the_model(tmp_path: Path) -> None:
    write_csv(table(30, provenance="auto"), tmp_path / "labels-1.csv")
    with pytest.raises(artifacts.StepError, match="labeled by the model itself"):
        ingest.run(spec_for(f"{tmp_path}/*.csv"), str(tmp_path / "out"))


def test_tune_validation_folds_score_no_automatic_row(monkeypatch: pytest.MonkeyPatch) -> None:
    people = table(45, seed=0, provenance="human")
    data = interleave(people, flipped(table(60, seed=1, provenance="auto", first_id=1000)))
    features = data[["id", "x1", "x2"]].to_numpy()
    target = (data["y"] == "a").to_numpy().astype(int)
    scored: list[float] = []
    fitted: list[set[float]] = []

    def score(metric: str, estimator: Any, x: np.ndarray, y: np.ndarray) -> float:
        scored.extend(x[:, 0])
        return 1.0

    class Recorder:
        def fit(self, x: np.ndarray, y: np.ndarray) -> None:
            fitted.append(set(x[:, 0]))

    monkeypatch.setattr(tune, "score", score)
    monkeypatch.setattr(tune.Trials, "estimator", lambda self, config: Recorder())
    trials = tune.Trials("classification", "logistic_regression", "accuracy", 3, 7, {}, False)
    tune.cross_validate({}, features, target, trusted_rows(data), trials, lambda metrics, folder: None)
    automatic = set(data["id"][data[PROVENANCE] == "auto"])
    assert sorted(scored) == sorted(people["id"])  # each trusted row scored once, no automatic one
    assert len(fitted) == 3 and all(automatic <= rows for rows in fitted)


def test_merge_writes_who_labeled_each_row_into_the_partition(tmp_path: Path) -> None:
    document = example("iris")["spec"]
    document["data"] = {"uri": f"{tmp_path}/labeled/*.csv", "label": "y"}
    document["labeling"] = {"source": f"{tmp_path}/unlabeled/*.csv", "into": f"{tmp_path}/labeled"}
    spec = parse_spec(document)
    proposal = tmp_path / "round" / "label"
    pool = table(6).drop(columns=["y", "id"])
    artifacts.write_table(str(proposal / label.POOL), pool)
    picks = {"auto": [0, 1, 2], "human": [3, 4], "audit": [2]}
    artifacts.write_json(
        str(proposal / label.PROPOSAL),
        {"round": "r1", "classes": ["a", "b"], "capped": 0}
        | {k: [{"row": r, "label": "a", "confidence": 0.99} for r in rows] for k, rows in picks.items()},
    )
    export = [
        {
            "id": r,
            "data": {"mlp_round": "r1", "mlp_row": r},
            "annotations": [{"id": r, "result": [choice("a" if r == 2 else "b")]}],
        }
        for r in (2, 3, 4)
    ]
    (proposal / "label-studio-export.json").write_text(json.dumps(export))
    result = label.merge(spec, "p", str(proposal), str(tmp_path / "round" / "merge"), "2026-01-01T00:00:00Z")
    written = pd.read_csv(result["labeling"]["partition"])
    assert written[PROVENANCE].tolist() == ["auto", "auto", "audit", "human", "human"]
    assert written["y"].tolist() == ["a", "a", "a", "b", "b"]


def choice(value: str) -> dict[str, Any]:
    return {"from_name": "label", "to_name": "record", "type": "choices", "value": {"choices": [value]}}

"""The CNN example for real: Ray Tune trains a PyTorch CNN on image files epoch by epoch (on the CPU:
no GPU here), ASHA stops trials between epochs, the best trial's checkpoint is what passes the gate
and is packaged, and a real BentoML server answers images sent as base64."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import joblib
import pandas as pd
import pytest
from mlpipeline.local.server import ModelServer

from tests.conftest import EXAMPLES, example, mlpipeline, write_manifest
from tests.workload.conftest import model_server


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("digits")
    document = example("digits")
    document["spec"]["data"]["uri"] = str(EXAMPLES / "data" / "digits")
    manifest = write_manifest(tmp / "digits.yaml", document)
    result = mlpipeline("run", "-f", str(manifest), "--workdir", str(tmp / "work"), "--no-serve")
    assert result.returncode == 0, result.stdout + result.stderr
    work = tmp / "work" / "digits"
    steps = {p.name.split("-", 1)[0]: p for p in (work / "steps").iterdir()}
    return {
        **json.loads((work / "last-run.json").read_text()),
        "workdir": tmp / "work",
        "steps": steps,
        "stdout": result.stdout,
    }


def test_trials_train_by_epoch_and_asha_stops_poor_ones_at_its_rungs(digits: dict[str, Any]) -> None:
    trials = json.loads((digits["steps"]["tune"] / "trials.json").read_text())
    assert len(trials) == 4 and all("error" not in t for t in trials)
    for trial in trials:
        assert len(trial["curve"]) == trial["epochs"]  # one report per epoch
        if trial["stoppedEarly"]:
            assert trial["epochs"] in (1, 2, 4, 8)
        else:
            assert trial["epochs"] == 12
    assert any(t["stoppedEarly"] for t in trials)
    assert "best validation accuracy" in digits["stdout"]


def test_the_best_checkpoint_is_the_model_that_passes_the_gate(digits: dict[str, Any]) -> None:
    best = json.loads((digits["steps"]["tune"] / "best.json").read_text())
    checkpoint = joblib.load(best["checkpoint"])
    evaluated = joblib.load(digits["steps"]["evaluate"] / "model.joblib")
    test = pd.read_parquet(digits["steps"]["ingest"] / "test.parquet")
    preprocessor = joblib.load(digits["steps"]["preprocess"] / "preprocessor.joblib")
    features = preprocessor.transform(test[["image"]])
    assert (checkpoint.predict_proba(features) == evaluated.predict_proba(features)).all()
    metrics = json.loads((digits["steps"]["evaluate"] / "metrics.json").read_text())["metrics"]
    assert metrics["accuracy"] >= 0.95  # the example's gate; a small CNN on 8x8 digits reaches ~0.98


def test_the_run_report_is_written_and_printed(digits: dict[str, Any]) -> None:
    report = digits["steps"]["evaluate"] / "report.html"
    assert re.search(r"│ report\s+│", digits["stdout"])  # the summary table links it
    page = report.read_text()
    assert page.count("data:image/png;base64,") == 3 and "Gate passed" in page
    assert page.count("<tr>") == 1 + 4  # header and the 4 trials


@pytest.fixture(scope="module")
def server(digits: dict[str, Any]) -> Iterator[ModelServer]:
    with model_server(digits, digits["workdir"] / "serve.log") as running:
        yield running


def test_the_server_answers_images_sent_as_base64(digits: dict[str, Any], server: ModelServer) -> None:
    test = pd.read_parquet(digits["steps"]["ingest"] / "test.parquet").head(40)
    encoded = [base64.b64encode(Path(ref).read_bytes()).decode() for ref in test["image"]]
    records = [{"image": e if i % 2 else "data:image/png;base64," + e} for i, e in enumerate(encoded)]
    response = httpx.post(f"{server.url}/predict", json={"records": records}, timeout=60)
    assert response.status_code == 200, response.text
    answers = response.json()
    right = sum(a["label"] == str(label) for a, label in zip(answers, test["digit"], strict=True))
    assert right >= 36, answers  # 40 held-out digits
    assert set(answers[0]["probabilities"]) == {str(d) for d in range(10)}


def test_an_unreadable_image_is_a_400_naming_the_record(server: ModelServer) -> None:
    records = [{"image": base64.b64encode(b"certainly not a picture!").decode()}, {"image": "/etc/hostname"}]
    response = httpx.post(f"{server.url}/predict", json={"records": records}, timeout=30)
    assert response.status_code == 400, response.text
    problems = {tuple(p["loc"]): p["msg"] for p in response.json()["detail"]}
    assert "not a readable image" in problems[("records", 0, "image")]
    assert "the server reads no local path" in problems[("records", 1, "image")]

"""The cycle on this machine (`mlpipeline run --watch`): a model trained on the first month of the
sensors example serves; month 7 lands, in which the load has shifted and the failure rule changed;
traffic like month 7's raises the drift of exactly the load; the drift trigger retrains on every
partition and the new model is rolled out as a canary and promoted — real Ray Tune, BentoML
servers, router and Prometheus."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
from mlpipeline.local.server import is_ready, stop_group

from examples import make_data
from tests.conftest import BIN, example, write_manifest


def manifest(tmp: Path) -> Path:
    document = example("iris")
    document["metadata"]["name"] = "cycle"
    spec = document["spec"]
    spec["data"] = {"uri": str(tmp / "data" / "month=*.csv"), "label": "failed", "testSize": 0.2}
    spec["train"]["tune"] = {
        "algorithm": "random",
        "scheduler": "none",
        "trials": 1,
        "maxConcurrent": 1,
        "metric": "accuracy",
        "searchSpace": {"n_estimators": {"choice": [30]}, "max_depth": {"choice": [6]}},
    }
    spec["evaluate"] = {"metric": "accuracy", "min": 0.6}
    spec["serve"]["canary"] = {
        "steps": [50],
        "interval": "3s",
        "analysis": {"interval": "1s", "window": "5s", "minRequests": 3, "maxPredictionShift": 10},
    }
    spec["monitoring"] = {
        "capture": {"sampleRate": 1.0},
        "drift": {"interval": "1s", "minSamples": 100, "threshold": 0.2},
    }
    spec["retrain"] = {"onDrift": {"sustained": "2s", "features": ["load"]}}
    return write_manifest(tmp / "cycle.yaml", document)


def wait_for_file(path: Path, what: str, check: Any, timeout: float, process: subprocess.Popen[str]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"mlpipeline run --watch exited while waiting for {what}"
        if path.exists():
            value = check(json.loads(path.read_text()))
            if value:
                return value
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def test_drift_on_a_new_partition_retrains_and_rolls_out_the_new_model(tmp_path: Path) -> None:
    data = make_data
    data.write_month(1, tmp_path / "data")
    port = 3000 + os.getpid() % 1000
    log = (tmp_path / "watch.log").open("w")
    process = subprocess.Popen(
        [str(BIN / "mlpipeline"), "run", "-f", str(manifest(tmp_path)), "--workdir", str(tmp_path / "work"),
         "--watch", "--port", str(port), "--canary-load", "10"],
        stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    root = tmp_path / "work" / "cycle"
    try:
        first = wait_for_file(
            root / "serving-status.json", "the first model serving", lambda s: s.get("stable"), 300, process
        )
        url = f"http://127.0.0.1:{port}"
        wait_for_file(
            root / "serving-status.json", "the server answering", lambda _: is_ready(url), 60, process
        )
        data.write_month(data.DRIFT_MONTH, tmp_path / "data")
        records = data.sensor_month(data.DRIFT_MONTH).drop(columns="failed").to_dict(orient="records")
        for i in range(0, 300, 10):
            answer = httpx.post(f"{url}/predict", json={"records": records[i : i + 10]}, timeout=30)
            assert answer.status_code == 200, answer.text
        retrain = wait_for_file(
            root / "retrain-status.json",
            "the drift trigger",
            lambda s: (s.get("last") or {}).get("kind") == "drift" and s["last"],
            120,
            process,
        )
        assert retrain["action"] == "started" and retrain["value"].startswith("load="), retrain
        assert "temperature=" not in retrain["value"] and "vibration=" not in retrain["value"]
        final = wait_for_file(
            root / "serving-status.json",
            "the retrained model promoted",
            lambda s: s.get("stable") != first and s.get("phase") == "Promoted" and s,
            400,
            process,
        )
        new = final["stable"]
        served = httpx.post(f"{url}/metadata", json={}, timeout=10).json()
        assert served["version"] == new
        captured = list((root / "capture").glob(f"version={first}/hour=*/*.jsonl"))
        assert captured, "the first model's servers captured nothing"
    finally:
        stop_group(process)
        log.close()
    output = (tmp_path / "watch.log").read_text()
    assert "RetrainTriggered" in output and "2 partitions" in output, output[-3000:]

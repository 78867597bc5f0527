"""The cycle on this machine (`mlpipeline run --watch`): a model trained on the first month of the
sensors example serves; month 7 lands, in which the load has shifted and the failure rule changed;
traffic like month 7's raises the drift of exactly the load; the drift trigger retrains on every
partition and the new model, better on held-out labels, is rolled out as a canary and promoted with
the default checks, which expect the shift evaluate measured — real Ray Tune, BentoML
servers, router and Prometheus. The schedule and new-data triggers likewise retrain on a month that
landed and roll the new model out; a client of the announced port meanwhile gets every answer, and
the canary's own load is never captured. Drift without a new month starts no run: it is said once,
or, with spec.labeling, a labeling round takes the drifted served records."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlpipeline.local.load import Load
from mlpipeline.local.server import free_port, is_ready, stop_group

from examples import make_data
from tests.conftest import BIN, example, write_manifest


def manifest(tmp: Path, retrain: dict[str, Any] | None = None, labeling: bool = False) -> Path:
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
        "analysis": {"interval": "1s", "window": "5s", "minRequests": 3},
    }
    spec["monitoring"] = {
        "capture": {"sampleRate": 1.0},
        "drift": {"interval": "1s", "minSamples": 100, "threshold": 0.2},
    }
    spec["retrain"] = retrain or {"onDrift": {"sustained": "2s", "features": ["load"]}}
    if labeling:  # rounds write labels-*.csv beside the months, which data.uri reads
        spec["data"]["uri"] = str(tmp / "data" / "*.csv")
        spec["labeling"] = {"source": str(tmp / "unlabeled" / "*.csv"), "into": str(tmp / "data")}
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


@contextmanager
def watching(
    tmp_path: Path, retrain: dict[str, Any] | None = None, labeling: bool = False
) -> Iterator[Watch]:
    """`mlpipeline run --watch` of the cycle manifest (``retrain`` replacing its drift trigger,
    ``labeling``: with spec.labeling) on month 1, until its first model serves and answers;
    stopped on exit."""
    make_data.write_month(1, tmp_path / "data")
    port = free_port()
    log_path = tmp_path / "watch.log"
    document = manifest(tmp_path, retrain, labeling)
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(BIN / "mlpipeline"), "run", "-f", str(document), "--workdir", str(tmp_path / "work"),
             "--watch", "--port", str(port), "--canary-load", "10"],
            stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip
        try:
            watch = Watch(process, f"http://127.0.0.1:{port}", tmp_path / "work" / "cycle", log_path, "")
            watch.first = wait_for_file(
                watch.serving, "the first model serving", lambda s: s.get("stable"), 300, process
            )
            wait_for_file(watch.serving, "the server answering", lambda _: is_ready(watch.url), 240, process)
            yield watch
        finally:
            stop_group(process)


@dataclass
class Watch:
    process: subprocess.Popen[str]
    url: str
    root: Path
    log: Path
    first: str  # the first model's version

    @property
    def serving(self) -> Path:
        return self.root / "serving-status.json"

    def trigger(self, kind: str, timeout: float) -> dict[str, Any]:
        """The last trigger record once it is of ``kind``."""
        return wait_for_file(  # type: ignore[no-any-return]
            self.root / "retrain-status.json",
            f"the {kind} trigger",
            lambda s: (s.get("last") or {}).get("kind") == kind and s["last"],
            timeout,
            self.process,
        )

    def promoted(self, timeout: float, after: str | None = None) -> str:
        """The version promoted after ``after`` (default: the first)."""
        before = after or self.first
        final = wait_for_file(
            self.serving,
            "the retrained model promoted",
            lambda s: s.get("stable") != before and s.get("phase") == "Promoted" and s,
            timeout,
            self.process,
        )
        assert httpx.post(f"{self.url}/metadata", json={}, timeout=10).json()["version"] == final["stable"]
        return str(final["stable"])


@pytest.mark.parametrize(
    ("kind", "retrain"),
    [
        ("schedule", {"schedule": "* * * * *"}),
        ("data", {"onNewData": {"interval": "1s", "settle": "1s"}}),
    ],
)
def test_a_schedule_or_new_data_retrains_on_the_month_that_landed_and_rolls_it_out(
    tmp_path: Path, kind: str, retrain: dict[str, Any]
) -> None:
    with watching(tmp_path, retrain) as watch:
        make_data.write_month(2, tmp_path / "data")
        fired = watch.trigger(kind, timeout=150)
        assert fired["action"] == "started", fired
        watch.promoted(timeout=400)
    output = watch.log.read_text()
    assert "RetrainTriggered" in output and "2 partitions" in output, output[-3000:]


def test_drift_on_a_new_partition_retrains_and_rolls_out_the_new_model(tmp_path: Path) -> None:
    data = make_data
    with watching(tmp_path) as watch:
        url, root, first = watch.url, watch.root, watch.first
        data.write_month(data.DRIFT_MONTH, tmp_path / "data")
        records = data.sensor_month(data.DRIFT_MONTH).drop(columns="failed").to_dict(orient="records")
        for i in range(0, 300, 10):
            answer = httpx.post(f"{url}/predict", json={"records": records[i : i + 10]}, timeout=30)
            assert answer.status_code == 200, answer.text
        retrain = watch.trigger("drift", timeout=120)
        assert retrain["action"] == "started" and retrain["value"].startswith("load="), retrain
        assert "temperature=" not in retrain["value"] and "vibration=" not in retrain["value"]
        final = watch.promoted(timeout=400)
        captured = list((root / "capture").glob(f"version={first}/hour=*/*.jsonl"))
        assert captured, "the first model's servers captured nothing"
    # The retrained model predicts differently, as it should: evaluate measured it beside the first
    # on held-out rows neither trained on, better, and the canary (default checks) found the shift
    # evaluate expected.
    last = json.loads((root / "last-run.json").read_text())
    assert last["model"].endswith(f":{final}")
    baseline = json.loads((Path(last["steps"]["evaluate"]) / "result.json").read_text())["baseline"]
    assert baseline["version"] == first and baseline["rows"] > 0, baseline
    assert baseline["candidateScore"] > baseline["score"], baseline
    checks = {c["name"]: c for c in json.loads(watch.serving.read_text())["checks"]}
    assert checks["predictionShift"]["expected"] == baseline["predictionShift"] > 0, checks
    assert checks["predictionShift"]["verdict"] == checks["offlineScore"]["verdict"] == "pass", checks
    output = watch.log.read_text()
    assert "RetrainTriggered" in output and "2 partitions" in output, output[-3000:]


def test_a_client_of_the_announced_port_gets_every_answer_through_two_retrains(tmp_path: Path) -> None:
    records = make_data.sensor_month(1).drop(columns="failed").to_dict(orient="records")
    with watching(tmp_path, {"onNewData": {"interval": "1s", "settle": "1s"}}) as watch:
        client = Load(f"{watch.url}/predict", records, rate=5, threads=2, max_seconds=900).start()
        try:
            make_data.write_month(2, tmp_path / "data")
            second = watch.promoted(timeout=400)
            make_data.write_month(3, tmp_path / "data")
            third = watch.promoted(timeout=400, after=second)
        finally:
            stats = client.stop()
        answer = httpx.post(f"{watch.url}/metadata", json={}, timeout=10).json()
        assert answer["version"] == third
    output = watch.log.read_text()
    assert output.count("Promoted") >= 2 and "3 partitions" in output, output[-3000:]
    # Through two retrains and two canaries: not one refused connection, not one 5xx.
    assert (stats.refused, stats.failed) == (0, 0), (stats.refused, stats.failed, stats.ok)
    assert stats.ok > 100, stats.ok
    # Every captured record is the client's (sampleRate 1): none of the canary load's held-out rows
    # (10 requests/s during each rollout) nor of the sample predictions mlpipeline sends itself.
    lines = sum(len(f.read_text().splitlines()) for f in (watch.root / "capture").glob("version=*/*/*.jsonl"))
    assert 0 < lines <= stats.ok, (lines, stats.ok)


def send_drifted_traffic(url: str) -> None:
    """300 records of the changed month 7, whose load drifted; nothing of month 7 lands as data."""
    records = make_data.sensor_month(make_data.DRIFT_MONTH).drop(columns="failed").to_dict(orient="records")
    for i in range(0, 300, 10):
        answer = httpx.post(f"{url}/predict", json={"records": records[i : i + 10]}, timeout=30)
        assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("labeling", [False, True], ids=["without-labeling", "with-labeling"])
def test_drift_without_new_data_starts_no_run_and_says_so_once_or_asks_people(
    tmp_path: Path, labeling: bool
) -> None:
    retrain = {"onDrift": {"sustained": "2s", "features": ["load"]}, "cooldown": "1s"}
    with watching(tmp_path, retrain, labeling) as watch:
        send_drifted_traffic(watch.url)
        answered = watch.trigger("drift", timeout=60)
        assert answered["action"] == ("labeling" if labeling else "skipped"), answered
        assert answered["value"].startswith("load="), answered
        if labeling:
            current = wait_for_file(
                watch.root / "labeling-status.json",
                "the drift's labeling round waiting for people",
                lambda s: (r := s.get("round") or {}).get("phase") == "AwaitingPeople" and r,
                120,
                watch.process,
            )
            assert current["servedFrom"] and current["model"] == watch.first, current
            assert current["records"] == 300 and current["sentToPeople"] > 0, current  # every drifted record
        time.sleep(10)  # ten cooldowns and five sustained periods of the same drift
        assert watch.process.poll() is None
        latest = (watch.root / "latest-run").read_text().strip()
        status = json.loads((watch.root / "retrain-status.json").read_text())
    output = watch.log.read_text()
    assert latest == watch.first, "a run started although no data changed"
    assert "retraining (drift)" not in output and "RetrainTriggered" not in output, output[-3000:]
    reason = "DriftLabeling" if labeling else "RetrainSkipped"
    assert output.count(reason) == 1, output[-3000:]
    message = status["driftWithoutNewData"]["message"]
    assert "persists with no new data since run" in message, message
    if not labeling:
        assert "spec.labeling" in message and "onDrift off" in message, message

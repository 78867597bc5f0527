"""The cycle, measured: the sensors example serves a model trained on months 1-6; month 7 lands, in
which the load has shifted and the failure rule changed. `mlpipeline run --watch` notices the new
partition (spec.retrain.onNewData), retrains and rolls the new model out as a canary.

    python -m bench.cycle

Two scenarios in the same run: retraining on every partition, and on a recent window (the newest
partition only, spec.data.lastPartitions: 1). For each, JSON with the accuracy on held-out month-7
records of the model before retraining (the baseline) and of the automatically retrained one, and
the seconds from the partition landing to the new model serving (promoted behind the router).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from mlpipeline.local.server import is_ready, stop_group

from examples import make_data

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def manifest(folder: Path, window: int | None) -> Path:
    document = yaml.safe_load((EXAMPLES / "cycle.yaml").read_text())
    spec = document["spec"]
    spec["data"]["uri"] = str(folder / "data" / "month=*.csv")
    spec["data"].pop("lastPartitions", None)
    if window:
        spec["data"]["lastPartitions"] = window
    spec["retrain"] = {"onNewData": {"interval": "1s", "settle": "1s", "minNewRows": 100}}
    path = folder / "cycle.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return {}


def wait(what: str, check: Any, timeout: float, process: subprocess.Popen[bytes]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlpipeline run --watch exited while waiting for {what}")
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise TimeoutError(what)


def accuracy(url: str, records: list[dict[str, Any]], labels: list[str]) -> float:
    answers = httpx.post(f"{url}/predict", json={"records": records}, timeout=60).json()
    return round(sum(bool(a["label"] == y) for a, y in zip(answers, labels, strict=True)) / len(labels), 4)


def scenario(window: int | None, port: int) -> dict[str, Any]:
    data = make_data
    held_out = data.sensor_month(data.DRIFT_MONTH + 1)  # month 7's world, records no model saw
    records = held_out.drop(columns="failed").to_dict(orient="records")
    labels = held_out["failed"].tolist()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for index in range(1, data.DRIFT_MONTH):
            data.write_month(index, folder / "data")
        status = folder / "work" / "sensors" / "serving-status.json"
        with (folder / "watch.log").open("wb") as log:
            command = [
                str(Path(sys.executable).with_name("mlpipeline")),
                "run",
                "-f",
                str(manifest(folder, window)),
            ]
            command += [
                "--workdir",
                str(folder / "work"),
                "--watch",
                "--port",
                str(port),
                "--canary-load",
                "10",
            ]
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            before = wait("the first model", lambda: read_json(status).get("stable"), 600, process)
            wait("the server", lambda: is_ready(url), 60, process)
            accuracy_before = accuracy(url, records, labels)
            landed = time.monotonic()
            data.write_month(data.DRIFT_MONTH, folder / "data")
            after = wait(
                "the retrained model serving",
                lambda: (
                    (s := read_json(status)).get("phase") == "Promoted" and s.get("stable") != before and s
                ),
                900,
                process,
            )
            seconds = round(time.monotonic() - landed, 1)
            accuracy_after = accuracy(url, records, labels)
        finally:
            stop_group(process)
    return {
        "trained_on": f"the newest {window} partition(s)" if window else "every partition",
        "accuracy_on_new_month_before": accuracy_before,
        "accuracy_on_new_month_after": accuracy_after,
        "ratio_after_to_before": round(accuracy_after / max(accuracy_before, 1e-9), 3),
        "seconds_partition_landed_to_new_model_serving": seconds,
        "versions": {"before": before, "after": after["stable"]},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=3300)
    args = parser.parse_args()
    everything = scenario(None, args.port)
    window = scenario(1, args.port)
    print(
        json.dumps(
            {
                "benchmark": "cycle",
                "scenario": "months 1-6 stable; month 7: load shifted by 1.5 sd, failure rule changed",
                "retrain_on_everything": everything,
                "retrain_on_recent_window": window,
                "ratio_window_to_everything": {
                    "accuracy_after": round(
                        window["accuracy_on_new_month_after"] / everything["accuracy_on_new_month_after"], 3
                    ),
                    "seconds_partition_landed_to_new_model_serving": round(
                        window["seconds_partition_landed_to_new_model_serving"]
                        / everything["seconds_partition_landed_to_new_model_serving"],
                        3,
                    ),
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

"""A labeling round against a real Label Studio server: the model trained on 40 labeled readings
labels a batch of 600, the test plays the person in Label Studio (answering each task from the
known truth), and the next model, trained on the merged labels, is better on held-out data."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from examples.make_data import POOL_ROWS, sensor_month
from tests import labelstudio
from tests.conftest import BIN, EXAMPLES, mlpipeline

PROJECT = "sensors labeling (test)"


def heldout_accuracy(workdir: Path, tag: str) -> float:
    """The model's accuracy on 1,000 readings of month 3 (never seen by any round)."""
    script = (
        "import json, sys\n"
        "from examples.make_data import sensor_month\n"
        "from mlpipeline.serving.bundle import load_bundle\n"
        "frame = sensor_month(3, 1000)\n"
        f"_, bundle = load_bundle({tag!r})\n"
        "answers = bundle.predict(frame.drop(columns=['failed']).to_dict('records'))\n"
        "print(sum(a['label'] == t for a, t in zip(answers, frame['failed'])) / len(frame))\n"
    )
    env = {**os.environ, "BENTOML_HOME": str(workdir / "bentoml")}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def test_people_label_the_uncertain_records_and_the_next_model_is_better(
    label_studio: labelstudio.LabelStudio, tmp_path: Path
) -> None:
    data = tmp_path / "data" / "labeling"
    shutil.copytree(EXAMPLES / "data" / "labeling", data, ignore=shutil.ignore_patterns("labels-*"))
    document = yaml.safe_load((EXAMPLES / "labeling.yaml").read_text())
    document["spec"]["labeling"]["labelStudio"] = {"url": label_studio.url, "project": PROJECT}
    manifest = tmp_path / "labeling.yaml"
    manifest.write_text(yaml.safe_dump(document))
    workdir = tmp_path / "work"
    first = mlpipeline("run", "-f", str(manifest), "--workdir", str(workdir), "--no-serve")
    assert first.returncode == 0, first.stdout + first.stderr
    root = workdir / "sensors-labeling"
    tag = json.loads((root / "last-run.json").read_text())["model"]
    before = heldout_accuracy(workdir, tag)

    round_process = subprocess.Popen(
        [str(BIN / "mlpipeline"), "label", "-f", str(manifest), "--workdir", str(workdir)],
        env={**os.environ, "LABEL_STUDIO_API_KEY": label_studio.token},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        truth = sensor_month(2, POOL_ROWS)["failed"].tolist()
        budget = document["spec"]["labeling"]["budget"]
        with label_studio.client() as client:
            # wait for the proposal to know how many audit tasks to expect
            status_file = root / "labeling-status.json"
            deadline = time.monotonic() + 300
            while not (status_file.exists() and json.loads(status_file.read_text())["round"].get("audited")):
                assert round_process.poll() is None, (
                    round_process.stdout.read() if round_process.stdout else ""
                )
                assert time.monotonic() < deadline, "the label step did not finish"
                time.sleep(1)
            proposed = json.loads(status_file.read_text())["round"]
            assert proposed["phase"] == "AwaitingPeople" and proposed["sentToPeople"] == budget
            seen = labelstudio.answer_as_a_person(
                client, PROJECT, proposed["sentToPeople"] + proposed["audited"], truth, tag.split(":")[1]
            )
        output, _ = round_process.communicate(timeout=300)
    finally:
        round_process.kill()
    assert round_process.returncode == 0, output
    assert seen["human"] == budget and seen["audit"] == proposed["audited"]
    assert seen["project"]["model_version"] == tag.split(":")[1]  # so Label Studio shows the guesses
    assert token_never_shown(label_studio.token, output, root)

    merged = json.loads((root / "labeling-status.json").read_text())["round"]
    assert merged["phase"] == "Merged", merged
    assert merged["labeledByPeople"] == budget + proposed["audited"]
    assert merged["autoLabelsUsed"] is True and merged["auditDisagreement"] <= 0.2
    partition = Path(merged["partition"])
    assert partition.parent == data / "labeled" and partition.name.startswith("labels-")
    rows = partition.read_text().strip().splitlines()
    assert rows[0] == "load,temperature,vibration,failed,mlp_provenance"
    assert len(rows) - 1 == merged["rows"] == proposed["autoLabeled"] + budget
    provenance = json.loads((root / "labeling" / merged["id"] / "merge" / "provenance.json").read_text())
    assert provenance["rows"].count("human") == budget and provenance["rows"].count("auto") > 0

    again = mlpipeline("label", "-f", str(manifest), "--workdir", str(workdir))
    assert again.returncode == 0 and "nothing new to label" in again.stdout  # no file labeled twice

    second = mlpipeline("run", "-f", str(manifest), "--workdir", str(workdir), "--no-serve")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "2 partitions" in second.stdout
    ingested = Path(json.loads((root / "last-run.json").read_text())["steps"]["ingest"])
    held_out = pd.read_parquet(ingested / "test.parquet")  # what the gate scored: no label of the model's
    assert len(held_out) and "auto" not in set(held_out["mlp_provenance"]), held_out["mlp_provenance"]
    retrained = json.loads((root / "last-run.json").read_text())["model"]
    assert retrained != tag
    after = heldout_accuracy(workdir, retrained)
    assert after > before + 0.02, (before, after)
    label_in_the_background_from_files(document, data, tmp_path, retrained)


def label_in_the_background_from_files(
    document: dict[str, Any], data: Path, tmp_path: Path, tag: str
) -> None:
    """`run --watch` labels a second batch in the background with the serving model, without a
    Label Studio server: the round writes its import file and waits for the export beside it."""
    from mlpipeline.api.manifest import load_manifest
    from mlpipeline.local.cycle import LocalCycle
    from mlpipeline.local.runner import LocalRunner
    from rich.console import Console

    sensor_month(4, 300).drop(columns=["failed"]).to_csv(data / "unlabeled" / "batch-02.csv", index=False)
    document["spec"]["labeling"].pop("labelStudio")
    document["spec"]["labeling"]["settle"] = "0s"
    manifest = tmp_path / "files.yaml"
    manifest.write_text(yaml.safe_dump(document))
    runner = LocalRunner(load_manifest(manifest), tmp_path, tmp_path / "work", Console(file=io.StringIO()))
    cycle = LocalCycle(runner, runner.console)
    cycle.label(tag.split(":")[1])
    status_file = runner.root / "labeling-status.json"
    deadline = time.monotonic() + 120
    while (current := json.loads(status_file.read_text())["round"])["phase"] != "AwaitingPeople":
        assert current["phase"] != "Failed" and time.monotonic() < deadline, current
        time.sleep(0.5)
    assert current["sources"] == [str(data / "unlabeled" / "batch-02.csv")]  # batch-01 was labeled before
    imported = Path(current["project"])
    assert imported.name == "label-studio-import.json"
    truth = sensor_month(4, 300)["failed"].tolist()
    export = [
        {
            "id": i,
            "data": t["data"],
            "annotations": [{"id": i, "result": [choice(truth[t["data"]["mlp_row"]])]}],
        }
        for i, t in enumerate(json.loads(imported.read_text()))
    ]
    (imported.parent / "label-studio-export.json").write_text(json.dumps(export))
    assert cycle._labeling is not None
    cycle._labeling.join(timeout=120)
    merged = json.loads(status_file.read_text())["round"]
    assert merged["phase"] == "Merged" and merged["labeledByPeople"] == len(export), merged
    assert len(sorted((data / "labeled").glob("labels-*.csv"))) == 2


def choice(label: str) -> dict[str, Any]:
    return {"from_name": "label", "to_name": "record", "type": "choices", "value": {"choices": [label]}}


def token_never_shown(token: str, output: str, root: Path) -> bool:
    logs = "".join(p.read_text(errors="replace") for p in (root / "logs").glob("*.log"))
    return (
        token not in output and token not in logs and token not in (root / "labeling-status.json").read_text()
    )

"""The labeling loop where users run it: the operator trains a model in real pods from the S3
store, sees the unlabeled batch land, runs the round's label and merge steps as real pods that talk
to a real Label Studio (token by secret reference) and write the labeled partition to S3, and the
new partition retrains the model by itself (spec.retrain.onNewData)."""

from __future__ import annotations

from typing import Any

import yaml

from examples.make_data import POOL_ROWS, sensor_month
from tests.cluster.conftest import kube_json, kubectl, wait_for
from tests.conftest import EXAMPLES, example
from tests.labelstudio import LabelStudio, answer_as_a_person
from tests.real.conftest import Operator, S3Store, failing_fast, host_address

PROJECT = "sensors (real pods)"


def status_of(namespace: str) -> dict[str, Any]:
    return kube_json("get", "mlpipeline", "sensors", "-n", namespace).get("status") or {}


def manifest(store: S3Store, studio_url: str) -> dict[str, Any]:
    document = example("labeling")
    document["metadata"]["name"] = "sensors"
    spec = document["spec"]
    base = f"{store.prefix}/labeling"
    spec["data"]["uri"] = f"{base}/labeled/*.csv"
    spec["train"]["tune"] |= {"trials": 2, "maxConcurrent": 1}
    spec["train"]["resources"] = {"cpu": "500m", "memory": "2Gi"}
    spec["serve"] = {"enabled": False}
    spec["steps"] = {"retries": 0, "timeout": "15m"}
    spec["artifacts"] = {"uri": store.prefix, "secretRef": {"name": "artifacts"}}
    spec["labeling"] |= {
        "source": f"{base}/unlabeled/*.csv",
        "into": f"{base}/labeled",
        "interval": "2s",
        "settle": "1s",
        "labelStudio": {"url": studio_url, "project": PROJECT, "tokenSecretRef": {"name": "label-studio"}},
    }
    spec["retrain"] = {"onNewData": {"interval": "2s", "settle": "1s", "minNewRows": 10}}
    return document


def test_a_labeling_round_runs_in_real_pods_and_its_labels_retrain_the_model(
    real_operator: Operator, s3_store: S3Store, label_studio: LabelStudio
) -> None:
    namespace, fs = s3_store.namespace, s3_store.fs()
    base = f"{s3_store.prefix}/labeling"
    fs.put(str(EXAMPLES / "data" / "labeling" / "labeled" / "0-seed.csv"), f"{base}/labeled/0-seed.csv")
    kubectl(
        "create",
        "secret",
        "generic",
        "label-studio",
        "-n",
        namespace,
        f"--from-literal=token={label_studio.token}",
    )
    document = manifest(s3_store, label_studio.url_for(host_address()))
    kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(document))
    first = wait_for(
        "the first model",
        lambda: (s := failing_fast(status_of(namespace))).get("phase") == "Packaged" and s,
        timeout=600,
        interval=2,
    )
    assert first["phase"] == "Packaged", first
    model = first["model"]["version"]
    assert (
        first["labeling"]["pending"] == [] and first["labeling"].get("round") is None
    )  # nothing to label yet

    fs.put(
        str(EXAMPLES / "data" / "labeling" / "unlabeled" / "batch-01.csv"), f"{base}/unlabeled/batch-01.csv"
    )
    waiting = wait_for(
        "the round to send tasks to people",
        lambda: (
            (r := failing_fast(status_of(namespace).get("labeling", {}).get("round") or {})).get("phase")
            == "AwaitingPeople"
            and r
        ),
        timeout=600,
        interval=2,
    )
    assert waiting["phase"] == "AwaitingPeople", waiting
    assert waiting["model"] == model and waiting["records"] == POOL_ROWS
    assert waiting["sentToPeople"] == document["spec"]["labeling"]["budget"]
    assert waiting["project"].startswith(label_studio.url_for(host_address()) + "/projects/")
    events = kube_json("get", "events", "-n", namespace)["items"]
    assert any(e["reason"] == "LabelsRequested" for e in events)

    truth = sensor_month(2, POOL_ROWS)["failed"].tolist()
    with label_studio.client() as client:
        seen = answer_as_a_person(client, PROJECT, waiting["sentToPeople"] + waiting["audited"], truth, model)
    assert seen["project"]["model_version"] == model

    merged = wait_for(
        "the labeled partition",
        lambda: (r := failing_fast(status_of(namespace)["labeling"]["round"])).get("phase") == "Merged" and r,
        timeout=300,
        interval=2,
    )
    assert merged["phase"] == "Merged", merged
    assert merged["labeledByPeople"] == waiting["sentToPeople"] + waiting["audited"]
    assert fs.exists(merged["partition"]) and merged["partition"].startswith(f"{base}/labeled/labels-")
    rows = fs.cat(merged["partition"]).decode().strip().splitlines()
    assert len(rows) - 1 == merged["rows"] == waiting["autoLabeled"] + waiting["sentToPeople"]

    retrained = wait_for(
        "the model retrained on the labeled partition",
        lambda: (
            (s := failing_fast(status_of(namespace))).get("run", {}).get("trigger") == "data"
            and s["phase"] == "Packaged"
            and s
        ),
        timeout=600,
        interval=2,
    )
    assert retrained["phase"] == "Packaged", retrained
    assert retrained["model"]["version"] != model
    assert merged["partition"] in retrained["run"]["triggerValue"]
    logs = kubectl("logs", "-n", namespace, "-l", "mlpipeline.dev/step=merge", check=False).stdout
    assert label_studio.token not in logs

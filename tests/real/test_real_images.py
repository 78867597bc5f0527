"""An image pipeline where users run it: the digits (a folder of PNG files per class, the layout of
`format: images`) on the artifact claim, read by an ingest pod, resized and flattened by the
preprocess pod's image transform, a logistic regression tuned and gated by pods on the real node,
and the model pod answering images sent as base64 through the pipeline's Service.

The torch_* families (the digits example's torch_cnn) need the deep image, PyTorch with its CUDA
libraries from PyPI: about 6 GB more to build, pack and import, which `make test` cannot afford on
this machine; they are trained for real by the workload tier (tests/workload/test_deep.py). This
test proves the image data path in pods that those families share."""

from __future__ import annotations

import base64
import os
import shutil

from mlpipeline.protocol import model_object_name

from tests.cluster.conftest import wait_for
from tests.conftest import EXAMPLES, example
from tests.real.conftest import (
    Operator,
    SharedStore,
    answered,
    predict,
    run_to_serving,
    service_url,
    wait_ready,
)

DIGITS = EXAMPLES / "data" / "digits"


def test_an_image_pipeline_trains_and_serves_in_real_pods(
    real_operator: Operator, shared_store: SharedStore
) -> None:
    namespace = shared_store.namespace
    shutil.copytree(DIGITS, shared_store.path / "data" / "digits")
    for folder, _, files in os.walk(shared_store.path / "data" / "digits"):
        for name in [folder, *(os.path.join(folder, f) for f in files)]:
            os.chown(name, 10001, 10001)
    document = example("digits")
    spec = document["spec"]
    spec["data"]["uri"] = "file:///artifacts/data/digits"
    spec["train"]["model"] = "logistic_regression"
    spec["train"]["tune"] = {
        "algorithm": "random",
        "scheduler": "none",
        "trials": 2,
        "maxConcurrent": 1,
        "metric": "accuracy",
        "searchSpace": {"C": {"choice": [0.1, 1.0]}},
    }
    spec["train"]["resources"] = {"cpu": "500m", "memory": "2Gi"}
    spec["serve"] = {"cpu": "100m", "memory": "1Gi"}
    spec["steps"] = {"retries": 0, "timeout": "15m"}
    spec["artifacts"] = {"pvc": "artifacts"}
    status = run_to_serving(namespace, "the digits pipeline serving from real pods", document)
    assert status["model"]["score"] >= 0.9  # what the evaluate pod measured on held-out images

    wait_ready(namespace, model_object_name("digits", status["run"]["id"]), "the image model Ready")
    url = service_url(namespace, "digits")
    samples = [(digit, sorted((DIGITS / str(digit)).glob("*.png"))[-1]) for digit in range(10)]
    records = [{"image": base64.b64encode(path.read_bytes()).decode()} for _, path in samples]
    answer = wait_for("predictions of images", lambda: answered(url, {"records": records}), timeout=60)
    assert answer.status_code == 200, answer.text
    labels = [str(a["label"]) for a in answer.json()]
    right = sum(label == str(digit) for label, (digit, _) in zip(labels, samples, strict=True))
    assert right >= 8, labels  # ten images, one per digit: a model at 0.9 or better gets most right
    refused = predict(url, {"records": [{"image": "not an image"}]})
    assert refused is not None and refused.status_code == 400 and "image" in refused.text

"""The README's first cluster pipeline, exactly as written there ("In a cluster"): the example data
and Secret `make cluster` puts in namespace default (hack/example-data.sh), the operator as `make
run` starts it with the local cluster's defaults (hack/local-operator.sh: its S3 store, the image
built here, pods on real-0), and `kubectl apply -f examples/iris-cluster.yaml` unchanged. It used to
end at once in `Failed: ArtifactStoreNotShared` (issue 26.7); here pods train it from the S3 store
and a model pod answers through the pipeline's Service."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlpipeline.local.server import free_port

from tests.cluster.conftest import kubectl, wait_for
from tests.conftest import EXAMPLES, ROOT
from tests.real.conftest import LIVE_NAMESPACES, Image, answered, failing_fast, service_url, status_of

NAMESPACE = "default"  # where the README's commands put it
SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


@pytest.fixture
def make_run(real_node: Image, tmp_path: Path) -> Iterator[Path]:
    """`make cluster`'s example data, then `make run`'s operator (watching namespace default only,
    so that no other tier's pipelines are its), with the environment a newcomer has: no KUBECONFIG,
    no MLP_* setting."""
    data = subprocess.run(
        [str(ROOT / "hack" / "example-data.sh")], capture_output=True, text=True, timeout=120
    )
    assert data.returncode == 0, data.stdout + data.stderr
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG" and not k.startswith(("MLP_", "AWS_"))}
    log = tmp_path / "operator.log"
    command = [str(ROOT / "hack" / "local-operator.sh"), "--namespace", NAMESPACE]
    command += ["--metrics-port", str(free_port())]
    with log.open("wb") as out:
        operator = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    LIVE_NAMESPACES.append(NAMESPACE)
    try:
        yield log
    finally:
        LIVE_NAMESPACES.remove(NAMESPACE)
        kubectl(
            "delete", "mlpipeline", "iris", "-n", NAMESPACE, "--ignore-not-found", "--wait=true", timeout=180
        )
        operator.send_signal(signal.SIGTERM)
        try:
            operator.wait(timeout=30)
        except subprocess.TimeoutExpired:
            operator.kill()
        kubectl("delete", "secret", "artifacts", "-n", NAMESPACE, "--ignore-not-found")


def test_the_readme_s_first_cluster_pipeline_trains_and_serves_as_written(make_run: Path) -> None:
    kubectl("apply", "-n", NAMESPACE, "-f", str(EXAMPLES / "iris-cluster.yaml"))

    def serving() -> dict[str, Any] | None:
        status = failing_fast(status_of(NAMESPACE))  # a Failed pipeline ends the wait with its message
        return status if status.get("phase") == "Serving" else None

    try:
        status = wait_for("the README's iris serving", serving, timeout=600, interval=3)
    except BaseException:
        print(f"operator log (make run):\n{make_run.read_text()[-4000:]}")
        raise
    assert status["model"]["score"] >= 0.85  # the example's gate
    steps = {s["name"]: s for s in status["run"]["steps"]}
    assert all(
        steps[s]["phase"] == "Succeeded" for s in ("ingest", "preprocess", "tune", "evaluate", "package")
    )
    answer = wait_for(
        "an answer through the Service",
        lambda: answered(service_url(NAMESPACE), {"records": [SETOSA]}),
        timeout=60,
    )
    assert answer.json()[0]["label"] == "setosa"
    assert "the local cluster: store s3://mlpipeline" in make_run.read_text()

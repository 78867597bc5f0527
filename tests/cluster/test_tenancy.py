"""What a platform team lets every team's pipelines run (the chart's pipelines.allowedImages and
pipelines.customCode): an image outside the allowed prefixes, or a `module:function` model where
custom code is off, is refused by the operator before it creates anything — phase Failed, an Event
naming the chart value, no Job — while a pipeline within them runs (issue 25: creating an
MLPipeline is creating pods; the platform decides which)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlpipeline.local.server import free_port

from tests.cluster.conftest import Operator, delete_namespace, kubectl, wait_for
from tests.cluster.test_operator import apply, events, jobs, manifest, pipeline


@pytest.fixture
def locked_down(cluster: Path, tmp_path: Path) -> Iterator[str]:
    """A namespace watched by an operator that allows images under registry.example/team-a/ only
    and no custom code (not t-*: the session's operator must not act here)."""
    namespace = f"pol-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", namespace)
    env = {"MLP_ALLOWED_IMAGES": "registry.example/team-a/", "MLP_CUSTOM_CODE": "false"}
    operator = Operator(
        log=tmp_path / "operator.log", metrics_port=free_port(), namespaces=namespace, env=env
    )
    operator.start()
    try:
        yield namespace
    finally:
        operator.stop()
        delete_namespace(namespace)


def test_images_and_code_the_platform_did_not_allow_are_refused_before_any_pod(locked_down: str) -> None:
    namespace = locked_down
    apply(namespace, manifest("miner", train__image="registry.example/team-a-evil/miner:1"))
    apply(namespace, manifest("code", train__model="os:system"))
    apply(namespace, manifest("allowed", train__image="registry.example/team-a/trainer:2"))

    def phase(name: str) -> str | None:
        return (pipeline(namespace, name).get("status") or {}).get("phase")  # type: ignore[no-any-return]

    wait_for("both refused", lambda: phase("miner") == "Failed" and phase("code") == "Failed", timeout=60)
    miner = pipeline(namespace, "miner")["status"]["message"]
    assert "spec.train.image 'registry.example/team-a-evil/miner:1' is not allowed" in miner
    assert "pipelines.allowedImages" in miner
    assert "pipelines.customCode=false" in pipeline(namespace, "code")["status"]["message"]
    reasons = {(e["involvedObject"]["name"], e["reason"]) for e in events(namespace)}
    assert {("miner", "ImageNotAllowed"), ("code", "CustomCodeNotAllowed")} <= reasons

    allowed = wait_for("the allowed pipeline's first Job", lambda: jobs(namespace), timeout=60)
    assert {j["metadata"]["labels"]["mlpipeline.dev/pipeline"] for j in allowed} == {"allowed"}
    container = allowed[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example/team-a/trainer:2"

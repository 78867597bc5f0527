"""Workload fixtures: pipelines trained for real (Ray Tune, BentoML) once per session."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlpipeline.local.server import ModelServer, free_port

from tests.conftest import EXAMPLES, example, mlpipeline, write_manifest


def train(
    tmp: Path, name: str, document: dict[str, Any] | None = None, data: Path | None = None
) -> dict[str, Any]:
    """``mlpipeline run --no-serve`` of the example ``name`` (or ``document``) on its data set (or
    ``data``); the run's model tag, step outputs, workdir and output."""
    document = document or example(name)
    document["spec"]["data"]["uri"] = str(data or EXAMPLES / "data" / f"{name}.csv")
    manifest = write_manifest(tmp / f"{name}.yaml", document)
    result = mlpipeline("run", "-f", str(manifest), "--workdir", str(tmp / "work"), "--no-serve")
    assert result.returncode == 0, result.stdout + result.stderr
    last = json.loads((tmp / "work" / name / "last-run.json").read_text())
    return {**last, "workdir": tmp / "work", "stdout": result.stdout}


@contextlib.contextmanager
def model_server(
    trained: dict[str, Any], log: Path, env: dict[str, str] | None = None
) -> Iterator[ModelServer]:
    """A real BentoML server of a model ``train`` packaged, ready to answer; stopped afterwards."""
    running = ModelServer(
        tag=trained["model"],
        bentoml_home=trained["workdir"] / "bentoml",
        port=free_port(),
        log=log,
        # BentoML sheds (503) requests it expects to wait over max_latency_ms; a busy test machine must
        # not make tests of answers depend on its load.
        extra_env={**(env or {}), "MLP_MAX_LATENCY_MS": "10000"},
    ).start()
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def customers_model(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return train(tmp_path_factory.mktemp("customers"), "customers")

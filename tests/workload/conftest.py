"""Workload fixtures: pipelines trained for real (Ray Tune, BentoML) once per session."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLES, example, mlpipeline, write_manifest


def train(tmp: Path, name: str, document: dict[str, Any] | None = None) -> dict[str, Any]:
    document = document or example(name)
    document["spec"]["data"]["uri"] = str(EXAMPLES / "data" / f"{name}.csv")
    manifest = write_manifest(tmp / f"{name}.yaml", document)
    result = mlpipeline("run", "-f", str(manifest), "--workdir", str(tmp / "work"), "--no-serve")
    assert result.returncode == 0, result.stdout + result.stderr
    last = json.loads((tmp / "work" / name / "last-run.json").read_text())
    return {**last, "workdir": tmp / "work", "stdout": result.stdout}


@pytest.fixture(scope="session")
def customers_model(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return train(tmp_path_factory.mktemp("customers"), "customers")

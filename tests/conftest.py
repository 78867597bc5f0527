"""Shared fixtures: paths, manifests as dicts, and the CLI as a user runs it."""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

if TYPE_CHECKING:
    from tests.labelstudio import LabelStudio

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
BIN = Path(sys.executable).parent


def example(name: str) -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text()))


def write_manifest(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def mlpipeline(*args: str, timeout: float = 600, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "mlpipeline"), *args], capture_output=True, text=True, timeout=timeout, cwd=cwd
    )


@pytest.fixture
def iris_manifest() -> dict[str, Any]:
    document = example("iris")
    document["spec"]["data"]["uri"] = str(EXAMPLES / "data" / "iris.csv")
    return document


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelStudio]:
    """One real Label Studio server for the session (it takes about 40 s to start)."""
    from tests.labelstudio import start

    yield from start(tmp_path_factory.mktemp("label-studio"))

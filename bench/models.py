"""Model versions for the benchmarks: the iris example trained by the local runner (cached in
.mlpipeline/bench, so a second benchmark run reuses them)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKDIR = ROOT / ".mlpipeline" / "bench"


def trained_versions(count: int) -> list[dict[str, Any]]:
    """``count`` distinct packaged versions of iris: [{"tag", "ingest"}], oldest first."""
    WORKDIR.mkdir(parents=True, exist_ok=True)
    document = yaml.safe_load((ROOT / "examples" / "iris.yaml").read_text())
    document["spec"]["data"]["uri"] = str(ROOT / "examples" / "data" / "iris.csv")
    versions = []
    for trials in range(2, 2 + count):
        document["spec"]["train"]["tune"] |= {"algorithm": "random", "scheduler": "none", "trials": trials}
        manifest = WORKDIR / f"iris-{trials}.yaml"
        manifest.write_text(yaml.safe_dump(document))
        subprocess.run(
            [
                str(Path(sys.executable).with_name("mlpipeline")),
                "run",
                "-f",
                str(manifest),
                "--workdir",
                str(WORKDIR),
                "--no-serve",
            ],
            check=True,
            capture_output=True,
        )
        last = json.loads((WORKDIR / "iris" / "last-run.json").read_text())
        versions.append({"tag": last["model"], "ingest": last["steps"]["ingest"]})
    return versions


def bentoml_home() -> Path:
    return WORKDIR / "bentoml"

"""The local runner end to end: train, gate, package, serve over HTTP, cache, resume."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
from mlpipeline.local.server import free_port

from tests.conftest import BIN, example, mlpipeline, write_manifest


def read_until(process: subprocess.Popen[str], pattern: str, timeout: float) -> tuple[str, re.Match[str]]:
    seen = ""
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            if process.poll() is not None:
                break
            continue
        seen += line
        match = re.search(pattern, line)
        if match:
            return seen, match
    raise AssertionError(f"{pattern!r} not seen; output:\n{seen}")


def test_iris_trains_serves_and_reuses_its_steps(tmp_path: Path, iris_manifest: dict[str, Any]) -> None:
    manifest = write_manifest(tmp_path / "iris.yaml", iris_manifest)
    port = free_port()
    process = subprocess.Popen(
        [
            str(BIN / "mlpipeline"),
            "run",
            "-f",
            str(manifest),
            "--workdir",
            str(tmp_path / "w"),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        seen, match = read_until(process, r"Serving (\S+) at (http://\S+)", timeout=600)
        tag, url = match.groups()
        assert url == f"http://127.0.0.1:{port}"
        for step in ("ingest", "preprocess", "tune", "evaluate", "package"):
            assert re.search(rf"✓ {step}\s", seen), seen
        assert "best params" in seen and tag in seen
        records = [
            {"sepal_length": 6.3, "sepal_width": 3.3, "petal_length": 6.0, "petal_width": 2.5},
            {"sepal_length": 5.0, "sepal_width": None, "petal_length": 1.4, "petal_width": 0.2},
        ]
        answer = httpx.post(f"{url}/predict", json={"records": records}, timeout=30).json()
        assert [a["label"] for a in answer] == ["virginica", "setosa"]
        assert abs(sum(answer[0]["probabilities"].values()) - 1) < 1e-6
        rest, _ = read_until(process, r"Ctrl-C", timeout=30)
        assert "curl -s -X POST" in seen + rest
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=60)
    assert code == 0
    again = mlpipeline("run", "-f", str(manifest), "--workdir", str(tmp_path / "w"), "--no-serve")
    assert again.returncode == 0, again.stdout
    assert again.stdout.count("cached") == 5 and tag in again.stdout
    last = tmp_path / "w" / "iris" / "last-run.json"
    assert json.loads(last.read_text())["cached"] == ["ingest", "preprocess", "tune", "evaluate", "package"]
    forced = mlpipeline(
        "run", "-f", str(manifest), "--workdir", str(tmp_path / "w"), "--no-serve", "--no-cache"
    )
    assert forced.returncode == 0, forced.stdout
    assert "cached" not in forced.stdout and tag in forced.stdout  # every step ran: the same version
    assert json.loads(last.read_text())["cached"] == []


def test_failed_gate_deploys_nothing_and_a_fix_resumes_at_evaluate(tmp_path: Path) -> None:
    document = example("diabetes")
    document["spec"]["data"]["uri"] = str(Path(__file__).parents[2] / "examples" / "data" / "diabetes.csv")
    document["spec"]["evaluate"]["min"] = 0.99
    manifest = write_manifest(tmp_path / "d.yaml", document)
    workdir = tmp_path / "w"
    failed = mlpipeline("run", "-f", str(manifest), "--workdir", str(workdir))
    assert failed.returncode == 3, failed.stdout + failed.stderr
    assert "evaluation gate failed: r2=" in failed.stdout and "below spec.evaluate.min=0.99" in failed.stdout
    assert "package" not in failed.stdout
    assert not list((workdir / "diabetes" / "steps").glob("package-*"))
    assert not (workdir / "diabetes" / "logs" / "package.log").exists()  # forked ahead, never ran
    document["spec"]["evaluate"]["min"] = 0.3
    write_manifest(manifest, document)
    fixed = mlpipeline("run", "-f", str(manifest), "--workdir", str(workdir), "--no-serve")
    assert fixed.returncode == 0, fixed.stdout
    lines = {line.split()[1]: line for line in fixed.stdout.splitlines() if line[:1] in "✓↺"}
    assert all("cached" in lines[s] for s in ("ingest", "preprocess", "tune"))
    assert all("cached" not in lines[s] for s in ("evaluate", "package"))
    evaluate_dir = Path(json.loads((workdir / "diabetes" / "last-run.json").read_text())["steps"]["evaluate"])
    metrics = json.loads((evaluate_dir / "metrics.json").read_text())
    assert metrics["gate"]["passed"] and metrics["metrics"]["r2"] >= 0.3

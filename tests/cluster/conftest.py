"""Cluster fixtures: the real control plane (kube-apiserver, kube-controller-manager, kube-scheduler,
etcd built from Go modules) with kwok's simulated nodes, the CRD, and the operator as a process.

kwok stands in for kubelets only: pods are bound by the real scheduler, Jobs are driven by the real
Job controller and deletions by the real garbage collector; kwok marks pods Running and then
Succeeded (or Failed, for pods annotated with ``mlpipeline.dev/fake-exit-code``), since no container
runtime exists here. Nothing the step containers would compute is checked in this tier.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from mlpipeline.local.server import free_port

from tests.conftest import BIN, ROOT

KUBECONFIG = ROOT / ".cluster" / "kubeconfig"


def kubectl(
    *args: str, check: bool = True, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(BIN / "kubectl"), "--kubeconfig", str(KUBECONFIG), *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
    return result


def kube_json(*args: str) -> Any:
    return json.loads(kubectl(*args, "-o", "json").stdout)


def wait_for(what: str, check: Callable[[], Any], timeout: float = 120, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except AssertionError as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last: {last}")


@pytest.fixture(scope="session")
def cluster() -> Iterator[Path]:
    """The cluster of `make cluster` when it is up (and left up); else one for this session only."""
    script = str(ROOT / "hack" / "cluster.sh")
    already_up = subprocess.run([script, "status"], capture_output=True, timeout=60).returncode == 0
    up = subprocess.run([script, "up"], capture_output=True, text=True, timeout=900)
    assert up.returncode == 0, up.stdout + up.stderr
    kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
    kubectl("wait", "--for=condition=Established", "crd/mlpipelines.mlpipeline.dev", "--timeout=60s")
    yield KUBECONFIG
    if not already_up:
        subprocess.run([script, "down"], capture_output=True, timeout=120)


@dataclass
class Operator:
    """The operator as a process; it watches the namespaces matching ``namespaces`` (each test tier
    has its own prefix, so two operators never reconcile the same pipeline)."""

    log: Path
    metrics_port: int
    namespaces: str = "t-*"
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "KUBECONFIG": str(KUBECONFIG), "MLP_METRICS_PORT": str(self.metrics_port)}
        env["MLP_ARTIFACTS_URI"] = "s3://mlpipeline-test/artifacts"  # never read: kwok runs no step
        env["MLP_POD_NODE_SELECTOR"] = "type=kwok"  # the fake nodes, even when the real one is up
        env.update(self.env)
        command = [str(BIN / "mlpipeline"), "operator", "--namespace", self.namespaces]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        """SIGKILL: no chance to clean up, as when a node dies."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def exited(self) -> int | None:
        return self.process.poll() if self.process else None

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="session")
def shared_operator(cluster: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    running = Operator(log=tmp_path_factory.mktemp("operator") / "operator.log", metrics_port=free_port())
    running.start()
    yield running
    running.stop()


@pytest.fixture
def operator(shared_operator: Operator) -> Iterator[Operator]:
    """The session's operator. The test during which it exits fails with the end of its log; the
    next test gets it restarted, as its Deployment would, instead of failing in turn."""
    if shared_operator.exited() is not None:
        shared_operator.start()
    yield shared_operator
    code = shared_operator.exited()
    if code is not None:
        pytest.fail(f"the operator exited ({code}) during this test:\n{shared_operator.log_tail()}")


@pytest.fixture
def namespace(cluster: Path) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)

"""Cluster fixtures: the real control plane (kube-apiserver, kube-controller-manager, kube-scheduler,
etcd built from Go modules) with kwok's simulated nodes, the CRD, and the operator as a process.

kwok stands in for kubelets only: pods are bound by the real scheduler, Jobs are driven by the real
Job controller and deletions by the real garbage collector; kwok marks pods Running and then
Succeeded (or Failed, for pods annotated with ``mlpipeline.dev/fake-exit-code``). kwok is used here
for what a real node cannot give on a 2-core machine: hundreds of pipelines at once and GPU nodes
(``nvidia.com/gpu`` capacity, labels, taints). Nothing the step containers would compute is checked
in this tier: the real tier (tests/real) runs the steps in pods on a real node.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
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
KUBERAY_CRDS = ("rayjobs.ray.io", "rayclusters.ray.io", "rayservices.ray.io")


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


class FailFast(AssertionError):
    """Raised by a check of `wait_for` when waiting longer cannot help (the pipeline Failed)."""


def wait_for(what: str, check: Callable[[], Any], timeout: float = 120, interval: float = 0.5) -> Any:
    """Calls ``check`` until it returns something true; an AssertionError it raises means "not
    yet", except FailFast, which ends the wait at once."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except FailFast:
            raise
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
    # KubeRay's CRDs are installed by a test for the rest of a session (tests/kuberay.py); one left
    # by an earlier session on a reused cluster is removed before any operator watches it, unless
    # another session's operators may be watching it now (make test's tiers share one cluster:
    # MLP_SHARED_CLUSTER; its serial tests, which run alone, remove them).
    if not os.environ.get("MLP_SHARED_CLUSTER"):
        kubectl("delete", "crd", *KUBERAY_CRDS, "--ignore-not-found", "--wait=true", timeout=120)
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
        # The tests' data folders (pytest's temporary directories) are what the operator may list.
        env["MLP_DATA_PREFIXES"] = f"file://{Path(tempfile.gettempdir()).resolve()}/"
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


SESSION_OPERATORS: list[Operator] = []  # the session-wide operators started so far


@pytest.fixture(scope="session")
def shared_operator(cluster: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    running = Operator(log=tmp_path_factory.mktemp("operator") / "operator.log", metrics_port=free_port())
    yield from session_operator(running)


def session_operator(running: Operator) -> Iterator[Operator]:
    running.start()
    SESSION_OPERATORS.append(running)
    yield running
    SESSION_OPERATORS.remove(running)
    running.stop()


@pytest.fixture(autouse=True)
def session_operators_alive() -> Iterator[None]:
    """A session-wide operator that exits fails the test during which it died (whether or not that
    test used it), with the end of its log; the next test gets it restarted, as its Deployment
    would, instead of failing in turn."""
    for running in SESSION_OPERATORS:
        if running.exited() is not None:
            running.start()
    yield
    died = [(running, code) for running in SESSION_OPERATORS if (code := running.exited()) is not None]
    if died:
        pytest.fail(
            "\n".join(f"an operator exited ({code}) during this test:\n{r.log_tail()}" for r, code in died)
        )


@pytest.fixture
def operator(shared_operator: Operator) -> Operator:
    """The session's operator (see session_operators_alive)."""
    return shared_operator


def delete_namespace(name: str) -> None:
    """Deletes the namespace and waits until it is gone, so that its objects are not still being
    collected while the next tests run."""
    kubectl("delete", "namespace", name, "--wait=true", "--timeout=300s", check=False, timeout=330)


@pytest.fixture
def namespace(cluster: Path) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    yield name
    delete_namespace(name)

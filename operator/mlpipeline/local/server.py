"""A BentoML model server as a local process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

SERVICE = "mlpipeline.serving.service:ModelService"


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(preferred: int | None = None, host: str = "127.0.0.1") -> int:
    if preferred and port_is_free(preferred, host):
        return preferred
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class ModelServer:
    """``bentoml serve`` of one model version on a port of this machine."""

    tag: str
    bentoml_home: Path
    port: int
    log: Path
    host: str = "127.0.0.1"
    extra_env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def private_home(self) -> Path:
        """BentoML keeps its Prometheus multiprocess files under BENTOML_HOME and clears them when a
        server starts: servers side by side each get their own home, sharing the model store."""
        home = self.log.parent / f"bentoml-{self.port}"
        models = home / "models"
        if not models.exists():
            home.mkdir(parents=True, exist_ok=True)
            (self.bentoml_home / "models").mkdir(parents=True, exist_ok=True)
            models.symlink_to((self.bentoml_home / "models").resolve())
        return home

    def start(self) -> ModelServer:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "BENTOML_HOME": str(self.private_home()),
            "MLP_MODEL_TAG": self.tag,
            **self.extra_env,
        }
        bentoml = Path(sys.executable).with_name("bentoml")
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [str(bentoml), "serve", SERVICE, "--host", self.host, "--port", str(self.port)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"the model server exited with {self.process.returncode}; see {self.log}")
            if is_ready(self.url):
                return
            time.sleep(0.3)
        raise TimeoutError(f"the model server was not ready after {timeout:.0f}s; see {self.log}")

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process, signal.SIGTERM, 15)


def is_ready(url: str) -> bool:
    """Whether a model server (or the router in front of it) answers its readiness probe."""
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def stop_group(process: subprocess.Popen[Any], sig: int = signal.SIGINT, timeout: float = 60) -> None:
    """Signals the process group a process leads (started with start_new_session) and waits;
    SIGKILL when it does not end in time."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

"""Debian's Prometheus as a local process, scraping model servers every second. By default its
targets come from a file that is rewritten as local servers come and go (file_sd), each labelled
with its model version; given other scrape configs (e.g. Kubernetes service discovery of model
pods) it scrapes what those find."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from mlpipeline.local.server import free_port

CONFIG = """global:
  scrape_interval: {interval}
  evaluation_interval: {interval}
scrape_configs:
{scrape}"""
FILE_SD = """  - job_name: models
    file_sd_configs:
      - files: ['{targets}']
        refresh_interval: 1s
"""


MISSING = "Prometheus is not installed: run `make prometheus` (or `apt-get install prometheus`)"


def missing() -> str | None:
    """Why a canary rollout cannot be judged on this machine, or None."""
    return None if shutil.which("prometheus") else MISSING


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if not found:
        raise RuntimeError(MISSING)
    return found


@dataclass
class LocalPrometheus:
    directory: Path
    scrape_interval: str = "1s"
    port: int = field(default_factory=free_port)
    scrape_configs: str | None = None  # YAML items of scrape_configs; None: the file of set_targets
    binary: str = field(default_factory=prometheus_binary)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def targets_file(self) -> Path:
        return self.directory / "targets.json"

    def set_targets(self, targets: dict[str, str]) -> None:
        """``{version: "host:port"}``; written atomically so Prometheus never reads half a file."""
        groups = [
            {"targets": [address], "labels": {"version": version}} for version, address in targets.items()
        ]
        partial = self.targets_file.with_suffix(".tmp")
        partial.write_text(json.dumps(groups))
        partial.replace(self.targets_file)

    def start(self, targets: dict[str, str] | None = None) -> LocalPrometheus:
        """Starts and waits until every target of ``targets`` was scraped, or with its own scrape
        configs until it is ready."""
        self.directory.mkdir(parents=True, exist_ok=True)
        scrape = self.scrape_configs
        if scrape is None:
            targets = targets or {}
            self.set_targets(targets)
            scrape = FILE_SD.format(targets=self.targets_file)
        config = self.directory / "prometheus.yml"
        config.write_text(CONFIG.format(interval=self.scrape_interval, scrape=scrape))
        with (self.directory / "prometheus.log").open("ab") as log:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.directory / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=1d",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Prometheus exited; see {self.directory / 'prometheus.log'}")
            if self.scraping(len(targets)) if targets is not None else self.ready():
                return self
            time.sleep(0.2)
        self.stop()
        raise TimeoutError("Prometheus did not scrape its targets within 30s")

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def scraping(self, expected: int) -> bool:
        """Ready, and every target scraped successfully at least once."""
        try:
            response = httpx.get(f"{self.url}/api/v1/targets", timeout=1)
        except httpx.HTTPError:
            return False
        if response.status_code != 200:
            return False
        active = response.json()["data"]["activeTargets"]
        return len(active) == expected and all(t.get("health") == "up" for t in active)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()

"""The model server's monitor thread: every interval it writes the captured samples to the store,
measures drift over the recent window against the training profile the model carries, exports it
as gauges and writes the HTML report next to the captures.

Configured by the environment the operator or the local runner sets from ``spec.monitoring``:
MLP_PIPELINE, MLP_CAPTURE_URI (unset: nothing written), MLP_CAPTURE_RATE, MLP_CAPTURE_BUFFER,
MLP_CAPTURE_MAX_BYTES_PER_HOUR, MLP_CAPTURE_RETENTION (seconds), MLP_DRIFT_WINDOW,
MLP_DRIFT_MIN_SAMPLES, MLP_DRIFT_THRESHOLD, MLP_MONITOR_INTERVAL (seconds). Every hour (and at
start) it deletes the capture's hour partitions older than the retention."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mlpipeline import store
from mlpipeline.monitoring.drift import DriftReport, measure
from mlpipeline.monitoring.report import render
from mlpipeline.protocol import drift_report_uri, stamp
from mlpipeline.serving.capture import MAX_BYTES_PER_HOUR, RETENTION, Capture, Count, expire

log = logging.getLogger("mlpipeline.monitor")


@dataclass(frozen=True)
class MonitorSettings:
    pipeline: str = ""
    capture_uri: str | None = None
    rate: float = 0.1
    buffer: int = 10_000
    max_bytes_per_hour: int = MAX_BYTES_PER_HOUR
    retention: float = RETENTION  # seconds
    window: float = 3600.0
    min_samples: int = 100
    threshold: float = 0.2
    interval: float = 30.0

    @classmethod
    def from_env(cls) -> MonitorSettings:
        env = os.environ.get
        return cls(
            pipeline=env("MLP_PIPELINE", ""),
            capture_uri=env("MLP_CAPTURE_URI") or None,
            rate=float(env("MLP_CAPTURE_RATE", "0.1")),
            buffer=int(env("MLP_CAPTURE_BUFFER", "10000")),
            max_bytes_per_hour=int(env("MLP_CAPTURE_MAX_BYTES_PER_HOUR", str(MAX_BYTES_PER_HOUR))),
            retention=float(env("MLP_CAPTURE_RETENTION", str(RETENTION))),
            window=float(env("MLP_DRIFT_WINDOW", "3600")),
            min_samples=int(env("MLP_DRIFT_MIN_SAMPLES", "100")),
            threshold=float(env("MLP_DRIFT_THRESHOLD", "0.2")),
            interval=float(env("MLP_MONITOR_INTERVAL", "30")),
        )


Publish = Callable[[DriftReport], None]
EXPIRE_EVERY = 3600.0  # seconds between two deletions of old captures (at start, then hourly)


class Monitor:
    def __init__(
        self, settings: MonitorSettings, version: str, profile: dict[str, Any], count: Count, publish: Publish
    ):
        self.settings = settings
        self.version = version
        self.profile = profile
        self.publish = publish
        self.capture = Capture(
            version,
            settings.capture_uri,
            rate=settings.rate,
            source=socket.gethostname(),
            buffer=settings.buffer,
            max_bytes_per_hour=settings.max_bytes_per_hour,
            count=count,
        )
        self.expired_at: float | None = None  # when old captures were last deleted
        self.last: DriftReport | None = None
        self.measured_at: str | None = None
        self._stop = threading.Event()

    def start(self) -> Monitor:
        threading.Thread(target=self._loop, name="mlpipeline-monitor", daemon=True).start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.interval):
            try:
                self.tick()
            except Exception:  # the monitor must never take the server down
                log.exception("monitoring tick failed")

    def tick(self, now: float | None = None) -> DriftReport:
        self.capture.flush()
        self._expire(now or time.time())
        records, predictions = self.capture.window(self.settings.window)
        report = measure(self.profile, records, predictions, self.settings.min_samples)
        self.last, self.measured_at = report, stamp(datetime.now(UTC))
        self.publish(report)
        if self.settings.capture_uri:
            page = render(
                report, self.settings.pipeline, self.version, self.settings.threshold, self.measured_at
            )
            try:
                store.write_bytes(drift_report_uri(self.settings.capture_uri, self.version), page.encode())
            except Exception:
                log.warning("cannot write the drift report to %s", self.settings.capture_uri)
        return report

    def _expire(self, now: float) -> None:
        """Deletes old captures at start, then hourly; never in the way of measuring drift."""
        if not self.settings.capture_uri or (self.expired_at and now - self.expired_at < EXPIRE_EVERY):
            return
        self.expired_at = now
        try:
            expire(self.settings.capture_uri, self.settings.retention, now)
        except Exception:
            log.exception("cannot delete old captures under %s", self.settings.capture_uri)

    def summary(self) -> dict[str, Any]:
        """The last measurement, as /drift answers it."""
        report = self.last or measure(self.profile, [], [], self.settings.min_samples)
        return {
            "version": self.version,
            "measuredAt": self.measured_at,
            "samples": report.samples,
            "minSamples": report.min_samples,
            "threshold": self.settings.threshold,
            "features": {f.name: f.value for f in report.features},
            "report": drift_report_uri(self.settings.capture_uri, self.version)
            if self.settings.capture_uri
            else None,
        }

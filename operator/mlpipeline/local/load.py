"""A bounded load generator: POSTs prediction requests at a steady rate from a few threads and
counts the answers; used by the local rollout (so the canary has traffic to be judged on), the
tests and the benchmarks. Only ever aimed at servers on this machine."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

REFUSED = 598  # the status counted for a connection that could not be made (refused: nothing listens)
TRANSPORT = 599  # for any other transport error (a timeout, a connection closed mid-request)


@dataclass
class LoadStats:
    ok: int = 0  # answered below 500
    failed: int = 0  # answered 5xx, refused or lost
    refused: int = 0  # of failed: no connection could be made
    latencies: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, status: int, seconds: float) -> None:
        with self.lock:
            if status < 500:
                self.ok += 1
            else:
                self.failed += 1
                self.refused += status == REFUSED
            self.latencies.append(seconds)

    @property
    def total(self) -> int:
        return self.ok + self.failed


@dataclass
class Load:
    url: str
    records: list[dict[str, Any]]
    rate: float = 20.0  # requests per second, all threads together
    threads: int = 4
    max_seconds: float = 600.0
    # False: a new connection per request, so that a Service's per-connection balancing (kube-proxy)
    # spreads the requests over its pods as their ratio says, as many independent clients would.
    keepalive: bool = True
    headers: dict[str, str] = field(default_factory=dict)  # on every request
    stats: LoadStats = field(default_factory=LoadStats)
    on_answer: Callable[[int, float], None] | None = None
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _workers: list[threading.Thread] = field(default_factory=list, repr=False)

    def _work(self, index: int) -> None:
        interval = self.threads / self.rate
        deadline = time.monotonic() + self.max_seconds
        next_at = time.monotonic() + index * interval / self.threads
        limits = httpx.Limits(max_keepalive_connections=20 if self.keepalive else 0)
        with httpx.Client(timeout=30, limits=limits) as client:
            i = index
            while not self._stop.is_set() and time.monotonic() < deadline:
                pause = next_at - time.monotonic()
                if pause > 0 and self._stop.wait(pause):
                    break
                next_at += interval
                record = self.records[i % len(self.records)]
                i += self.threads
                started = time.monotonic()
                try:
                    answer = client.post(self.url, json={"records": [record]}, headers=self.headers)
                    status = answer.status_code
                except httpx.ConnectError:
                    status = REFUSED
                except httpx.HTTPError:
                    status = TRANSPORT
                took = time.monotonic() - started
                self.stats.add(status, took)
                if self.on_answer:
                    self.on_answer(status, took)

    def start(self) -> Load:
        self._workers = [
            threading.Thread(target=self._work, args=(i,), daemon=True) for i in range(self.threads)
        ]
        for worker in self._workers:
            worker.start()
        return self

    def stop(self) -> LoadStats:
        self._stop.set()
        for worker in self._workers:
            worker.join(35)
        return self.stats

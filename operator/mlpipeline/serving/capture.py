"""What the model server serves, sampled: kept in memory for drift, written to the artifact store for
the next training and for people to look at.

Never in a prediction's way: ``offer`` only draws a random number and appends to bounded deques
under a lock; writing happens in the monitor thread (``flush``). When the write buffer is full, or
the store cannot be written, samples are dropped and counted, requests are not.

Written as JSON Lines, one file per flush, partitioned by version and hour so that a reader lists
only what it needs: ``<uri>/version=<v>/hour=<YYYY-MM-DDTHH>/<source>-<epoch ms>.jsonl``, each line
``{"at": <RFC 3339>, "version": v, "features": {...}, "prediction": ...}``.

Records of synthetic requests (``Synthetic``: mlpipeline's own load, see protocol.SYNTHETIC_HEADER)
are never captured: they would pass held-out training rows off as served data.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlpipeline import store
from mlpipeline.protocol import stamp

Count = Callable[[str, int], None]  # outcome ("written" or "dropped"), how many


class Synthetic(dict[str, Any]):
    """A record of a synthetic request: predicted and counted like any other, never captured."""


def prediction_of(answer: dict[str, Any]) -> Any:
    return answer["label"] if "label" in answer else answer.get("prediction")


@dataclass
class Capture:
    version: str
    uri: str | None  # None: kept for drift only, nothing written
    rate: float = 0.1
    source: str = "server"  # the pod, so that replicas never write the same file
    buffer: int = 10_000  # samples awaiting a write
    window_size: int = 50_000  # recent samples kept for drift
    count: Count = lambda outcome, n: None
    rng: random.Random = field(default_factory=random.Random)
    _pending: list[dict[str, Any]] = field(default_factory=list)
    _recent: deque[tuple[float, dict[str, Any], Any]] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._recent = deque(maxlen=self.window_size)

    def offer(self, records: Sequence[dict[str, Any]], answers: Sequence[dict[str, Any]]) -> None:
        now = time.time()
        dropped = 0
        with self._lock:
            for record, answer in zip(records, answers, strict=False):
                if isinstance(record, Synthetic) or self.rng.random() >= self.rate:
                    continue
                prediction = prediction_of(answer)
                self._recent.append((now, record, prediction))
                if self.uri is None:
                    continue
                if len(self._pending) >= self.buffer:
                    dropped += 1
                    continue
                self._pending.append({"at": now, "features": record, "prediction": prediction})
        if dropped:
            self.count("dropped", dropped)

    def window(self, seconds: float, now: float | None = None) -> tuple[list[dict[str, Any]], list[Any]]:
        """The samples of the last ``seconds``: their records and predictions."""
        since = (now or time.time()) - seconds
        with self._lock:
            recent = [(r, p) for at, r, p in self._recent if at >= since]
        return [r for r, _ in recent], [p for _, p in recent]

    def flush(self) -> int:
        """Writes what is pending as one file; returns how many were written."""
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch or self.uri is None:
            return 0
        first = datetime.fromtimestamp(batch[0]["at"], UTC)
        name = (
            f"version={self.version}/hour={first:%Y-%m-%dT%H}/{self.source}-{int(time.time() * 1000)}.jsonl"
        )
        lines = [
            json.dumps(
                {
                    "at": stamp(datetime.fromtimestamp(s["at"], UTC)),
                    "version": self.version,
                    "features": s["features"],
                    "prediction": s["prediction"],
                },
                default=str,
            )
            for s in batch
        ]
        try:
            store.write_bytes(store.join(self.uri, name), ("\n".join(lines) + "\n").encode())
        except Exception:  # an unreachable store drops samples, never fails the server
            self.count("dropped", len(batch))
            return 0
        self.count("written", len(batch))
        return len(batch)

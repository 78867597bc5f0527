"""What the model server serves, sampled: kept in memory for drift, written to the artifact store for
the next training and for people to look at.

Never in a prediction's way: ``offer`` only draws a random number and appends to bounded deques
under a lock; writing happens in the monitor thread (``flush``). When the write buffer is full, or
the store cannot be written, samples are dropped and counted, requests are not.

Written as JSON Lines, one file per flush, partitioned by version and hour so that a reader lists
only what it needs: ``<uri>/version=<v>/hour=<YYYY-MM-DDTHH>/<source>-<epoch ms>.jsonl``, each line
``{"at": <RFC 3339>, "version": v, "features": {...}, "prediction": ...}``.

Bounded: a server writes at most ``max_bytes_per_hour`` per hour partition (what is beyond is counted
``capped``), and ``expire`` deletes the hour partitions, of every version, older than the retention.

Records of synthetic requests (``Synthetic``: mlpipeline's own load, see protocol.SYNTHETIC_HEADER)
are never captured: they would pass held-out training rows off as served data.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlpipeline import store
from mlpipeline.protocol import stamp

log = logging.getLogger("mlpipeline.monitor")

Count = Callable[[str, int], None]  # outcome ("written", "dropped" or "capped"), how many
MAX_BYTES_PER_HOUR = 32 * 1024 * 1024  # per server: at a 0.1 sample rate, ~450 requests/s of 200 B
RETENTION = 30 * 24 * 3600.0  # seconds an hour partition is kept
HOUR = re.compile(r"/version=[^/]+/hour=(\d{4}-\d{2}-\d{2}T\d{2})$")


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
    max_bytes_per_hour: int = MAX_BYTES_PER_HOUR  # written by this server into one hour partition
    count: Count = lambda outcome, n: None
    rng: random.Random = field(default_factory=random.Random)
    _pending: list[dict[str, Any]] = field(default_factory=list)
    _recent: deque[tuple[float, dict[str, Any], Any]] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _written: dict[str, int] = field(default_factory=dict)  # bytes by hour partition

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
        hour = f"{datetime.fromtimestamp(batch[0]['at'], UTC):%Y-%m-%dT%H}"
        name = f"version={self.version}/hour={hour}/{self.source}-{int(time.time() * 1000)}.jsonl"
        room = self.max_bytes_per_hour - self._written.get(hour, 0)
        lines: list[bytes] = []
        for sample in batch:
            line = self._line(sample)
            if len(line) > room:
                break
            lines.append(line)
            room -= len(line)
        if len(lines) < len(batch):
            self.count("capped", len(batch) - len(lines))
        if not lines:
            return 0
        data = b"".join(lines)
        try:
            store.write_bytes(store.join(self.uri, name), data)
        except Exception:  # an unreachable store drops samples, never fails the server
            self.count("dropped", len(lines))
            return 0
        self._written = {hour: self._written.get(hour, 0) + len(data)}  # earlier hours are done
        self.count("written", len(lines))
        return len(lines)

    def _line(self, sample: dict[str, Any]) -> bytes:
        record = {
            "at": stamp(datetime.fromtimestamp(sample["at"], UTC)),
            "version": self.version,
            "features": sample["features"],
            "prediction": sample["prediction"],
        }
        return (json.dumps(record, default=str) + "\n").encode()


def expire(uri: str, retention: float, now: float | None = None) -> int:
    """Deletes the hour partitions of every version under ``uri`` that ended more than ``retention``
    seconds ago; returns how many. A failure is logged, never raised: the next call tries again."""
    oldest = (now or time.time()) - retention
    fs, root = store.filesystem(uri)
    removed = 0
    try:
        partitions = fs.glob(f"{root.rstrip('/')}/version=*/hour=*")
    except (OSError, ValueError) as exc:
        log.warning("cannot list the captures under %s: %s", uri, exc)
        return 0
    for path in partitions:
        match = HOUR.search("/" + str(path).lstrip("/"))
        if not match:
            continue
        start = datetime.strptime(match.group(1), "%Y-%m-%dT%H").replace(tzinfo=UTC).timestamp()
        if start + 3600 > oldest:
            continue
        try:
            fs.rm(path, recursive=True)
            removed += 1
        except FileNotFoundError:  # another replica was first
            pass
        except OSError as exc:
            log.warning("cannot delete the captures %s: %s", path, exc)
    return removed

"""Deadlines that no event announces (a pod stuck pending, a canary analysis, a scheduled time), for
every pipeline at once: one heap and one thread, however many pipelines wait — not a thread per
pending wake-up. A key has at most one deadline, its earliest: asking for a later one while an
earlier one is pending changes nothing (the reconciliation it triggers asks again for what it still
needs), asking for an earlier one replaces it."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
K = TypeVar("K", bound=Hashable)


class Wakeups(Generic[K]):
    def __init__(self, fire: Callable[[K], None], clock: Callable[[], float] = time.monotonic):
        self._fire = fire
        self._clock = clock
        self._heap: list[tuple[float, int, K]] = []
        self._due: dict[K, float] = {}  # each key's one pending deadline
        self._order = itertools.count()  # ties in time fire in the order asked
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def after(self, key: K, seconds: float) -> None:
        """``fire(key)`` in ``seconds``, unless an earlier deadline of ``key`` is pending."""
        with self._changed:
            due = self._clock() + seconds
            pending = self._due.get(key)
            if pending is not None and pending <= due:
                return
            self._due[key] = due
            heapq.heappush(self._heap, (due, next(self._order), key))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="wakeups", daemon=True)
                self._thread.start()
            self._changed.notify()

    def cancel(self, key: K) -> None:
        with self._changed:
            self._due.pop(key, None)  # its heap entry is skipped when it comes up

    def pending(self) -> int:
        with self._changed:
            return len(self._due)

    def _next(self) -> K:
        """Blocks until a key's deadline has come; that key, its deadline cleared."""
        with self._changed:
            while True:
                if not self._heap:
                    self._changed.wait()
                    continue
                due, _, key = self._heap[0]
                if self._due.get(key) != due:  # replaced by an earlier deadline, or cancelled
                    heapq.heappop(self._heap)
                    continue
                wait = due - self._clock()
                if wait > 0:
                    self._changed.wait(wait)
                    continue
                heapq.heappop(self._heap)
                del self._due[key]
                if len(self._heap) > 64 and len(self._heap) > 4 * len(self._due):
                    self._heap = [e for e in self._heap if self._due.get(e[2]) == e[0]]
                    heapq.heapify(self._heap)
                return key

    def _run(self) -> None:
        while True:
            key = self._next()
            try:
                self._fire(key)
            except Exception:  # the thread serves every pipeline: one failure stops none of the others
                log.exception("waking %s failed", key)

"""The load generator counts what a client sees: answers below 500 as ok, 5xx and transport errors as
failed, and a connection nothing accepts also as refused."""

from __future__ import annotations

import time

from mlpipeline.local.load import REFUSED, Load, LoadStats
from mlpipeline.local.server import free_port


def test_statuses_are_counted_as_ok_failed_and_refused() -> None:
    stats = LoadStats()
    for status in (200, 400, 502, REFUSED, 599):
        stats.add(status, 0.01)
    assert (stats.ok, stats.failed, stats.refused, stats.total) == (2, 3, 1, 5)


def test_a_port_nothing_listens_on_counts_refused_connections() -> None:
    load = Load(f"http://127.0.0.1:{free_port()}/predict", [{"x": 1.0}], rate=50, threads=2).start()
    deadline = time.monotonic() + 30  # a loaded machine may take a while to make the first try
    while load.stats.total < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    stats = load.stop()
    assert stats.total > 0 and stats.refused == stats.failed == stats.total and stats.ok == 0

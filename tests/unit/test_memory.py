"""The operator hands freed memory back after a burst (controller/memory.py), measured on a real
process's resident size."""

from __future__ import annotations

import subprocess
import sys

import pytest
from mlpipeline.controller import memory

BURST = """
import sys, threading
from mlpipeline.controller import memory

def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20

memory.limit_arenas()
kept = []
def burst():  # a burst's bodies, then all but one in twenty dropped: the heap stays fragmented
    bodies = [bytes(2048) for _ in range(40_000)]
    kept.extend(bodies[::20])
threads = [threading.Thread(target=burst) for _ in range(4)]
[t.start() for t in threads]; [t.join() for t in threads]
before = rss_mb()
if sys.argv[1] == "release":
    memory.release_freed()
print(before, rss_mb())
"""


def resident(mode: str) -> tuple[float, float]:
    done = subprocess.run([sys.executable, "-c", BURST, mode], capture_output=True, text=True, check=True)
    before, after = map(float, done.stdout.split())
    return before, after


@pytest.mark.skipif(memory._libc is None, reason="glibc only")
def test_memory_freed_after_a_burst_is_handed_back() -> None:
    _, kept = resident("keep")
    assert kept > 150  # without it most of the burst's 330 MB stay resident, for 16 MB still held
    peak, released = resident("release")
    assert peak > 150 and released < peak / 2, (peak, released)

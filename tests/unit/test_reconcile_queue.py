"""Events for one pipeline arriving while it is being reconciled: they wait for no thread and cost
one more reconciliation, never a concurrent one."""

from __future__ import annotations

import threading
import time

import kopf
from mlpipeline.controller.cache import ClusterCache
from mlpipeline.controller.reconciler import Reconciler
from mlpipeline.kube.client import Kube
from mlpipeline.kube.jobs import OperatorSettings


class Counting(Reconciler):
    """The real queueing around a reconciliation body that records its calls and blocks until told."""

    def __init__(self) -> None:
        super().__init__(
            Kube(kopf.ConnectionInfo(server="http://127.0.0.1:9")), OperatorSettings(), ClusterCache()
        )
        self.release = threading.Event()
        self.calls: list[tuple[str, str]] = []
        self.inside = 0
        self.most_inside = 0

    def _reconcile(self, namespace: str, name: str) -> str:
        self.calls.append((namespace, name))
        self.inside += 1
        self.most_inside = max(self.most_inside, self.inside)
        self.release.wait(10)
        self.inside -= 1
        return "ok"


def test_a_burst_of_events_during_a_reconciliation_costs_one_more_and_blocks_no_thread() -> None:
    reconciler = Counting()
    first = threading.Thread(target=reconciler.reconcile, args=("ns", "iris"))
    first.start()
    while not reconciler.calls:
        time.sleep(0.01)
    for _ in range(5):
        reconciler.reconcile("ns", "iris")  # returns at once: the running thread will go again
    assert reconciler.calls == [("ns", "iris")] and not reconciler.release.is_set()
    other = threading.Thread(target=reconciler.reconcile, args=("ns", "digits"))
    other.start()
    while len(reconciler.calls) < 2:
        time.sleep(0.01)
    reconciler.release.set()
    first.join(10)
    other.join(10)
    assert reconciler.calls.count(("ns", "iris")) == 2 and reconciler.calls.count(("ns", "digits")) == 1
    assert reconciler.most_inside == 2, "two pipelines at once, never one pipeline twice"
    reconciler.reconcile("ns", "iris")
    assert reconciler.calls.count(("ns", "iris")) == 3, "once it is done, the next event reconciles again"


def test_enqueued_events_wait_for_nothing_and_coalesce() -> None:
    """What the kopf handlers do: enqueue returns at once, however busy the pool is."""
    reconciler = Counting()
    for _ in range(5):
        reconciler.enqueue("ns", "iris")
    assert not reconciler.release.is_set()  # the handler returned though the first pass is blocked
    while not reconciler.calls:
        time.sleep(0.01)
    reconciler.enqueue("ns", "iris")
    reconciler.release.set()
    reconciler.pool.shutdown(wait=True)
    assert 1 < reconciler.calls.count(("ns", "iris")) <= 3, "each burst coalesced into one more pass"

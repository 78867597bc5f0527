"""Wake-ups for thousands of pipelines on one thread (issue 25/26.2: a threading.Timer per pending
wake-up made a thread per waiting pipeline): the earliest deadline of a key wins, a cancelled key
never fires, a failing callback stops no other key, and the thread count does not grow."""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable

from mlpipeline.controller.wakeups import Wakeups


class Fired:
    def __init__(self) -> None:
        self.keys: list[Hashable] = []
        self.at: dict[Hashable, float] = {}
        self.changed = threading.Condition()

    def __call__(self, key: Hashable) -> None:
        with self.changed:
            self.keys.append(key)
            self.at[key] = time.monotonic()
            self.changed.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Hashable]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.keys) >= count, timeout), self.keys
            return list(self.keys)


def test_keys_fire_in_deadline_order_once_each() -> None:
    fired = Fired()
    wakeups = Wakeups(fired)
    start = time.monotonic()
    wakeups.after("c", 0.3)
    wakeups.after("a", 0.1)
    wakeups.after("b", 0.2)
    assert fired.wait_for(3) == ["a", "b", "c"]
    assert fired.at["a"] - start >= 0.1 and fired.at["c"] - start >= 0.3
    time.sleep(0.2)
    assert fired.keys == ["a", "b", "c"] and wakeups.pending() == 0


def test_the_earliest_deadline_of_a_key_wins() -> None:
    fired = Fired()
    wakeups = Wakeups(fired)
    start = time.monotonic()
    wakeups.after("p", 0.5)
    wakeups.after("p", 0.1)  # earlier: replaces
    wakeups.after("p", 5.0)  # later while one is pending: ignored
    assert fired.wait_for(1) == ["p"]
    assert fired.at["p"] - start < 0.45
    time.sleep(0.6)
    assert fired.keys == ["p"]  # the replaced deadline does not fire as well
    wakeups.after("p", 0.05)  # once fired, a new deadline is taken
    assert fired.wait_for(2) == ["p", "p"]


def test_a_cancelled_key_never_fires_and_others_still_do() -> None:
    fired = Fired()
    wakeups = Wakeups(fired)
    wakeups.after("gone", 0.1)
    wakeups.after("kept", 0.2)
    wakeups.cancel("gone")
    assert fired.wait_for(1) == ["kept"]
    time.sleep(0.1)
    assert fired.keys == ["kept"]


def test_a_failing_callback_stops_no_other_wake_up() -> None:
    fired = Fired()

    def fire(key: Hashable) -> None:
        if key == "bad":
            raise RuntimeError("boom")
        fired(key)

    wakeups = Wakeups(fire)
    wakeups.after("bad", 0.05)
    wakeups.after("good", 0.1)
    assert fired.wait_for(1) == ["good"]


def test_five_thousand_waiting_pipelines_cost_one_thread() -> None:
    fired = Fired()
    wakeups = Wakeups(fired)
    before = threading.active_count()
    for i in range(5000):
        wakeups.after(("team", f"p{i}"), 30.0 + i / 1000)
    wakeups.after(("team", "soon"), 0.05)
    assert threading.active_count() <= before + 1
    assert wakeups.pending() == 5001
    assert fired.wait_for(1) == [("team", "soon")]

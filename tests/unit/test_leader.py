"""The elected replica stops acting before a standby may take the Lease: an unexpected error while
renewing, a renewal that does not answer in time or a renew thread that ends all end the process
(through the exit function given to ``keep``, observed here instead of exiting).

These are tests of the elector's logic and timing alone, so the Lease API is a fake (one Lease in
memory, with the API server's resourceVersion check); the real API server, a killed leader and a
standby taking over are tests/cluster/test_ha.py's."""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from mlpipeline.controller.leader import LeaderElection
from mlpipeline.kube.connection import ApiError

NAMESPACE = "ops"


class FakeLeases:
    """The Lease API of one namespace, in memory: GET, POST and PUT of the elector's Lease, a PUT
    refused (409) unless it carries the stored resourceVersion. ``fault`` is called before each
    request is answered (it may raise or block: the API server failing or not answering)."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.lock = threading.Lock()
        self.commits: list[float] = []  # when each write was stored (monotonic)
        self.calls: list[tuple[str, float | None]] = []  # (method, timeout) of each request
        self.fault: Callable[[str], None] | None = None

    def request(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> Any:
        self.calls.append((method, timeout))
        if self.fault:
            self.fault(method)
        with self.lock:
            if method == "GET":
                if self.lease is None:
                    raise ApiError(404, "Not Found")
                return copy.deepcopy(self.lease)
            sent = body["metadata"].get("resourceVersion")
            if (method == "POST") != (self.lease is None) or (
                self.lease is not None and sent != self.lease["metadata"]["resourceVersion"]
            ):
                raise ApiError(409, "Conflict")
            self.version += 1
            self.lease = copy.deepcopy(body)
            self.lease["metadata"]["resourceVersion"] = str(self.version)
            self.commits.append(time.monotonic())
            return copy.deepcopy(self.lease)

    def holder(self) -> str:
        assert self.lease is not None
        return str(self.lease["spec"]["holderIdentity"])


class Exits:
    """The exit function given to ``keep``: records its calls instead of ending the process."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.called = threading.Event()

    def __call__(self) -> None:
        self.times.append(time.monotonic())
        self.called.set()


def leading(leases: FakeLeases, duration: float) -> LeaderElection:
    election = LeaderElection(leases, NAMESPACE, duration=duration)
    election.acquire(retry=0.05)
    assert leases.holder() == election.identity
    return election


def unversioned(leases: FakeLeases) -> None:
    assert leases.lease is not None
    del leases.lease["metadata"]["resourceVersion"]  # what no API server sends


def not_json(method: str) -> None:
    if method == "GET":
        json.loads(b"<html>502 Bad Gateway</html>")  # what a proxy in the way may answer


def test_a_renewal_that_succeeds_keeps_leading_and_a_release_hands_the_lease_over() -> None:
    leases = FakeLeases()
    election = leading(leases, duration=1.5)
    exits = Exits()
    thread = election.keep(exits)
    time.sleep(2.5)  # more than the Lease's duration: it was renewed, every half second
    assert not exits.called.is_set()
    assert len(leases.commits) >= 4 and leases.holder() == election.identity
    assert all(0 < t <= 1.0 for m, t in leases.calls[2:] if t is not None)  # below the 1 s deadline
    election.release()
    assert leases.holder() == ""
    thread.join(1)
    assert not thread.is_alive()
    time.sleep(1.2)  # past the renew deadline: a released Lease is not a missed renewal
    assert not exits.called.is_set()


@pytest.mark.parametrize(
    "break_lease",
    [
        pytest.param(lambda leases: setattr(leases, "fault", not_json), id="a reply that is not JSON"),
        pytest.param(unversioned, id="a Lease without version"),
    ],
)
def test_an_unexpected_error_while_renewing_ends_the_process(
    break_lease: Callable[[FakeLeases], None], caplog: pytest.LogCaptureFixture
) -> None:
    leases = FakeLeases()
    election = leading(leases, duration=1.5)
    exits = Exits()
    with caplog.at_level(logging.ERROR, logger="mlpipeline.operator"):
        thread = election.keep(exits)
        break_lease(leases)
        assert exits.called.wait(3), "the renew thread died and the process kept acting"
        thread.join(1)
    assert not thread.is_alive()
    assert len(exits.times) == 1
    assert "renewing the Lease failed unexpectedly" in caplog.text


def test_a_renewal_that_does_not_answer_ends_the_process_before_a_standby_may_take_the_lease(
    caplog: pytest.LogCaptureFixture,
) -> None:
    leases = FakeLeases()
    election = leading(leases, duration=3.0)  # renew deadline: 2 s
    answer = threading.Event()

    def hang(method: str) -> None:
        if method == "PUT":
            answer.wait(10)  # the API server takes the request and does not answer

    exits = Exits()
    with caplog.at_level(logging.ERROR, logger="mlpipeline.operator"):
        election.keep(exits)
        leases.fault = hang
        try:
            assert exits.called.wait(4), "a renewal blocked past the deadline and the process kept acting"
        finally:
            answer.set()
    # A standby takes the Lease once it has not changed for its duration, counted from when it
    # first saw the last write (at the earliest, when it was stored).
    assert exits.times[0] < leases.commits[-1] + 3.0
    assert exits.times[0] >= leases.commits[-1] + 2.0 - 0.1  # not before the deadline either
    assert "could not renew the Lease within its renew deadline" in caplog.text
    blocked = [t for m, t in leases.calls if m == "PUT"][-1]
    assert blocked is not None and 0 < blocked < 2.0  # the call's own timeout, below the deadline
    time.sleep(0.5)
    assert len(exits.times) == 1


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_renew_thread_that_ends_ends_the_process(caplog: pytest.LogCaptureFixture) -> None:
    leases = FakeLeases()
    election = leading(leases, duration=1.5)

    def vanish(method: str) -> None:
        raise SystemExit  # not an Exception: ends the thread past any ``except Exception``

    exits = Exits()
    with caplog.at_level(logging.ERROR, logger="mlpipeline.operator"):
        election.keep(exits)
        leases.fault = vanish
        assert exits.called.wait(3), "the renew thread ended and the process kept acting"
    assert len(exits.times) == 1
    assert "the Lease's renew thread ended" in caplog.text


def test_the_renew_deadline_is_below_the_lease_duration() -> None:
    assert LeaderElection(FakeLeases(), NAMESPACE).renew_deadline == 10.0
    with pytest.raises(ValueError, match="renew deadline"):
        LeaderElection(FakeLeases(), NAMESPACE, duration=15, renew_deadline=15)

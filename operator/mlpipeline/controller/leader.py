"""One active operator among replicas: a coordination.k8s.io Lease, as Kubernetes' own controllers
use. A replica that does not hold the Lease waits before it watches anything; the holder renews it
and exits at once when it cannot (the pod restarts as a standby), so two never act together. A
holder that stops renewing — killed, partitioned — is replaced once the Lease has not changed for
its duration, measured on the standby's own clock (no clock is compared to another).

The holder stops acting (its exit function ends the process) once it has not renewed the Lease
for its renew deadline (two thirds of the duration, as client-go's renewDeadline), counted from the
start of the last renewal that was stored: a standby counts from when it saw that renewal, so the
holder is gone before any standby may take over. A watchdog thread enforces the deadline whatever
the renew thread does (a call that does not answer, a thread stuck or ended); each renewal's
requests time out before the deadline; an unexpected error while renewing ends the process too."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from mlpipeline.kube.connection import ApiError

log = logging.getLogger("mlpipeline.operator")


class LeaseApi(Protocol):
    """What the elector uses of the API client (kube/client.py's Kube)."""

    def request(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | None = None,
    ) -> Any: ...


def micro_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class LeaderElection:
    kube: LeaseApi
    namespace: str
    name: str = "mlpipeline-operator"
    duration: float = 15.0
    identity: str = field(default_factory=lambda: f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}")
    observed: tuple[str, float] | None = None  # (the Lease's resourceVersion, when first seen), monotonic
    renew_deadline: float = 0.0  # seconds without a renewal before the holder stops; 0: 2/3 of duration
    renewed: float | None = None  # when the last attempt that stored the Lease as ours began, monotonic
    holder: str | None = None  # the holder the last read found
    stopping: threading.Event = field(default_factory=threading.Event)  # renew no more
    done: threading.Event = field(default_factory=threading.Event)  # released or exiting: watch no more
    _exit_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _exiting: bool = field(default=False, repr=False)
    _renewer: threading.Thread | None = field(default=None, repr=False)
    _watchdog: threading.Thread | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.renew_deadline = self.renew_deadline or self.duration * 2 / 3
        if not 0 < self.renew_deadline < self.duration:
            raise ValueError(
                f"the renew deadline ({self.renew_deadline:g} s) must be below the Lease's duration "
                f"({self.duration:g} s)"
            )

    @property
    def path(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases"

    def _until(self) -> float:
        """When a renewal's last request must have been answered: a little before the deadline."""
        assert self.renewed is not None
        return self.renewed + self.renew_deadline * 0.95

    def _call(self, method: str, path: str, body: Any = None, until: float | None = None) -> Any:
        """One request; with ``until`` (monotonic), its timeout ends then (none is sent after it)."""
        timeout = None
        if until is not None:
            timeout = until - time.monotonic()
            if timeout <= 0:
                raise TimeoutError("no time left before the Lease's renew deadline")
        return self.kube.request(method, path, None, body, timeout=timeout)

    def try_lead(self, until: float | None = None) -> bool:
        """One attempt to take or renew the Lease; True when this replica holds it afterwards.
        ``until``: see _call."""
        started = time.monotonic()
        now = datetime.now(UTC)
        try:
            lease: dict[str, Any] = self._call("GET", f"{self.path}/{self.name}", until=until)
        except ApiError as exc:
            if exc.status != 404:
                raise
            self.holder = None
            return self._write("POST", self.path, self._lease(now, {}, transitions=0), started, until)
        spec = lease.get("spec") or {}
        holder = self.holder = spec.get("holderIdentity") or ""
        version = lease["metadata"]["resourceVersion"]
        if self.observed is None or self.observed[0] != version:
            self.observed = (version, time.monotonic())
        transitions = int(spec.get("leaseTransitions") or 0)
        if holder == self.identity:
            renewal = self._lease(now, lease, transitions)
            return self._write("PUT", f"{self.path}/{self.name}", renewal, started, until)
        expired = time.monotonic() - self.observed[1] > float(
            spec.get("leaseDurationSeconds") or self.duration
        )
        if holder and not expired:
            return False
        taken = self._lease(now, lease, transitions + 1)
        return self._write("PUT", f"{self.path}/{self.name}", taken, started, until)

    def _lease(self, now: datetime, current: dict[str, Any], transitions: int) -> dict[str, Any]:
        spec = current.get("spec") or {}
        mine = spec.get("holderIdentity") == self.identity
        metadata = {"name": self.name, "namespace": self.namespace}
        if current:
            metadata["resourceVersion"] = current["metadata"]["resourceVersion"]  # no lost update
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": int(self.duration),
                "acquireTime": spec.get("acquireTime") if mine else micro_time(now),
                "renewTime": micro_time(now),
                "leaseTransitions": transitions,
            },
        }

    def _write(
        self, method: str, path: str, lease: dict[str, Any], started: float, until: float | None
    ) -> bool:
        try:
            self._call(method, path, lease, until)
        except ApiError as exc:
            if exc.status == 409:  # another write came first
                return False
            raise
        # A standby counts the Lease's duration from when it sees this write, which is stored
        # after this attempt began: the deadline is counted from here.
        self.renewed = started
        return True

    def acquire(self, retry: float = 2.0) -> None:
        """Blocks until this replica holds the Lease."""
        log.info("waiting to lead: Lease %s/%s, identity %s", self.namespace, self.name, self.identity)
        while True:
            try:
                # Bounded as a renewal is, so that a Lease taken leaves time before the deadline.
                if self.try_lead(until=time.monotonic() + self.renew_deadline * 0.95):
                    log.info("leading as %s", self.identity)
                    return
            except (ApiError, OSError) as exc:
                log.warning("could not read or take the Lease: %s", exc)
            time.sleep(retry)

    def keep(self, lost: Callable[[], None]) -> threading.Thread:
        """Renews the Lease every third of its duration (after a failure, every fifth of the renew
        deadline) and returns the renew thread. ``lost`` must end the process: it is called, once,
        when the Lease is held by another replica, when it was not renewed within the renew deadline,
        when renewing failed unexpectedly, or when the renew thread or its watchdog ended."""
        assert self.renewed is not None, "keep() follows acquire()"
        self._renewer = threading.Thread(target=self._renew, args=(lost,), name="lease", daemon=True)
        self._watchdog = threading.Thread(
            target=self._watch, args=(lost,), name="lease-watchdog", daemon=True
        )
        self._renewer.start()
        self._watchdog.start()
        return self._renewer

    def _renew(self, lost: Callable[[], None]) -> None:
        pause = self.duration / 3
        try:
            while not self.stopping.wait(pause):
                if self._watchdog is not None and not self._watchdog.is_alive() and not self.done.is_set():
                    self._exit(lost, "the Lease's watchdog thread ended")
                    return
                pause = self.renew_deadline / 5
                try:
                    if self.try_lead(until=self._until()):
                        pause = self.duration / 3
                        continue
                except (ApiError, OSError) as exc:
                    log.warning("could not renew the Lease: %s", exc)
                    continue
                if self.holder != self.identity:
                    self._exit(lost, f"the Lease was taken by another replica ({self.holder or 'none'})")
                    return
                log.warning("could not renew the Lease: another write came first")
        except Exception as exc:
            self._exit(lost, f"renewing the Lease failed unexpectedly ({exc!r})", error=exc)

    def _watch(self, lost: Callable[[], None]) -> None:
        """Ends the process once the Lease was not renewed within the deadline, whatever the renew
        thread is doing, or once the renew thread has ended while it should renew."""
        tick = min(0.5, self.renew_deadline / 20)
        try:
            while not self.done.wait(tick):
                assert self.renewed is not None and self._renewer is not None
                if time.monotonic() - self.renewed >= self.renew_deadline:
                    self._exit(
                        lost,
                        f"could not renew the Lease within its renew deadline ({self.renew_deadline:g} s "
                        f"of its {self.duration:g} s), before a standby may take it",
                    )
                    return
                if not self._renewer.is_alive() and not self.stopping.is_set():
                    self._exit(lost, "the Lease's renew thread ended")
                    return
        except Exception as exc:
            self._exit(lost, f"the Lease's watchdog failed ({exc!r})", error=exc)

    def _exit(self, lost: Callable[[], None], why: str, error: BaseException | None = None) -> None:
        """Stops renewing and watching, says why and calls ``lost`` (once); should ``lost`` fail,
        the process ends here."""
        with self._exit_lock:
            if self._exiting:
                return
            self._exiting = True
            self.stopping.set()
            self.done.set()
        log.error("leader election: %s", why, exc_info=error)
        try:
            lost()
        except BaseException:
            log.exception("the exit function failed: exiting here")
            logging.shutdown()
            os._exit(1)

    def release(self) -> None:
        """Hands the Lease over at once (a rolling update does not wait out the duration): renewing
        stops first, and nothing is written once the renew deadline has passed. Never raises."""
        self.stopping.set()
        try:
            if self.renewed is None:
                return
            until = self._until()
            if self._renewer is not None and self._renewer is not threading.current_thread():
                self._renewer.join(max(until - time.monotonic(), 0))  # a renewal under way ends
            for _ in range(2):  # again once, should a renewal have been stored since the read
                lease = self._call("GET", f"{self.path}/{self.name}", until=until)
                if (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                    return
                lease["spec"]["holderIdentity"] = ""
                try:
                    self._call("PUT", f"{self.path}/{self.name}", lease, until)
                    log.info("released the Lease")
                    return
                except ApiError as exc:
                    if exc.status != 409:
                        raise
        except Exception as exc:
            log.warning("could not release the Lease: %s", exc)
        finally:
            self.done.set()

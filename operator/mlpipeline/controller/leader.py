"""One active operator among replicas: a coordination.k8s.io Lease, as Kubernetes' own controllers
use. A replica that does not hold the Lease waits before it watches anything; the holder renews it
and exits at once when it cannot (the pod restarts as a standby), so two never act together. A
holder that stops renewing — killed, partitioned — is replaced once the Lease has not changed for
its duration, measured on the standby's own clock (no clock is compared to another)."""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlpipeline.kube.client import Kube
from mlpipeline.kube.connection import ApiError

log = logging.getLogger("mlpipeline.operator")


def micro_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class LeaderElection:
    kube: Kube
    namespace: str
    name: str = "mlpipeline-operator"
    duration: float = 15.0
    identity: str = field(default_factory=lambda: f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}")
    observed: tuple[str, float] | None = None  # (the Lease's resourceVersion, when first seen), monotonic

    @property
    def path(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases"

    def try_lead(self) -> bool:
        """One attempt to take or renew the Lease; True when this replica holds it afterwards."""
        now = datetime.now(UTC)
        try:
            lease: dict[str, Any] = self.kube.request("GET", f"{self.path}/{self.name}")
        except ApiError as exc:
            if exc.status != 404:
                raise
            return self._write("POST", self.path, self._lease(now, {}, transitions=0))
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        version = lease["metadata"]["resourceVersion"]
        if self.observed is None or self.observed[0] != version:
            self.observed = (version, time.monotonic())
        if holder == self.identity:
            return self._write(
                "PUT", f"{self.path}/{self.name}", self._lease(now, lease, spec["leaseTransitions"])
            )
        expired = time.monotonic() - self.observed[1] > float(
            spec.get("leaseDurationSeconds") or self.duration
        )
        if holder and not expired:
            return False
        taken = self._lease(now, lease, int(spec.get("leaseTransitions") or 0) + 1)
        return self._write("PUT", f"{self.path}/{self.name}", taken)

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

    def _write(self, method: str, path: str, lease: dict[str, Any]) -> bool:
        try:
            self.kube.request(method, path, None, lease)
        except ApiError as exc:
            if exc.status == 409:  # another replica wrote first
                return False
            raise
        return True

    def acquire(self, retry: float = 2.0) -> None:
        """Blocks until this replica holds the Lease."""
        log.info("waiting to lead: Lease %s/%s, identity %s", self.namespace, self.name, self.identity)
        while True:
            try:
                if self.try_lead():
                    log.info("leading as %s", self.identity)
                    return
            except (ApiError, OSError) as exc:
                log.warning("could not read or take the Lease: %s", exc)
            time.sleep(retry)

    def keep(self, lost: Callable[[], None]) -> threading.Thread:
        """Renews the Lease every third of its duration; calls ``lost`` once it could not renew it
        for two thirds of the duration (before any standby may take it)."""

        def renew() -> None:
            last = time.monotonic()
            while True:
                time.sleep(self.duration / 3)
                try:
                    if self.try_lead():
                        last = time.monotonic()
                        continue
                    log.error("the Lease was taken by another replica")
                except (ApiError, OSError) as exc:
                    log.warning("could not renew the Lease: %s", exc)
                    if time.monotonic() - last < self.duration * 2 / 3:
                        continue
                lost()
                return

        thread = threading.Thread(target=renew, name="lease", daemon=True)
        thread.start()
        return thread

    def release(self) -> None:
        """Hands the Lease over at once (a rolling update does not wait out the duration)."""
        try:
            lease = self.kube.request("GET", f"{self.path}/{self.name}")
            if (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                lease["spec"]["holderIdentity"] = ""
                self.kube.request("PUT", f"{self.path}/{self.name}", None, lease)
        except (ApiError, OSError) as exc:
            log.warning("could not release the Lease: %s", exc)

"""Two operator replicas with leader election (a Lease): one acts, the other waits; killing the active
one hands the pipelines to the standby, which finishes every run once."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlpipeline.local.server import free_port

from tests.cluster.conftest import Operator, delete_namespace, kube_json, kubectl, wait_for
from tests.cluster.test_chaos import STEPS, apply_many, assert_each_run_once, finished, packaged

LEASE_SECONDS = "6"


@pytest.fixture
def ha_namespace(cluster: Path) -> Iterator[str]:
    name = f"ha-{uuid.uuid4().hex[:8]}"  # not t-*: the session's operator must not act here
    kubectl("create", "namespace", name)
    yield name
    delete_namespace(name)


def replica(tmp_path: Path, name: str, namespace: str) -> Operator:
    env = {
        "MLP_LEADER_ELECTION": "true",
        "MLP_LEASE_NAMESPACE": namespace,
        "MLP_LEASE_SECONDS": LEASE_SECONDS,
    }
    return Operator(log=tmp_path / f"{name}.log", metrics_port=free_port(), namespaces=namespace, env=env)


def leads(operator: Operator) -> bool:
    return "leading as" in operator.log.read_text(errors="replace")


def holder(namespace: str) -> dict[str, object]:
    return kube_json("get", "lease", "mlpipeline-operator", "-n", namespace)["spec"]  # type: ignore[no-any-return]


def test_the_standby_replica_takes_over_when_the_active_one_is_killed(
    tmp_path: Path, ha_namespace: str
) -> None:
    first, second = replica(tmp_path, "first", ha_namespace), replica(tmp_path, "second", ha_namespace)
    first.start()
    second.start()
    try:
        wait_for("one replica leading", lambda: leads(first) or leads(second), 60)
        active, standby = (first, second) if leads(first) else (second, first)
        names = apply_many(ha_namespace, 10)
        wait_for(
            "the active replica's first Jobs",
            lambda: kube_json("get", "jobs", "-n", ha_namespace)["items"],
            60,
        )
        wait_for(
            "the standby waiting", lambda: "waiting to lead" in standby.log.read_text(errors="replace"), 60
        )
        assert not leads(standby)
        jobs_at_kill = len(kube_json("get", "jobs", "-n", ha_namespace)["items"])
        assert jobs_at_kill < 10 * STEPS and not finished(ha_namespace), "no work left in flight to hand over"
        active.kill()
        wait_for("the standby leading", lambda: leads(standby), 60)
        pipelines = wait_for("10 pipelines Packaged", lambda: packaged(ha_namespace, 10), 300, 1)
        assert_each_run_once(ha_namespace, names, pipelines)
        lease = holder(ha_namespace)
        assert lease["leaseTransitions"] == 1
        assert f"leading as {lease['holderIdentity']}" in standby.log.read_text()
    finally:
        first.stop()
        second.stop()


def test_a_stopped_leader_hands_the_lease_over_at_once(tmp_path: Path, ha_namespace: str) -> None:
    """A rolling update stops the old pod with SIGTERM: it releases the Lease, so the new one need
    not wait out the Lease's duration."""
    first = replica(tmp_path, "first", ha_namespace)
    first.start()
    try:
        wait_for("the first replica leading", lambda: leads(first), 60)
        first.stop()
        assert not holder(ha_namespace).get("holderIdentity")
    finally:
        first.stop()

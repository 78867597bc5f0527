"""Chaos drills: the operator killed (SIGKILL) at random moments while 100 pipelines run, and the whole
control plane (etcd, kube-apiserver, controller-manager, scheduler) restarted mid-run. Every run must
finish on its own, once, with each step's Job created once."""

from __future__ import annotations

import os
import random
import subprocess
import time
from collections import Counter
from typing import Any

import pytest
import yaml

from tests.cluster.conftest import Operator, kube_json, kubectl, wait_for
from tests.cluster.test_operator import manifest
from tests.conftest import ROOT

PIPELINES = 100
STEPS = 5


def apply_many(namespace: str, count: int) -> list[str]:
    names = [f"p{i:03d}" for i in range(count)]
    documents = [manifest(name, serve__enabled=False) for name in names]
    kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump_all(documents), timeout=120)
    return names


def finished(namespace: str, items: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The namespace's pipelines (or those of ``items``) that are Packaged."""
    items = kube_json("get", "mlpipelines", "-n", namespace)["items"] if items is None else items
    return [p for p in items if (p.get("status") or {}).get("phase") == "Packaged"]


def packaged(namespace: str, count: int) -> list[dict[str, Any]] | None:
    """Every pipeline of the namespace, once ``count`` of them are Packaged."""
    items = kube_json("get", "mlpipelines", "-n", namespace)["items"]
    return items if len(finished(namespace, items)) == count else None


def assert_each_run_once(namespace: str, names: list[str], pipelines: list[dict[str, Any]]) -> None:
    """Every pipeline finished one run, every step of it by one Job with one pod, nothing else."""
    jobs = kube_json("get", "jobs", "-n", namespace)["items"]
    by_pipeline: dict[str, list[dict[str, Any]]] = {}
    for job in jobs:
        by_pipeline.setdefault(job["metadata"]["labels"]["mlpipeline.dev/pipeline"], []).append(job)
    assert sorted(by_pipeline) == names
    for pipeline in pipelines:
        name, status = pipeline["metadata"]["name"], pipeline["status"]
        own = by_pipeline[name]
        assert len(own) == STEPS, f"{name}: {[j['metadata']['name'] for j in own]}"
        assert {j["metadata"]["labels"]["mlpipeline.dev/run"] for j in own} == {status["run"]["id"]}
        assert all(j["status"].get("succeeded") == 1 and not j["status"].get("failed") for j in own)
        assert [s["attempts"] for s in status["run"]["steps"]] == [1] * STEPS, name
    pods = kube_json("get", "pods", "-n", namespace, "-l", "mlpipeline.dev/step")["items"]
    assert len(pods) == STEPS * len(names), "a step ran a second pod"
    events = kube_json("get", "events", "-n", namespace, "--field-selector", "involvedObject.kind=MLPipeline")
    counted = Counter((e["involvedObject"]["name"], e["reason"]) for e in events["items"])
    assert max(counted[(n, "RunStarted")] for n in names) == 1, "a run was started twice"
    assert max(counted[(n, "StepSucceeded")] for n in names) <= STEPS, "a step's success was announced twice"


def test_operator_killed_at_random_moments_finishes_every_run_once(
    operator: Operator, namespace: str
) -> None:
    seed = random.randrange(1 << 30)
    print(f"chaos seed {seed} (shown when the test fails)")
    moments = random.Random(seed)
    names = apply_many(namespace, PIPELINES)
    unfinished_at_kills = []
    for _ in range(4):
        time.sleep(moments.uniform(1, 8))
        unfinished_at_kills.append(PIPELINES - len(finished(namespace)))
        operator.kill()
        time.sleep(moments.uniform(0, 3))  # Jobs go on finishing while no operator runs
        operator.start()
    print(f"pipelines not yet Packaged at each kill: {unfinished_at_kills}")
    assert unfinished_at_kills[0] > 0, "the operator was killed with no work in flight"
    pipelines = wait_for(f"{PIPELINES} pipelines Packaged", lambda: packaged(namespace, PIPELINES), 600, 2)
    assert_each_run_once(namespace, names, pipelines)


@pytest.mark.serial
def test_the_operator_resumes_on_its_own_after_the_control_plane_restarts(
    operator: Operator, namespace: str
) -> None:
    """Recovery time: from the API server answering again to the first Job of a pipeline applied
    then (the Job controller's own restart, which waits out its lease, is not counted), printed
    (pytest -s) for the notes; the bound here is only the test's patience."""
    names = apply_many(namespace, 20)
    wait_for("the first Jobs", lambda: len(kube_json("get", "jobs", "-n", namespace)["items"]) >= 20, 120)
    restart = subprocess.run(
        [str(ROOT / "hack" / "cluster.sh"), "restart"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MLP_RESTART_PAUSE": "5"},
    )
    assert restart.returncode == 0, restart.stderr
    back = time.monotonic()
    late = manifest("late", serve__enabled=False)
    kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(late))
    wait_for(
        "the late pipeline's first Job",
        lambda: (
            kubectl("get", "job", "-n", namespace, "-l", "mlpipeline.dev/pipeline=late", "-o", "name").stdout
        ),
        300,
        0.25,
    )
    print(f"operator created a Job {time.monotonic() - back:.1f}s after the API server was ready again")
    pipelines = wait_for("21 pipelines Packaged", lambda: packaged(namespace, 21), 600, 2)
    assert_each_run_once(namespace, sorted([*names, "late"]), pipelines)

"""Scheduled retraining in the cluster: the operator fires runs on the schedule, records what fired,
and a SIGKILL right after a firing neither loses the run nor fires the same time again."""

from __future__ import annotations

import re
import time
from collections import Counter
from typing import Any

from tests.cluster.conftest import Operator, kube_json, wait_for
from tests.cluster.test_operator import apply, jobs, manifest, pipeline


def status(namespace: str) -> dict[str, Any]:
    return pipeline(namespace, "iris").get("status") or {}


def scheduled_run(namespace: str, besides: set[str]) -> dict[str, Any] | None:
    run = status(namespace).get("run") or {}
    return run if run.get("trigger") == "schedule" and run["id"] not in besides else None


def test_a_schedule_fires_runs_and_a_killed_operator_fires_no_time_twice(
    operator: Operator, namespace: str
) -> None:
    apply(namespace, manifest(serve__enabled=False, retrain={"schedule": "* * * * *"}))
    first = wait_for("the first run", lambda: status(namespace).get("phase") == "Packaged", timeout=120)
    assert first and status(namespace)["run"]["trigger"] == "create"
    retrain = status(namespace)["retrain"]
    assert retrain["schedule"] == "* * * * * (UTC)" and retrain["nextAt"].endswith(":00Z")

    created = status(namespace)["run"]["id"]
    fired = wait_for("a scheduled run", lambda: scheduled_run(namespace, {created}), timeout=150)
    assert re.fullmatch(r"\* \* \* \* \* \(UTC\) at \S+:00\+00:00", fired["triggerValue"]), fired
    operator.kill()  # right after the firing, the run's first Job barely created
    time.sleep(2)
    operator.start()
    again = wait_for(
        "the next minute's run", lambda: scheduled_run(namespace, {created, fired["id"]}), timeout=150
    )
    assert again["triggerValue"] != fired["triggerValue"]
    wait_for("its steps done", lambda: status(namespace).get("phase") == "Packaged", timeout=120)

    started = [
        e["message"]
        for e in kube_json("get", "events", "-n", namespace, "--field-selector", "reason=RunStarted")["items"]
    ]
    by_schedule = [m for m in started if "started by schedule" in m]
    times = [m.split(" at ", 1)[1].split(" ")[0] for m in by_schedule]
    assert len(times) == len(set(times)) >= 2, started  # no scheduled time fired twice
    per_run = Counter(j["metadata"]["labels"]["mlpipeline.dev/run"] for j in jobs(namespace))
    assert len(per_run) == 1 + len(times) and set(per_run.values()) == {5}, per_run

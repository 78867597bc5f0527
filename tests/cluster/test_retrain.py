"""Retraining by itself in the cluster: the operator fires runs on a schedule and on new data
partitions, records what fired, and a SIGKILL right after a firing neither loses the run nor fires
the same time, or the same partition, again."""

from __future__ import annotations

import re
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.cluster.conftest import Operator, kube_json, wait_for
from tests.cluster.test_operator import apply, jobs, manifest, pipeline
from tests.conftest import EXAMPLES


def status(namespace: str) -> dict[str, Any]:
    return pipeline(namespace, "iris").get("status") or {}


def new_run(namespace: str, trigger: str, besides: set[str]) -> dict[str, Any] | None:
    run = status(namespace).get("run") or {}
    return run if run.get("trigger") == trigger and run["id"] not in besides else None


def test_a_schedule_fires_runs_and_a_killed_operator_fires_no_time_twice(
    operator: Operator, namespace: str
) -> None:
    apply(namespace, manifest(serve__enabled=False, retrain={"schedule": "* * * * *"}))
    first = wait_for("the first run", lambda: status(namespace).get("phase") == "Packaged", timeout=120)
    assert first and status(namespace)["run"]["trigger"] == "create"
    retrain = status(namespace)["retrain"]
    assert retrain["schedule"] == "* * * * * (UTC)" and retrain["nextAt"].endswith(":00Z")

    created = status(namespace)["run"]["id"]
    fired = wait_for("a scheduled run", lambda: new_run(namespace, "schedule", {created}), timeout=150)
    assert re.fullmatch(r"\* \* \* \* \* \(UTC\) at \S+:00\+00:00", fired["triggerValue"]), fired
    operator.kill()  # right after the firing, the run's first Job barely created
    time.sleep(2)
    operator.start()
    again = wait_for(
        "the next minute's run", lambda: new_run(namespace, "schedule", {created, fired["id"]}), timeout=150
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


def test_new_partitions_fire_one_run_each_time_even_across_an_operator_kill(
    operator: Operator, namespace: str, tmp_path: Path
) -> None:
    """The operator lists real files (kwok's pods read nothing: the data lives on this machine)."""
    parts = tmp_path / "parts"
    parts.mkdir()
    shutil.copy(EXAMPLES / "data" / "iris.csv", parts / "month=2026-01.csv")
    document = manifest(serve__enabled=False)
    document["spec"]["data"]["uri"] = f"file://{parts}/month=*.csv"
    document["spec"]["retrain"] = {"onNewData": {"interval": "1s", "settle": "1s", "minNewRows": 100}}
    apply(namespace, document)
    wait_for("the first run", lambda: status(namespace).get("phase") == "Packaged", timeout=120)
    data = wait_for("the baseline listing", lambda: (status(namespace).get("retrain") or {}).get("data"))
    assert data["processed"].endswith("month=2026-01.csv") and data["partitions"] == 1
    first = status(namespace)["run"]["id"]

    shutil.copy(EXAMPLES / "data" / "iris.csv", parts / "month=2026-02.csv")
    run = wait_for("a run for the new partition", lambda: new_run(namespace, "data", {first}), timeout=60)
    assert run["triggerValue"] == f"1 new partition(s), 150 rows, newest file://{parts}/month=2026-02.csv"
    operator.kill()
    time.sleep(2)
    operator.start()
    wait_for("its steps done", lambda: status(namespace).get("phase") == "Packaged", timeout=120)
    time.sleep(3)  # several listings by the restarted operator
    assert status(namespace)["run"]["id"] == run["id"]
    per_run = Counter(j["metadata"]["labels"]["mlpipeline.dev/run"] for j in jobs(namespace))
    assert len(per_run) == 2 and set(per_run.values()) == {5}, per_run
    assert status(namespace)["retrain"]["data"]["processed"].endswith("month=2026-02.csv")

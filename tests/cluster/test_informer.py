"""The operator's own list+watch (kube/informer.py) against the real API server: what it holds after
its first list (in pages), the changes it reports afterwards and only those, the namespaces it
keeps, and a resource whose API is not installed."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlpipeline.controller.cache import owner_key, trim_job
from mlpipeline.kube import informer as informer_module
from mlpipeline.kube.client import Kube
from mlpipeline.kube.informer import Informer, Key, Resource, Store
from mlpipeline.protocol import PIPELINE_LABEL

from tests.cluster.conftest import delete_namespace, kubectl, wait_for

JOBS = Resource("batch/v1", "jobs")


@pytest.fixture
def kube(cluster: Path) -> Kube:
    return Kube(kubeconfig=str(cluster))


@pytest.fixture
def namespaces(cluster: Path) -> Iterator[list[str]]:
    prefix = f"i{uuid.uuid4().hex[:6]}"
    names = [f"{prefix}-a", f"{prefix}-b", f"other-{prefix}"]
    for name in names:
        kubectl("create", "namespace", name)
    yield names
    for name in names:
        delete_namespace(name)


def make_job(kube: Kube, namespace: str, name: str, pipeline: str | None) -> None:
    labels = {PIPELINE_LABEL: pipeline} if pipeline else {}
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "suspend": True,  # no pods: only the Job objects matter here
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}
            },
        },
    }
    assert kube.create(job) is not None


class Recorder:
    def __init__(self) -> None:
        self.keys: list[Key] = []
        self.lock = threading.Lock()

    def __call__(self, key: Key) -> None:
        with self.lock:
            self.keys.append(key)

    def seen(self) -> set[Key]:
        with self.lock:
            return set(self.keys)


def names(store: Store, key: Key) -> list[str]:
    return sorted(j["metadata"]["name"] for j in store.get(key))


def test_an_informer_lists_in_pages_then_reports_each_change_of_its_namespaces(
    kube: Kube, namespaces: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    mine, also_mine, other = namespaces
    for index in range(5):
        make_job(kube, mine, f"p-r1-step{index}", "p")
    make_job(kube, mine, "unlabelled", None)
    make_job(kube, other, "p-r1-step0", "p")
    monkeypatch.setattr(informer_module, "PAGE", 2)  # five Jobs: three pages, read with `continue`
    store, changes = Store(trim_job, owner_key), Recorder()
    prefix = mine.rsplit("-", 1)[0]
    informer = Informer(
        kube, JOBS, store, changes, namespaces=f"{prefix}-*", selector=PIPELINE_LABEL, watch_seconds=2
    ).start()
    try:
        assert informer.synced.wait(30)
        assert names(store, (mine, "p")) == [f"p-r1-step{i}" for i in range(5)]
        assert store.get((other, "p")) == [], "a namespace outside the pattern is not kept"
        assert changes.seen() == set(), "the first list reports nothing: the operator's start reconciles all"

        make_job(kube, also_mine, "q-r1-ingest", "q")
        wait_for("the new Job reported", lambda: (also_mine, "q") in changes.seen(), timeout=30)
        assert names(store, (also_mine, "q")) == ["q-r1-ingest"]

        kubectl("delete", "job", "p-r1-step0", "-n", mine)
        wait_for("the deletion reported", lambda: (mine, "p") in changes.seen(), timeout=30)
        wait_for("the Job gone", lambda: "p-r1-step0" not in names(store, (mine, "p")), timeout=30)

        kubectl("patch", "job", "p-r1-step1", "-n", mine, "--type=merge", "-p", '{"spec":{"suspend":false}}')
        wait_for(  # watches of 2 s: several re-watches from the last version, none missing this
            "the started Job's status",
            lambda: any(j["status"].get("startTime") for j in store.get((mine, "p"))),
            timeout=60,
        )
        make_job(kube, other, "p-r1-step1", "p")
        kubectl("label", "job", "unlabelled", "-n", mine, "note=x")
        settled = len(changes.keys)
        make_job(kube, mine, "z-r1-ingest", "z")
        wait_for("a later change", lambda: (mine, "z") in changes.seen(), timeout=30)
        assert (other, "p") not in changes.seen() and (mine, "") not in changes.seen()
        assert all(key[0] in (mine, also_mine) for key in changes.keys[settled:])
    finally:
        informer.stop()


def test_a_resource_whose_api_is_not_installed_is_empty_and_synced(kube: Kube) -> None:
    absent = Resource(f"absent-{uuid.uuid4().hex[:6]}.example.com/v1", "things")
    store: Store = Store(lambda body: dict(body), lambda body: (body["metadata"]["name"],))
    informer = Informer(kube, absent, store, Recorder(), optional=True, absent_retry=0.2).start()
    try:
        assert informer.synced.wait(30) and store.items == {}
    finally:
        informer.stop()

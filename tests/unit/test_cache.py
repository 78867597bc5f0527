"""The reconciler's reads from memory: trimmed objects read the same as whole ones, the stores say
which pipelines a change concerns, and the operator's own writes are seen before the watch streams
bring them back. (The informers that fill the stores from a real API server:
tests/cluster/test_informer.py.)"""

from __future__ import annotations

import copy
import json
from typing import Any

from mlpipeline.controller.cache import (
    ClusterCache,
    noticed,
    owner_key,
    run_key,
    trim_job,
    trim_pipeline,
    trim_pod,
    without_status,
)
from mlpipeline.kube.client import resource_of
from mlpipeline.kube.connection import ApiError
from mlpipeline.kube.informer import Store, exact_namespace, in_namespaces, message_of, pack
from mlpipeline.kube.observe import observe_job

LABELS = {"mlpipeline.dev/pipeline": "iris", "mlpipeline.dev/run": "r1", "mlpipeline.dev/step": "tune"}


def job(name: str = "iris-r1-tune", **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": "ns",
            "labels": LABELS,
            "resourceVersion": "7",
            "managedFields": [{"manager": "kube-controller-manager", "fieldsV1": {"f:status": {}}}],
        },
        "spec": {"template": {"spec": {"containers": [{"name": "step", "image": "x", "args": ["a"] * 50}]}}},
        "status": status,
    }


def pod(name: str, phase: str, created: str, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "labels": {**LABELS, "job-name": "iris-r1-tune"},
            "creationTimestamp": created,
            "managedFields": [{"manager": "kubelet"}],
        },
        "spec": {"containers": [{"name": "step", "image": "x", "env": [{"name": "A", "value": "b"}] * 20}]},
        "status": {"phase": phase, "hostIP": "10.0.0.2", "podIPs": [{"ip": "10.1.0.3"}], **status},
    }


def pipeline(version: str, phase: str | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "mlpipeline.dev/v1alpha1",
        "kind": "MLPipeline",
        "metadata": {
            "name": "iris",
            "namespace": "ns",
            "resourceVersion": version,
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}", "team": "vision"},
            "managedFields": [{"manager": "kubectl"}],
        },
        "spec": {"data": {"uri": "s3://d/iris.csv"}},
        "status": {"phase": phase} if phase else {},
    }


def ended(name: str, phase: str, created: str, code: int, message: str) -> dict[str, Any]:
    terminated = {"exitCode": code, "message": message}
    return pod(
        name, phase, created, containerStatuses=[{"name": "step", "state": {"terminated": terminated}}]
    )


def test_trimmed_jobs_and_pods_observe_like_whole_ones() -> None:
    succeeded = ended("a", "Succeeded", "2026-01-01T00:00:02Z", 0, '{"rows": 150}')
    failed = ended("b", "Failed", "2026-01-01T00:00:01Z", 3, "bad column")
    pending = pod(
        "c",
        "Pending",
        "2026-01-01T00:00:03Z",
        conditions=[
            {"type": "Initialized", "status": "True"},
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/4 nodes"},
        ],
    )
    cases = [
        (job(active=1, startTime="2026-01-01T00:00:00Z"), [pending]),
        (job(succeeded=1, conditions=[{"type": "Complete", "status": "True"}]), [failed, succeeded]),
        (
            job(
                failed=2, conditions=[{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]
            ),
            [failed],
        ),
    ]
    for whole, pods in cases:
        trimmed = observe_job(trim_job(whole), [trim_pod(p) for p in pods])
        assert trimmed == observe_job(whole, pods)
    assert observe_job(trim_job(cases[0][0]), [trim_pod(pending)]).pod_problem == "Unschedulable: 0/4 nodes"
    assert "spec" not in trim_pod(pending) and "managedFields" not in trim_job(cases[1][0])["metadata"]


def test_trimmed_objects_keep_only_the_labels_and_conditions_the_operator_reads() -> None:
    """The Job controller's labels and the times of conditions are most of a trimmed object's size:
    a thousand pipelines hold 10,000 of them."""
    added = {"controller-uid": "u", "batch.kubernetes.io/controller-uid": "u", "app.kubernetes.io/name": "x"}
    ray = {"ray.io/cluster": "iris-r1-tune-abcde", "ray.io/node-type": "head"}
    whole = pod("a", "Succeeded", "2026-01-01T00:00:02Z")
    whole["metadata"]["labels"] = {**whole["metadata"]["labels"], **added, **ray}
    assert trim_pod(whole)["metadata"]["labels"] == {
        **LABELS,
        "job-name": "iris-r1-tune",
        "ray.io/cluster": "iris-r1-tune-abcde",
    }
    times = {"lastProbeTime": "2026-01-01T00:00:05Z", "lastTransitionTime": "2026-01-01T00:00:05Z"}
    done = job(
        succeeded=1,
        conditions=[
            {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached", **times},
            {"type": "Complete", "status": "True", "reason": "CompletionsReached", **times},
            {"type": "Suspended", "status": "False", **times},
        ],
    )
    done["metadata"]["labels"] = {**LABELS, **added}
    trimmed = trim_job(done)
    assert trimmed["metadata"]["labels"] == LABELS
    assert trimmed["status"]["conditions"] == [
        {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached"},
        {"type": "Complete", "status": "True", "reason": "CompletionsReached"},
    ]
    assert observe_job(trimmed, []) == observe_job(done, [])
    assert trim_job(trimmed) == trimmed and trim_pod(trim_pod(whole)) == trim_pod(whole)


def test_a_trimmed_pipeline_keeps_its_spec_status_and_own_annotations() -> None:
    trimmed = trim_pipeline(pipeline("5", "Running"))
    assert trimmed["spec"] == {"data": {"uri": "s3://d/iris.csv"}} and trimmed["status"] == {
        "phase": "Running"
    }
    assert trimmed["metadata"]["annotations"] == {"team": "vision"}
    assert "managedFields" not in trimmed["metadata"]


def test_our_status_write_is_read_until_the_watch_brings_a_newer_version() -> None:
    cache = ClusterCache()
    cache.put_pipeline(pipeline("5"))
    cache.wrote(pipeline("6", "Running"))
    assert cache.pipeline("ns", "iris")["status"] == {"phase": "Running"}  # type: ignore[index]
    cache.put_pipeline(pipeline("9", "Failed"))  # e.g. a later write by a user
    assert cache.pipeline("ns", "iris")["status"] == {"phase": "Failed"}  # type: ignore[index]
    cache.put_pipeline(pipeline("5"))
    assert cache.pipeline("ns", "iris")["status"] == {}, "the overlay is dropped once the watch caught up"  # type: ignore[index]
    cache.forget("ns", "iris")
    cache.wrote(pipeline("10", "Running"))
    assert cache.pipeline("ns", "iris") is None, "a deleted pipeline is not revived by our last write"


def test_our_write_brought_back_by_the_watch_is_no_longer_held_apart() -> None:
    """A finished pipeline's last status write is followed by no reconciliation: once the watch
    brings it back, only the cache's compressed copy is kept (a pipeline as dicts takes 14 KB, 5,000
    of them 69 MB)."""
    cache = ClusterCache()
    cache.put_pipeline(pipeline("5"))
    cache.wrote(pipeline("6", "Succeeded"))
    cache.put_pipeline(pipeline("5", "Running"))  # an event from before our write
    assert cache.pipeline("ns", "iris")["status"] == {"phase": "Succeeded"}  # type: ignore[index]
    assert ("ns", "iris") in cache.written
    cache.put_pipeline(pipeline("6", "Succeeded"))
    assert cache.written == {}
    assert cache.pipeline("ns", "iris")["status"] == {"phase": "Succeeded"}  # type: ignore[index]


def test_a_job_we_created_is_seen_before_its_watch_event_and_once_after() -> None:
    cache = ClusterCache()
    assert cache.jobs("ns", "iris") == []
    cache.made(job("iris-r1-ingest"))
    assert [j["metadata"]["name"] for j in cache.jobs("ns", "iris")] == ["iris-r1-ingest"]
    cache.owned["jobs"].put(job("iris-r1-ingest", active=1))
    assert cache.jobs("ns", "iris") == [trim_job(job("iris-r1-ingest", active=1))]
    assert cache.created == {}


def test_pods_are_read_by_run() -> None:
    cache = ClusterCache()
    cache.owned["pods"].put(pod("a", "Running", "2026-01-01T00:00:00Z"))
    assert [p["metadata"]["name"] for p in cache.pods("ns", "iris", "r1")] == ["a"]
    assert cache.pods("ns", "iris", "r2") == [] and cache.pods("other", "iris", "r1") == []


def test_nothing_is_read_of_a_pipeline_the_watch_has_not_brought() -> None:
    cache = ClusterCache()
    assert cache.pipeline("ns", "iris") is None and cache.jobs("ns", "iris") == []
    assert cache.wait_synced(0), "a cache without informers (a test) does not wait"
    original = copy.deepcopy(pipeline("1"))
    trim_pipeline(original)
    assert original == pipeline("1"), "trimming copies; kopf's body is left as it was"


def test_a_store_reports_the_pipelines_whose_objects_changed_and_only_those() -> None:
    store = Store(trim_pod, run_key)
    running = pod("a", "Running", "2026-01-01T00:00:00Z")
    assert store.put(running) == ("ns", "iris", "r1"), "a new object is a change"
    ready = copy.deepcopy(running)
    ready["status"]["podIPs"] = [{"ip": "10.1.0.9"}]
    assert store.put(ready) is None, "a field the operator does not read changed: no change"
    rerun = copy.deepcopy(running)
    rerun["metadata"]["labels"] = {**running["metadata"]["labels"], "mlpipeline.dev/run": "r2"}
    assert store.put(rerun) == ("ns", "iris", "r2")
    assert store.get(("ns", "iris", "r1")) == [] and len(store.get(("ns", "iris", "r2"))) == 1
    assert store.remove(rerun) == ("ns", "iris", "r2") and store.items == {} and store.where == {}
    assert store.remove(rerun) is None, "deleting what is not stored changes nothing"


def test_a_relist_reports_what_changed_appeared_or_went_while_the_watch_was_down() -> None:
    store = Store(trim_job, owner_key)
    kept, went, changed = job("iris-r1-ingest"), job("iris-r1-prep"), job("iris-r1-tune")
    for obj in (kept, went, changed):
        store.put(obj)
    other = job("digits-r1-ingest")
    other["metadata"]["labels"] = {**LABELS, "mlpipeline.dev/pipeline": "digits"}
    other["metadata"]["namespace"] = "".join(["n", "s"])  # as parsed from another page: equal, not the same
    now_done = job("iris-r1-tune", succeeded=1, conditions=[{"type": "Complete", "status": "True"}])
    listed = [store.entry(j).moved() for j in (kept, now_done, other)]
    assert listed == [store.entry(j) for j in (kept, now_done, other)], "moved: equal, in new objects"
    assert listed[0].ident[0] is listed[2].ident[0], "a namespace's name is kept once"
    assert store.replace(listed) == {("ns", "iris"), ("ns", "digits")}
    assert sorted(j["metadata"]["name"] for j in store.get(("ns", "iris"))) == [
        "iris-r1-ingest",
        "iris-r1-tune",
    ]
    assert store.replace(listed) == set(), "the same list again: nothing changed"
    assert store.clear() == {("ns", "iris"), ("ns", "digits")} and store.items == {}


def test_a_finished_pod_the_job_controller_has_not_counted_yet_is_still_an_attempt() -> None:
    """Between a pod's end and the Job's count, status.active is 0 and the pod is only listed in
    uncountedTerminatedPods: the step's attempts must not drop back to 0 meanwhile."""
    seen = observe_job(trim_job(job(active=0, uncountedTerminatedPods={"succeeded": ["uid-1"]})), [])
    assert (seen.active, seen.succeeded, seen.failed) == (0, 1, 0)
    failing = observe_job(job(active=1, failed=1, uncountedTerminatedPods={"failed": ["uid-2"]}), [])
    assert failing.failed + failing.active == 3


def test_events_that_change_nothing_the_operator_reads_are_not_news() -> None:
    memo: dict[str, Any] = {}
    running = pod("a", "Running", "2026-01-01T00:00:00Z")
    assert noticed(memo, pack(trim_pod(running))), "the first event of an object is news"
    ready = copy.deepcopy(running)
    ready["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    ready["status"]["podIPs"] = [{"ip": "10.1.0.9"}]
    assert not noticed(memo, pack(trim_pod(ready))), "readiness and addresses are not read"
    done = copy.deepcopy(ready)
    done["status"]["phase"] = "Succeeded"
    assert noticed(memo, pack(trim_pod(done)))
    counted = job(active=1)
    assert noticed(memo := {}, pack(trim_job(counted)))
    assert not noticed(memo, pack(trim_job(job(active=1, ready=1, terminating=0))))


def test_our_own_status_write_coming_back_is_recognised_and_a_spec_edit_is_news() -> None:
    cache = ClusterCache()
    written = pipeline("6", "Running")
    cache.wrote(written)
    assert cache.is_our_status("ns", "iris", {"phase": "Running"})
    assert not cache.is_our_status("ns", "iris", {"phase": "Failed"}), "someone else's status write"
    memo: dict[str, Any] = {}
    noticed(memo, pack(without_status(trim_pipeline(pipeline("5")))))
    assert not noticed(memo, pack(without_status(trim_pipeline(written)))), "a status write alone is not news"
    edited = pipeline("7", "Running")
    edited["spec"]["data"]["uri"] = "s3://d/iris-v2.csv"
    assert noticed(memo, pack(without_status(trim_pipeline(edited))))
    cache.forget("ns", "iris")
    assert not cache.is_our_status("ns", "iris", {"phase": "Running"})


def test_trimming_twice_changes_nothing() -> None:
    """The informers trim a list page by page, and the store trims again."""
    whole = ended("a", "Failed", "2026-01-01T00:00:01Z", 3, "bad column")
    assert trim_pod(trim_pod(whole)) == trim_pod(whole)
    assert run_key(trim_pod(whole)) == run_key(whole)
    done = job(succeeded=1, conditions=[{"type": "Complete", "status": "True"}])
    assert trim_job(trim_job(done)) == trim_job(done) and owner_key(trim_job(done)) == owner_key(done)


def test_namespace_patterns_read_as_the_operators_namespace_option() -> None:
    assert in_namespaces("t-1a2b", "t-*") and not in_namespaces("w-1a2b", "t-*")
    assert in_namespaces("anything", None) and in_namespaces("anything", "*")
    pattern = "myapp-*, !*-pr-*, *pr-123"
    assert in_namespaces("myapp-live", pattern) and in_namespaces("myapp-pr-123", pattern)
    assert not in_namespaces("myapp-pr-456", pattern) and not in_namespaces("otherapp-pr-123", pattern)
    assert in_namespaces("otherapp-pr-123", "!*-pr-*, *pr-123"), "a leading exclusion implies *"
    assert exact_namespace("team-a") == "team-a" and exact_namespace("t-*") is None
    assert exact_namespace("a,b") is None and exact_namespace(None) is None


def test_the_request_counter_names_the_resource_of_every_path_the_operator_asks() -> None:
    """bench/scale reports the operator's requests by resource: the informers' lists across all
    namespaces must count as lists of their resource, not as discovery."""
    assert resource_of("/apis/batch/v1/namespaces/ns/jobs/iris-r1-tune") == "jobs"
    assert resource_of("/apis/mlpipeline.dev/v1alpha1/namespaces/ns/mlpipelines/iris/status") == "mlpipelines"
    assert resource_of("/api/v1/pods") == "pods" and resource_of("/apis/batch/v1/jobs") == "jobs"
    assert resource_of("/api/v1/namespaces/ns/events") == "events"
    assert resource_of("/apis/ray.io/v1") == "discovery" and resource_of("/api/v1") == "discovery"


def test_the_deletion_of_a_pipeline_does_not_drop_one_of_the_same_name_created_since() -> None:
    """kopf handles each object on its own: a recreated pipeline's first event can come before the
    old one's DELETED."""
    cache = ClusterCache()
    old, new = pipeline("5"), pipeline("9")
    old["metadata"]["uid"], new["metadata"]["uid"] = "uid-old", "uid-new"
    cache.put_pipeline(new)
    assert not cache.drop_pipeline("ns", "iris", "uid-old"), "the old one's DELETED leaves the new one"
    assert cache.pipeline("ns", "iris") is not None
    assert cache.drop_pipeline("ns", "iris", "uid-new") and cache.drop_pipeline("other", "iris", "uid-x")


def test_an_error_is_logged_with_the_api_servers_message() -> None:
    refused = ApiError(
        403,
        "Forbidden",
        json.dumps({"kind": "Status", "message": 'cannot list resource "jobs"', "code": 403}),
    )
    assert message_of(refused) == 'cannot list resource "jobs"'
    garbled = ApiError(502, "Bad Gateway", "<html>" + "x" * 1000)
    assert message_of(garbled).startswith("<html>") and len(message_of(garbled)) == 300

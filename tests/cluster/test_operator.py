"""The operator on a real control plane: `kubectl apply` turns an MLPipeline into step Jobs."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import yaml
from mlpipeline.engine.plan import STEPS

from tests.argocd import health
from tests.cluster.conftest import Operator, kube_json, kubectl, wait_for
from tests.conftest import example

GPU_NODES = {"gpu-0", "gpu-1"}
FAIL_ANNOTATION = "mlpipeline.dev/fake-exit-code"
RESULT_ANNOTATION = "mlpipeline.dev/fake-result"  # the kwok pod reports it as a real step's result
FAST_CANARY = {"steps": [50], "interval": "2s", "analysis": {"interval": "1s", "noData": "pass"}}


def manifest(name: str = "iris", **spec_updates: Any) -> dict[str, Any]:
    document = example("iris")
    document["metadata"]["name"] = name
    document["spec"]["data"]["uri"] = "s3://datasets/iris.csv"
    # No Prometheus serves these simulated pods: canaries pass on no data (analysis with real
    # metrics is tested in tests/workload/test_canary.py).
    document["spec"]["serve"]["canary"] = FAST_CANARY
    for path, value in spec_updates.items():
        node = document["spec"]
        *parents, leaf = path.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return document


def apply(namespace: str, document: dict[str, Any]) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(document))


def pipeline(namespace: str, name: str = "iris") -> dict[str, Any]:
    return kube_json("get", "mlpipeline", name, "-n", namespace)  # type: ignore[no-any-return]


def phase_is(namespace: str, wanted: str, name: str = "iris") -> Any:
    status = pipeline(namespace, name).get("status") or {}
    return status if status.get("phase") == wanted else None


def jobs(namespace: str) -> list[dict[str, Any]]:
    items = kube_json("get", "jobs", "-n", namespace)["items"]
    return sorted(
        items,
        key=lambda j: (
            j["metadata"]["creationTimestamp"],
            STEPS.index(j["metadata"]["labels"]["mlpipeline.dev/step"]),
        ),
    )


def jobs_of(namespace: str, run: str) -> list[dict[str, Any]]:
    return [j for j in jobs(namespace) if j["metadata"]["labels"]["mlpipeline.dev/run"] == run]


def events(namespace: str) -> list[dict[str, Any]]:
    items = kube_json("get", "events", "-n", namespace, "--field-selector", "involvedObject.kind=MLPipeline")[
        "items"
    ]
    return items  # type: ignore[no-any-return]


def test_apply_runs_every_step_as_a_job_in_order_and_tunes_on_a_gpu_node(
    operator: Operator, namespace: str
) -> None:
    reported = '{"metrics": {"accuracy": 0.9667, "f1_macro": 0.96}}'
    apply(
        namespace,
        manifest(
            train__resources={"cpu": "2", "memory": "2Gi", "gpu": 1},
            steps={"podAnnotations": {RESULT_ANNOTATION: reported}},
        ),
    )
    status = wait_for("phase Serving", lambda: phase_is(namespace, "Serving"), timeout=180)
    created = jobs(namespace)
    assert [j["metadata"]["labels"]["mlpipeline.dev/step"] for j in created] == list(STEPS)
    run = status["run"]["id"]
    for job in created:
        step = job["metadata"]["labels"]["mlpipeline.dev/step"]
        assert job["metadata"]["name"] == f"iris-{run}-{step}"
        assert job["metadata"]["ownerReferences"][0]["kind"] == "MLPipeline"
        assert job["status"]["succeeded"] == 1
    tune_pods = kube_json("get", "pods", "-n", namespace, "-l", "mlpipeline.dev/step=tune")["items"]
    assert len(tune_pods) == 1 and tune_pods[0]["spec"]["nodeName"] in GPU_NODES
    # 1 GPU per trial, 2 trials at once (the example's maxConcurrent)
    assert tune_pods[0]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    other = kube_json("get", "pods", "-n", namespace, "-l", "mlpipeline.dev/step=ingest")["items"][0]
    assert other["spec"]["nodeName"] not in GPU_NODES  # the taint keeps CPU steps off GPU nodes
    steps = {s["name"]: s for s in status["run"]["steps"]}
    assert all(s["phase"] == "Succeeded" and s["attempts"] == 1 and s["finishedAt"] for s in steps.values())
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Ready": "True",
        "Progressing": "False",
        "Degraded": "False",
    }
    assert status["model"]["version"] == run and status["observedGeneration"] == 1
    assert status["model"]["score"] == 0.9667  # the gate metric the evaluate pod reported
    reasons = [e["reason"] for e in events(namespace)]
    assert reasons.count("StepSucceeded") == 5 and {"RunStarted", "Packaged", "Deployed"} <= set(reasons)
    table = kubectl("get", "mlp", "-n", namespace).stdout
    assert re.search(rf"iris\s+Serving\s+{run}\s+accuracy\s+0\.9667", table), table
    assert health(pipeline(namespace)) == ("Healthy", status["message"])  # what Argo CD would show


def test_a_failing_step_is_retried_then_fails_the_pipeline(operator: Operator, namespace: str) -> None:
    apply(namespace, manifest(steps={"retries": 1, "podAnnotations": {FAIL_ANNOTATION: "1"}}))
    status = wait_for("phase Failed", lambda: phase_is(namespace, "Failed"), timeout=120)
    assert "ingest failed" in status["message"] and "BackoffLimitExceeded" in status["message"]
    ingest = next(s for s in status["run"]["steps"] if s["name"] == "ingest")
    assert ingest["phase"] == "Failed" and ingest["attempts"] == 2
    assert len(jobs(namespace)) == 1  # nothing after the failed step
    pods = kube_json("get", "pods", "-n", namespace)["items"]
    assert len(pods) == 2 and all(p["status"]["phase"] == "Failed" for p in pods)
    assert any(e["reason"] == "StepFailed" and e["type"] == "Warning" for e in events(namespace))
    assert {c["type"]: c["status"] for c in status["conditions"]}["Degraded"] == "True"
    assert health(pipeline(namespace)) == ("Degraded", status["message"])


def test_an_unschedulable_gpu_request_is_surfaced_then_fails_at_the_deadline(
    operator: Operator, namespace: str
) -> None:
    apply(namespace, manifest(train__resources={"gpu": 64}, steps={"pendingTimeout": "20s"}))
    started = time.monotonic()
    stuck = wait_for(
        "the stuck tune step in the status",
        lambda: (
            (s := pipeline(namespace).get("status") or {})
            and "Unschedulable" in (s.get("message") or "")
            and s
        ),
        timeout=120,
    )
    assert stuck["phase"] == "Tuning" and "nvidia.com/gpu" in stuck["message"]
    assert health(pipeline(namespace))[0] == "Progressing"
    assert any(e["reason"] == "StepStuck" and "Unschedulable" in e["message"] for e in events(namespace))
    failed = wait_for("phase Failed", lambda: phase_is(namespace, "Failed"), timeout=90)
    assert time.monotonic() - started >= 20
    assert "pendingTimeout=20s" in failed["message"] and "Unschedulable" in failed["message"]
    wait_for(
        "the stuck Job deleted",
        lambda: not any(j["metadata"]["labels"]["mlpipeline.dev/step"] == "tune" for j in jobs(namespace)),
    )


def test_operator_killed_mid_run_creates_no_duplicate(operator: Operator, namespace: str) -> None:
    apply(namespace, manifest())
    for step in ("preprocess", "evaluate"):
        wait_for(
            f"the {step} Job", lambda step=step: any(step in j["metadata"]["name"] for j in jobs(namespace))
        )
        operator.kill()
        time.sleep(2)  # the cluster moves on while the operator is down
        operator.start()
    status = wait_for("phase Serving", lambda: phase_is(namespace, "Serving"), timeout=180)
    created = jobs(namespace)
    assert len(created) == 5 and len({j["metadata"]["name"] for j in created}) == 5
    assert all(j["status"]["succeeded"] == 1 for j in created)
    assert len(kube_json("get", "pods", "-n", namespace, "-l", "mlpipeline.dev/step")["items"]) == 5
    assert [s["attempts"] for s in status["run"]["steps"]] == [1] * 5


def test_spec_change_and_rerun_annotation_start_new_runs(operator: Operator, namespace: str) -> None:
    apply(namespace, manifest())
    first = wait_for("first run", lambda: phase_is(namespace, "Serving"), timeout=180)["run"]
    kubectl("annotate", "-n", namespace, "mlpipeline/iris", "mlpipeline.dev/rerun=1")
    second = wait_for(
        "rerun",
        lambda: (s := phase_is(namespace, "Serving")) and s["run"]["id"] != first["id"] and s,
        timeout=180,
    )["run"]
    assert second["trigger"] == "rerun"
    apply(namespace, manifest(evaluate={"metric": "accuracy", "min": 0.5}))
    third = wait_for(
        "spec run",
        lambda: (
            (s := phase_is(namespace, "Serving")) and s["run"]["id"] not in (first["id"], second["id"]) and s
        ),
        timeout=180,
    )
    assert third["run"]["trigger"] == "spec" and third["observedGeneration"] == 2
    assert len(jobs(namespace)) == 15

    # Keeping one earlier run: the first run's Jobs (and, by the garbage collector, pods) go.
    apply(namespace, manifest(evaluate={"metric": "accuracy", "min": 0.5}, steps={"historyLimit": 1}))

    def runs_left() -> set[str]:
        return {j["metadata"]["labels"]["mlpipeline.dev/run"] for j in jobs(namespace)}

    wait_for("the first run's Jobs deleted", lambda: runs_left() == {second["id"], third["run"]["id"]})
    wait_for(
        "the first run's pods deleted",
        lambda: (
            not kube_json("get", "pods", "-n", namespace, "-l", f"mlpipeline.dev/run={first['id']}")["items"]
        ),
    )
    assert pipeline(namespace)["status"]["run"]["id"] == third["run"]["id"]  # editing it started no run


def test_changing_only_the_gate_reruns_evaluate_onward_reusing_the_earlier_steps(
    operator: Operator, namespace: str
) -> None:
    # Every simulated step pod reports what a real ingest pod reports of data that did not change:
    # its fingerprint (the other steps' results ignore it).
    reported = '{"data": "d1", "metrics": {"accuracy": 0.9}}'
    unchanged = {"steps": {"podAnnotations": {RESULT_ANNOTATION: reported}}}
    apply(namespace, manifest(**unchanged))
    first = wait_for("first run", lambda: phase_is(namespace, "Serving"), timeout=180)
    assert not any(s["cached"] for s in first["run"]["steps"])
    assert {o["step"] for o in first["outputs"]} == {"preprocess", "tune", "evaluate"}

    apply(namespace, manifest(evaluate={"metric": "accuracy", "min": 0.5}, **unchanged))
    second = wait_for(
        "the new gate's run",
        lambda: (s := phase_is(namespace, "Serving")) and s["run"]["id"] != first["run"]["id"] and s,
        timeout=180,
    )
    run = second["run"]["id"]
    steps = {s["name"]: s for s in second["run"]["steps"]}
    assert [name for name, s in steps.items() if s["cached"]] == ["preprocess", "tune"]
    assert all(s["phase"] == "Succeeded" for s in steps.values())
    assert steps["tune"]["job"] == f"iris-{first['run']['id']}-tune"
    created = jobs_of(namespace, run)
    steps_run = [j["metadata"]["labels"]["mlpipeline.dev/step"] for j in created]
    assert steps_run == ["ingest", "evaluate", "package"]
    evaluate = created[1]["spec"]["template"]["spec"]["containers"][0]["args"]
    tune_output = next(o["uri"] for o in first["outputs"] if o["step"] == "tune")
    assert evaluate[evaluate.index("--tune") + 1] == tune_output  # the first run's tuning, read again
    assert [e["reason"] for e in events(namespace)].count("StepCached") == 2
    assert second["model"]["score"] == 0.9 and "reused" in second["run"]["steps"][1]["message"]

    # A rerun value starting with "force" reuses nothing: all five Jobs again, ingest told so too.
    kubectl("annotate", "-n", namespace, "mlpipeline/iris", "mlpipeline.dev/rerun=force-1")
    third = wait_for(
        "the forced run",
        lambda: (s := phase_is(namespace, "Serving")) and s["run"]["id"] != run and s,
        timeout=180,
    )
    assert third["run"]["reuse"] is False and not any(s["cached"] for s in third["run"]["steps"])
    forced = jobs_of(namespace, third["run"]["id"])
    assert len(forced) == 5
    assert forced[0]["spec"]["template"]["spec"]["containers"][0]["args"][-1] == "--no-cache"


def test_an_artifact_store_the_pods_cannot_share_is_refused(operator: Operator, namespace: str) -> None:
    apply(namespace, manifest(artifacts={"uri": "file:///tmp/out"}))
    refused = wait_for("phase Failed", lambda: phase_is(namespace, "Failed"))
    assert "file:///tmp/out is a directory of each pod" in refused["message"]
    assert "spec.artifacts.pvc" in refused["message"]
    assert jobs(namespace) == []  # refused before ingest, not failed at preprocess
    assert any(e["reason"] == "ArtifactStoreNotShared" for e in events(namespace))
    apply(namespace, manifest(artifacts={"uri": "file:///artifacts/iris", "pvc": "shared-artifacts"}))
    wait_for("the fixed pipeline running", lambda: jobs(namespace), timeout=60)
    volumes = jobs(namespace)[0]["spec"]["template"]["spec"]["volumes"]
    assert volumes == [{"name": "artifacts", "persistentVolumeClaim": {"claimName": "shared-artifacts"}}]


def test_deleting_the_pipeline_garbage_collects_its_jobs(operator: Operator, namespace: str) -> None:
    apply(namespace, manifest())
    wait_for("some Jobs", lambda: len(jobs(namespace)) >= 2)
    kubectl("delete", "mlpipeline", "iris", "-n", namespace)
    wait_for("no Jobs left", lambda: not jobs(namespace), timeout=60)


def test_invalid_manifests_are_refused_with_the_field_path(cluster: Any, namespace: str) -> None:
    cases = [
        (
            manifest(train__tune__algorithm="genetic"),
            r"spec\.train\.tune\.algorithm: Unsupported value: \"genetic\"",
        ),
        (
            manifest(serve={"canary": {"steps": [10, 50, 25]}}),
            r"spec\.serve\.canary.*canary steps must be strictly increasing",
        ),
        (
            manifest(serve={"canary": {"steps": [10, 150]}}),
            r"spec\.serve\.canary\.steps\[1\].*less than or equal to 100",
        ),
        (manifest(train__tune__algorithm="grid"), r"spec\.train\.tune.*grid search needs discrete values"),
        (
            manifest(train__tune__searchSpace={}),
            r"spec\.train\.tune\.searchSpace.*should have at least 1 properties",
        ),
        (manifest(evaluate={"metric": "accuracy"}), r"spec\.evaluate.*set min, max or both"),
        (manifest(train__tune__trails=3), r"unknown field \"spec\.train\.tune\.trails\""),
        (
            manifest(train__tune__executor="inline", train__distributed={"workers": 1}),
            r"spec\.train\.tune.*executor inline runs one trial at a time",
        ),
        (
            manifest(train__tune__executor="inline", train__distributed={"workers": 1}),
            r"spec\.train: .*tune\.executor inline runs in the tune pod",
        ),
        (  # a step pod posing as another pipeline's model pod, behind that pipeline's Service
            manifest(steps={"podLabels": {"mlpipeline.dev/pipeline": "victim"}}),
            r"spec\.steps\.podLabels.*are the operator's own",
        ),
    ]
    for document, expected in cases:
        result = kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(document), check=False)
        assert result.returncode != 0, f"accepted: {expected}"
        assert re.search(expected, result.stderr), result.stderr
    assert kube_json("get", "mlpipelines", "-n", namespace)["items"] == []


def test_kubectl_explain_documents_the_fields(cluster: Any) -> None:
    text = kubectl("explain", "mlpipeline.spec.train.tune").stdout
    assert "Optuna" in text and "searchSpace" in text and "maxConcurrent" in text


def test_operator_metrics(operator: Operator, namespace: str) -> None:
    apply(namespace, manifest())
    wait_for("phase Serving", lambda: phase_is(namespace, "Serving"), timeout=180)
    text = httpx.get(f"http://127.0.0.1:{operator.metrics_port}/metrics", timeout=10).text
    assert re.search(r'mlpipeline_operator_reconciliations_total\{result="ok"\} [1-9]', text)
    assert re.search(r'mlpipeline_operator_pipelines\{phase="Serving"\} [1-9]', text)
    assert re.search(
        r'mlpipeline_operator_step_duration_seconds_count\{result="Succeeded",step="tune"\} [1-9]', text
    )
    assert "mlpipeline_operator_reconcile_seconds_bucket" in text

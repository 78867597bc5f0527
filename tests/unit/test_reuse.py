"""Step reuse in a cluster: a run creates the Jobs of the steps whose key changed and reuses the
outputs earlier runs left for the others, decided by the engine from what ingest reported."""

from __future__ import annotations

import json
from typing import Any

import kopf
from mlpipeline.api.manifest import load_manifest
from mlpipeline.api.models import MLPipelineSpec, MLPipelineStatus, StepOutput
from mlpipeline.controller.cache import ClusterCache
from mlpipeline.controller.reconciler import Reconciler
from mlpipeline.engine import reuse
from mlpipeline.engine.event import Event
from mlpipeline.engine.plan import STEPS, run_id
from mlpipeline.engine.reconcile import JobObservation, decide
from mlpipeline.kube.client import Kube
from mlpipeline.kube.jobs import OperatorSettings, build_step_job
from mlpipeline.kube.patch import apply_merge_patch
from mlpipeline.protocol import PIPELINE_LABEL, RERUN_ANNOTATION, RUN_LABEL, STEP_LABEL, job_name, steps_root

from tests.conftest import EXAMPLES
from tests.unit.test_reconcile import NOW

STORE = steps_root("s3://b/a", "team-a", "iris")


def iris(**evaluate: Any) -> MLPipelineSpec:
    spec = load_manifest(EXAMPLES / "iris.yaml").spec
    spec.evaluate = spec.evaluate.model_copy(update=evaluate)
    return spec


def complete(
    spec: MLPipelineSpec,
    run: str,
    status: dict[str, Any] | None = None,
    data: str | None = "d1",
    ingest_found_its_output: bool = False,
    rerun: str | None = None,
    store: str = STORE,
) -> tuple[dict[str, Any], list[str], list[Event]]:
    """Reconciles one run until it settles, each Job created succeeding (ingest reporting the data's
    fingerprint ``data``): the status, the steps whose Jobs were created and the Events."""
    jobs: dict[str, JobObservation] = {}
    created: list[str] = []
    events: list[Event] = []
    wire = status or {}
    for _ in range(len(STEPS) + 1):
        typed = MLPipelineStatus.model_validate(wire)
        decision = decide("iris", spec, typed, run, "spec", 1, jobs, NOW, store=store, rerun=rerun)
        wire, events = decision.status.to_wire(), events + decision.events
        if not decision.create:
            break
        for step in decision.create:
            created.append(step)
            reported = {"data": data, "cached": ingest_found_its_output} if step == "ingest" and data else {}
            jobs[step] = JobObservation(
                name=job_name("iris", run, step), run=run, succeeded=1, complete=True, result=reported
            )
    assert wire["phase"] == "Packaged", wire["message"]
    return wire, created, events


def cached(status: dict[str, Any]) -> list[str]:
    return [s["name"] for s in status["run"]["steps"] if s["cached"]]


def test_a_first_run_runs_every_step_and_records_where_their_outputs_lie() -> None:
    status, created, _ = complete(iris(), "run0000001")
    assert created == list(STEPS) and cached(status) == []
    assert status["run"]["data"] == "d1"
    keys = {s["name"]: s["key"] for s in status["run"]["steps"]}
    assert set(keys) == set(STEPS) and len(set(keys.values())) == len(STEPS)
    assert [(o["step"], o["uri"], o["job"]) for o in status["outputs"]] == [
        (step, f"{STORE}/{step}-{keys[step][:12]}", f"iris-run0000001-{step}")
        for step in ("evaluate", "tune", "preprocess")  # newest first
    ]


def test_changing_only_the_gate_reruns_evaluate_onward_and_reuses_the_rest() -> None:
    first, _, _ = complete(iris(), "run0000001")
    second, created, events = complete(iris(min=0.5), "run0000002", first, ingest_found_its_output=True)
    assert created == ["ingest", "evaluate", "package"]  # ingest looks for its own output: it has the data
    assert cached(second) == ["ingest", "preprocess", "tune"]
    steps = {s["name"]: s for s in second["run"]["steps"]}
    assert steps["tune"]["job"] == "iris-run0000001-tune" and steps["tune"]["phase"] == "Succeeded"
    assert steps["evaluate"]["job"] == "iris-run0000002-evaluate"
    reused = [e.message for e in events if e.reason == "StepCached"]
    assert len(reused) == 2 and f"{STORE}/tune-" in reused[1]
    assert "ingest, preprocess, tune reused" in second["message"]


def test_going_back_to_an_earlier_gate_reuses_its_evaluation_too() -> None:
    first, _, _ = complete(iris(), "run0000001")
    second, _, _ = complete(iris(min=0.5), "run0000002", first)
    third, created, _ = complete(iris(), "run0000003", second)
    assert created == ["ingest", "package"]  # package stamps the run's id into the model
    assert {s["name"]: s["job"] for s in third["run"]["steps"]}["evaluate"] == "iris-run0000001-evaluate"


def test_evaluate_is_not_reused_once_another_version_serves() -> None:
    """A reused evaluate would carry a baseline measured against the version that served back then;
    the canary would fall back to expecting no shift against the one that serves now. Its key covers
    the serving version, the run's identity does not."""
    first, _, _ = complete(iris(), "run0000001")
    served = first | {"serving": {"stable": "run0000001", "phase": "Stable"}}
    second, created, _ = complete(iris(), "run0000002", served)
    assert created == ["ingest", "evaluate", "package"]  # measured beside run0000001 this time
    assert cached(second) == ["preprocess", "tune"]
    third, created, _ = complete(iris(), "run0000003", second | {"serving": served["serving"]})
    assert created == ["ingest", "package"]  # the same version serves: its measurement is reused
    assert {s["name"]: s["job"] for s in third["run"]["steps"]}["evaluate"] == "iris-run0000002-evaluate"


def test_new_data_reruns_every_step() -> None:
    first, _, _ = complete(iris(), "run0000001")
    second, created, _ = complete(iris(), "run0000002", first, data="d2")
    assert created == list(STEPS) and cached(second) == []
    assert len([o for o in second["outputs"] if o["step"] == "tune"]) == 2  # both kept


def test_a_force_rerun_reuses_nothing_and_the_next_run_reuses_again() -> None:
    first, _, _ = complete(iris(), "run0000001")
    forced, created, _ = complete(iris(), "run0000002", first, rerun="force-1")
    assert created == list(STEPS) and forced["run"]["reuse"] is False
    # A later run started by a spec edit, the annotation unchanged, is not forced again.
    later, created, _ = complete(iris(min=0.5), "run0000003", forced, rerun="force-1")
    assert created == ["ingest", "evaluate", "package"] and later["run"]["reuse"] is True
    assert {s["name"]: s["job"] for s in later["run"]["steps"]}["tune"] == "iris-run0000002-tune"


def test_a_plain_rerun_value_reuses_unchanged_steps() -> None:
    first, _, _ = complete(iris(), "run0000001")
    _, created, _ = complete(iris(), "run0000002", first, rerun="2")
    assert created == ["ingest", "package"]


def test_spec_steps_cache_off_reruns_every_step() -> None:
    first, _, _ = complete(iris(), "run0000001")
    spec = iris(min=0.5)
    spec.steps.cache = False
    _, created, _ = complete(spec, "run0000002", first)
    assert created == list(STEPS)


def test_outputs_of_another_artifact_store_are_not_reused() -> None:
    first, _, _ = complete(iris(), "run0000001")
    elsewhere = steps_root("s3://other/a", "team-a", "iris")
    _, created, _ = complete(iris(min=0.5), "run0000002", first, store=elsewhere)
    assert created == list(STEPS)


def test_an_ingest_that_reports_no_fingerprint_leaves_every_step_to_run() -> None:
    first, _, _ = complete(iris(), "run0000001", data=None)
    second, created, _ = complete(iris(min=0.5), "run0000002", first, data=None)
    assert created == list(STEPS) and second["outputs"] == []
    assert all("key" not in s for s in second["run"]["steps"])


def test_a_few_outputs_are_remembered_per_step_newest_first() -> None:
    outputs: list[StepOutput] = []
    for n in range(reuse.KEPT + 2):
        outputs = reuse.remember(outputs, StepOutput(step="tune", key=f"k{n}", uri=f"u{n}", job=f"j{n}"))
    outputs = reuse.remember(outputs, StepOutput(step="evaluate", key="e", uri="u", job="j"))
    outputs = reuse.remember(outputs, StepOutput(step="tune", key="k3", uri="u3", job="again"))
    tune = [(o.key, o.job) for o in outputs if o.step == "tune"]
    assert tune == [("k3", "again"), ("k6", "j6"), ("k5", "j5"), ("k4", "j4"), ("k2", "j2")]
    assert len(outputs) == reuse.KEPT + 1


# --- the reconciler: what the operator sends the API server -----------------------------------


class Recording(Kube):
    """The API client without an API server: requests recorded, a status patch answered."""

    def __init__(self) -> None:
        super().__init__(kopf.ConnectionInfo(server="http://127.0.0.1:9"))
        self.requests: list[tuple[str, str, Any]] = []

    def request(self, method: str, path: str, *args: Any, body: Any = None, **kw: Any) -> Any:
        body = args[1] if len(args) > 1 else body
        self.requests.append((method, path, body))
        if method == "PATCH":
            return {**body, "metadata": {"name": "iris", "namespace": "team-a", "resourceVersion": "9"}}
        return {}

    def created_jobs(self) -> list[dict[str, Any]]:
        return [b for m, _, b in self.requests if m == "POST" and (b or {}).get("kind") == "Job"]

    def status(self, recorded: dict[str, Any]) -> dict[str, Any]:
        """The status the API server stores after the last patch of ``recorded``."""
        patch = [b for m, _, b in self.requests if m == "PATCH"][-1]["status"]
        return apply_merge_patch(recorded, patch)


def finished(run: str, step: str, result: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A succeeded Job of ``run`` as the informers hold it, and its pod with ``result`` as its
    termination message."""
    name = job_name("iris", run, step)
    labels = {PIPELINE_LABEL: "iris", RUN_LABEL: run, STEP_LABEL: step}
    job = {
        "kind": "Job",
        "metadata": {"name": name, "namespace": "team-a", "labels": labels},
        "status": {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]},
    }
    terminated = {"exitCode": 0, "message": json.dumps(result)}
    pod = {
        "metadata": {"name": f"{name}-x", "namespace": "team-a", "labels": {**labels, "job-name": name}},
        "status": {"phase": "Succeeded", "containerStatuses": [{"state": {"terminated": terminated}}]},
    }
    return job, pod


def reconcile(
    spec: MLPipelineSpec,
    status: dict[str, Any],
    run: str,
    results: dict[str, dict[str, Any]],
    **annotations: str,
) -> Recording:
    """One reconciliation of the pipeline with ``status`` whose run ``run`` has the Jobs of
    ``results`` succeeded (each step's reported result); what it sent the API server."""
    kube, cache = Recording(), ClusterCache()
    metadata = {"name": "iris", "namespace": "team-a", "uid": "u-1", "generation": 2, "resourceVersion": "8"}
    spec_document = spec.model_dump(by_alias=True, mode="json", exclude_none=True)
    cache.put_pipeline(
        {
            "apiVersion": "mlpipeline.dev/v1alpha1",
            "kind": "MLPipeline",
            "metadata": metadata | {"annotations": annotations},
            "spec": spec_document,
            "status": status,
        }
    )
    for step, result in results.items():
        job, pod = finished(run, step, result)
        cache.owned["jobs"].put(job)
        cache.owned["pods"].put(pod)
    reconciler = Reconciler(kube, OperatorSettings(artifacts_uri="s3://b/a"), cache)
    reconciler.wake_later = lambda *args: None  # type: ignore[method-assign]
    reconciler._reconcile("team-a", "iris")
    return kube


def test_the_operator_creates_only_evaluate_reading_the_reused_outputs() -> None:
    first, _, _ = complete(iris(), "run0000001")
    spec = iris(min=0.5)
    current = run_id(spec, "iris")
    kube = reconcile(spec, first, current, {"ingest": {"summary": "150 rows", "data": "d1", "cached": True}})
    [evaluate] = kube.created_jobs()
    assert evaluate["metadata"]["name"] == f"iris-{current}-evaluate"
    args = evaluate["spec"]["template"]["spec"]["containers"][0]["args"]
    flags = dict(zip(args[1::2], args[2::2], strict=False))
    earlier = {o["step"]: o["uri"] for o in first["outputs"]}
    assert flags["--preprocess"] == earlier["preprocess"] and flags["--tune"] == earlier["tune"]
    keys = {s["name"]: s["key"] for s in first["run"]["steps"]}
    assert flags["--data"] == f"{STORE}/ingest-{keys['ingest'][:12]}"  # the data did not change
    assert flags["--out"].startswith(f"{STORE}/evaluate-") and flags["--out"] != earlier["evaluate"]
    status = kube.status(first)
    assert [s["cached"] for s in status["run"]["steps"]] == [True, True, True, False, False]
    assert status["phase"] == "Evaluating"


def test_a_run_that_reused_evaluate_scores_its_model_with_what_package_reported() -> None:
    spec = iris()
    spec.serve.enabled = False
    first, _, _ = complete(spec, "run0000001")
    current = run_id(spec, "iris", rerun="2")
    package = {"summary": "BentoML model", "metrics": {"accuracy": 0.9667}, "report": "s3://r.html"}
    ingest = {"data": "d1", "cached": True}
    kube = reconcile(spec, first, current, {"ingest": ingest, "package": package}, **{RERUN_ANNOTATION: "2"})
    assert kube.created_jobs() == []
    status = kube.status(first)
    assert status["phase"] == "Packaged" and status["run"]["id"] == current
    assert [s["cached"] for s in status["run"]["steps"]] == [True, True, True, True, False]
    assert status["model"]["version"] == current and status["model"]["score"] == 0.9667


def test_a_forced_run_tells_ingest_to_reuse_nothing() -> None:
    job = build_step_job(
        pipeline="iris",
        namespace="team-a",
        uid="u-1",
        spec=iris(),
        run="run0000001",
        step="ingest",
        settings=OperatorSettings(artifacts_uri="s3://b/a"),
        reuse=False,
    )
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:3] == ["ingest", "--out", f"{STORE}/ingest"] and args[-1] == "--no-cache"


def test_an_output_being_rewritten_is_not_reused_until_its_step_succeeds_again() -> None:
    first, _, _ = complete(iris(), "run0000001")
    typed = MLPipelineStatus.model_validate(first)
    status = decide("iris", iris(), typed, "run0000002", "rerun", 1, {}, NOW, store=STORE, rerun="force-2")
    ingest = {"ingest": JobObservation(name="i", run="run0000002", complete=True, result={"data": "d1"})}
    typed = MLPipelineStatus.model_validate(status.status.to_wire())
    rewriting = decide(
        "iris", iris(), typed, "run0000002", "rerun", 1, ingest, NOW, store=STORE, rerun="force-2"
    )
    assert rewriting.create == ["preprocess"]
    # The forced preprocess fails halfway: a later run must not take its output as finished.
    assert [o.step for o in rewriting.status.outputs] == ["evaluate", "tune"]

"""The operator's state machine, transition by transition, without a cluster."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mlpipeline.api.manifest import load_manifest
from mlpipeline.api.models import MLPipelineSpec, MLPipelineStatus
from mlpipeline.engine.event import Event
from mlpipeline.engine.plan import STEPS, run_id
from mlpipeline.engine.reconcile import JobObservation, decide, model_status
from mlpipeline.protocol import job_name

from tests.conftest import EXAMPLES

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
RUN = "abcd123456"


def spec(**steps: Any) -> MLPipelineSpec:
    base = load_manifest(EXAMPLES / "iris.yaml").spec
    return base.model_copy(update={"steps": base.steps.model_copy(update=steps)}) if steps else base


def step(name: str, **fields: Any) -> JobObservation:
    return JobObservation(name=job_name("iris", RUN, name), run=RUN, **fields)


def done(*names: str) -> dict[str, JobObservation]:
    return {n: step(n, succeeded=1, complete=True, started_at="t0", finished_at="t1") for n in names}


@dataclass
class Wired:
    """A decision with its status as the API server receives it."""

    status: dict[str, Any]
    create: list[str]
    delete: list[str]
    events: list[Event]


def run(status: dict[str, Any], jobs: dict[str, JobObservation], now: datetime = NOW, **kw: Any) -> Wired:
    typed = MLPipelineStatus.model_validate(status)
    decision = decide("iris", kw.pop("spec", spec()), typed, RUN, "create", 1, jobs, now)
    return Wired(decision.status.to_wire(), decision.create, decision.delete, decision.events)


def phases(decision: Wired) -> dict[str, str]:
    return {s["name"]: s["phase"] for s in decision.status["run"]["steps"]}


def test_a_new_pipeline_starts_ingest_only() -> None:
    decision = run({}, {})
    assert decision.create == ["ingest"]
    assert decision.status["phase"] == "Ingesting"
    assert decision.status["run"]["id"] == RUN and decision.status["observedGeneration"] == 1
    assert [e.reason for e in decision.events] == ["RunStarted"]


def test_steps_advance_in_order_as_jobs_complete() -> None:
    status: dict[str, Any] = {}
    for index, name in enumerate(STEPS):
        decision = run(status, done(*STEPS[:index]))
        assert decision.create == [name]
        status = decision.status
    final = run(status, done(*STEPS))
    assert final.create == [] and final.status["phase"] == "Packaged"
    assert set(phases(final).values()) == {"Succeeded"}
    ready = {c["type"]: c["status"] for c in final.status["conditions"]}
    assert ready == {"Ready": "True", "Progressing": "False", "Degraded": "False"}
    assert "Packaged" in [e.reason for e in final.events]


def test_reconciling_twice_changes_nothing() -> None:
    first = run({}, done("ingest") | {"preprocess": step("preprocess", active=1)})
    second = run(first.status, done("ingest") | {"preprocess": step("preprocess", active=1)})
    assert second.status == first.status and second.create == [] and second.events == []


def test_a_failed_job_fails_the_pipeline_with_its_reason() -> None:
    jobs = done("ingest") | {
        "preprocess": step(
            "preprocess",
            failed=2,
            failed_reason="BackoffLimitExceeded",
            failed_message="Job has reached the specified backoff limit",
        )
    }
    decision = run({}, jobs)
    assert decision.status["phase"] == "Failed" and decision.create == []
    assert "preprocess failed: BackoffLimitExceeded" in decision.status["message"]
    assert "after 2 attempt(s)" in decision.status["message"]
    assert phases(decision)["tune"] == "Pending"
    assert any(e.type == "Warning" and e.reason == "StepFailed" for e in decision.events)
    assert {c["type"]: c["status"] for c in decision.status["conditions"]}["Degraded"] == "True"


def test_the_step_s_own_message_wins() -> None:
    jobs = done("ingest", "preprocess", "tune") | {
        "evaluate": step(
            "evaluate",
            failed=1,
            failed_reason="PodFailurePolicy",
            exit_code=3,
            termination_message="evaluation gate failed: accuracy=0.5 is below spec.evaluate.min=0.85",
        )
    }
    assert "accuracy=0.5 is below" in run({}, jobs).status["message"]


def test_a_stuck_pod_is_shown_then_fails_at_the_pending_deadline() -> None:
    problem = "Unschedulable: 0/4 nodes are available: 4 Insufficient nvidia.com/gpu."
    stuck = done("ingest", "preprocess") | {
        "tune": step("tune", active=1, pod_problem=problem, pending_since=NOW)
    }
    early = run({}, stuck, now=NOW + timedelta(seconds=5), spec=spec(pending_timeout="30s"))
    assert early.status["phase"] == "Tuning" and "stuck" in early.status["message"]
    assert phases(early)["tune"] == "Running"
    assert any(e.reason == "StepStuck" and "Insufficient nvidia.com/gpu" in e.message for e in early.events)
    late = run(early.status, stuck, now=NOW + timedelta(seconds=31), spec=spec(pending_timeout="30s"))
    assert late.status["phase"] == "Failed" and late.delete == [job_name("iris", RUN, "tune")]
    assert "pendingTimeout=30s" in late.status["message"] and "Unschedulable" in late.status["message"]
    after = run(late.status, {k: v for k, v in stuck.items() if k != "tune"}, now=NOW + timedelta(seconds=40))
    assert after.status["phase"] == "Failed" and after.create == []


def test_a_new_run_id_starts_over() -> None:
    old = run({}, done(*STEPS)).status
    decision = decide("iris", spec(), MLPipelineStatus.model_validate(old), "ffff000000", "rerun", 2, {}, NOW)
    assert decision.create == ["ingest"] and decision.status.run and decision.status.run.trigger == "rerun"
    assert "supersedes run abcd123456" in decision.events[0].message


def test_run_ids_follow_what_training_reads_and_the_rerun_token() -> None:
    base = spec()
    changed = base.model_copy(deep=True)
    changed.evaluate.min = 0.5
    assert run_id(base, "iris") == run_id(spec(), "iris")
    assert len({run_id(base, "iris"), run_id(changed, "iris"), run_id(base, "iris", rerun="2")}) == 3
    assert run_id(base, "iris", "data-v1") != run_id(base, "iris", "data-v2")  # the local runner's data hash


def test_serving_and_canary_settings_keep_the_run() -> None:
    """Editing serving re-applies serving; it must not retrain (the same run, the same Jobs)."""
    base = spec()
    edited = base.model_copy(deep=True)
    edited.serve.replicas = 5
    edited.serve.canary.steps = [5, 20, 80]
    edited.serve.canary.analysis.max_error_rate = 0.2
    edited.steps.pod_annotations = {"team": "vision"}
    assert run_id(edited, "iris") == run_id(base, "iris")


def test_a_finished_run_records_the_gate_score_and_report_the_evaluate_step_reported() -> None:
    result = {"metrics": {"accuracy": 0.9667, "f1_macro": 0.96}, "report": "s3://b/run/evaluate/report.html"}
    evaluate = step("evaluate", succeeded=1, complete=True, result=result)
    model = model_status(spec(), RUN, "file:///a/model.bentomodel", evaluate)
    assert (model.version, model.metric, model.score) == (RUN, "accuracy", 0.9667)
    assert model.report == "s3://b/run/evaluate/report.html"
    assert model_status(spec(), RUN, "file:///a", step("evaluate", complete=True)).score is None


def test_a_job_without_a_pod_yet_leaves_its_step_starting() -> None:
    """A Job is observed before its pod exists (or while a queue holds it): the step stays Pending,
    announced as started only once a pod runs (one status write fewer per step)."""
    created = run({}, done("ingest"))
    assert created.create == ["preprocess"]
    waiting = run(created.status, done("ingest") | {"preprocess": step("preprocess")})
    preprocess = waiting.status["run"]["steps"][1]
    assert preprocess["phase"] == "Pending" and preprocess["job"].endswith("-preprocess")
    assert waiting.status["phase"] == "Preprocessing" and waiting.create == []
    assert "StepStarted" not in [e.reason for e in waiting.events]
    started = run(waiting.status, done("ingest") | {"preprocess": step("preprocess", active=1)})
    assert started.status["run"]["steps"][1]["phase"] == "Running"
    assert "StepStarted" in [e.reason for e in started.events]
    assert "startedAt" not in preprocess, "no pod, no start time"


def test_a_job_that_failed_before_any_pod_ran_fails_its_step() -> None:
    failed = step("preprocess", failed_reason="DeadlineExceeded", failed_message="Job was active longer")
    decision = run({}, done("ingest") | {"preprocess": failed})
    assert decision.status["run"]["steps"][1]["phase"] == "Failed" and decision.status["phase"] == "Failed"

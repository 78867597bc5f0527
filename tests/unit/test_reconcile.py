"""The operator's state machine, transition by transition, without a cluster."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from mlpipeline.api.manifest import load_manifest
from mlpipeline.api.models import MLPipelineSpec
from mlpipeline.engine.plan import STEPS
from mlpipeline.engine.reconcile import Decision, JobObservation, decide, job_name, run_id

from tests.conftest import EXAMPLES

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
RUN = "abcd1234"


def spec(**steps: Any) -> MLPipelineSpec:
    base = load_manifest(EXAMPLES / "iris.yaml").spec
    return base.model_copy(update={"steps": base.steps.model_copy(update=steps)}) if steps else base


def step(name: str, **fields: Any) -> JobObservation:
    return JobObservation(name=job_name("iris", RUN, name), run=RUN, **fields)


def done(*names: str) -> dict[str, JobObservation]:
    return {n: step(n, succeeded=1, complete=True, started_at="t0", finished_at="t1") for n in names}


def run(status: dict[str, Any], jobs: dict[str, JobObservation], now: datetime = NOW, **kw: Any) -> Decision:
    return decide("iris", kw.pop("spec", spec()), status, RUN, "create", 1, jobs, now)


def phases(decision: Decision) -> dict[str, str]:
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
    decision = decide("iris", spec(), old, "ffff0000", "rerun", 2, {}, NOW)
    assert decision.create == ["ingest"] and decision.status["run"]["trigger"] == "rerun"
    assert "supersedes run abcd1234" in decision.events[0].message


def test_run_ids_follow_spec_and_rerun_token() -> None:
    base = spec()
    changed = base.model_copy(deep=True)
    changed.evaluate.min = 0.5
    assert run_id(base, None) == run_id(spec(), None)
    assert len({run_id(base, None), run_id(changed, None), run_id(base, "2")}) == 3

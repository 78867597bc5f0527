"""The serving state machine, transition by transition: first deploy, canary start, analysis not yet
due, every check failing, no data (hold, fail, pass), promotion, rollback, a newer version arriving
mid-canary, and the manual controls acted on once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from mlpipeline.api.models import AnalysisCheck, ServeSpec, ServingStatus
from mlpipeline.engine.serving import (
    ANSWER_POLL,
    CANARY,
    DEPLOYING,
    ROLLED_BACK,
    SERVING,
    ServingPlan,
    Topology,
    analysis_due,
    decide,
    replica_split,
    until_answering,
)

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
SPEC = ServeSpec.model_validate(
    {
        "replicas": 4,
        "canary": {
            "steps": [10, 50],
            "interval": "30s",
            "analysis": {"interval": "5s", "failureThreshold": 2, "noDataDeadline": "1m"},
        },
    }
)


def check(name: str, value: float | None, threshold: float, verdict: str) -> AnalysisCheck:
    return AnalysisCheck(name=name, query=f"q_{name}", value=value, threshold=threshold, verdict=verdict)


PASS = [check("errorRate", 0.0, 0.01, "pass"), check("latencyP95", 0.05, 0.25, "pass")]
NODATA = [check("errorRate", None, 0.01, "nodata")]
FAILING = {
    "errorRate": check("errorRate", 0.2, 0.01, "fail"),
    "latencyP95": check("latencyP95", 0.4, 0.25, "fail"),
    "predictionShift": check("predictionShift", 0.9, 0.2, "fail"),
}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def with_spec(**analysis: object) -> ServeSpec:
    return SPEC.model_copy(
        update={
            "canary": SPEC.canary.model_copy(
                update={"analysis": SPEC.canary.analysis.model_copy(update=analysis)}
            )
        }
    )


def serving_v1() -> ServingStatus:
    return decide(SPEC, None, "v1", "replicas", None, None, T0).status


def canary_v2(spec: ServeSpec = SPEC, provider: str = "replicas") -> ServingStatus:
    return decide(spec, serving_v1(), "v2", provider, None, None, T0).status


def tick(
    status: ServingStatus,
    seconds: float,
    checks: list[AnalysisCheck] | None,
    spec: ServeSpec = SPEC,
    control: str | None = None,
    version: str = "v2",
) -> ServingPlan:
    return decide(spec, status, version, "replicas", control, checks, at(seconds))


def test_the_first_version_is_deployed_as_stable_with_every_replica() -> None:
    plan = decide(SPEC, None, "v1", "replicas", None, None, T0)
    assert plan.phase == SERVING and plan.status.stable == "v1" and plan.status.canary is None
    assert plan.topology == Topology({"v1": 4}, "v1")
    assert [e.reason for e in plan.events] == ["Deployed"] and plan.requeue_after is None


def test_the_same_version_again_changes_nothing() -> None:
    plan = decide(SPEC, serving_v1(), "v1", "replicas", None, None, at(60))
    assert plan.phase == SERVING and plan.topology is None and plan.remove == [] and plan.events == []


def test_a_new_version_starts_a_canary_at_the_first_step() -> None:
    plan = decide(SPEC, serving_v1(), "v2", "replicas", None, None, T0)
    assert plan.phase == CANARY and plan.status.canary == "v2" and plan.status.canary_weight == 10
    assert plan.topology == Topology({"v1": 3, "v2": 1}, "v1", "v2", 10)  # 10 % of 4 pods, at least one
    assert plan.events[-1].reason == "CanaryStarted" and plan.requeue_after == 5


def test_with_the_gateway_api_both_versions_run_at_full_size() -> None:
    plan = decide(SPEC, serving_v1(), "v2", "gatewayAPI", None, None, T0)
    assert plan.topology == Topology({"v1": 4, "v2": 4}, "v1", "v2", 10)


def test_an_analysis_is_due_only_after_its_interval() -> None:
    status = canary_v2()
    assert not analysis_due(SPEC, status, at(3))
    assert analysis_due(SPEC, status, at(5))
    waiting = tick(status, 3, None)
    assert waiting.phase == CANARY and waiting.topology is None and waiting.requeue_after == pytest.approx(2)
    assert waiting.status == status


def test_passing_checks_hold_the_step_then_advance_then_promote() -> None:
    early = tick(canary_v2(), 5, PASS)
    assert early.status.canary_weight == 10 and early.topology is None
    assert [e.reason for e in early.events] == ["CanaryAnalysis"]
    advanced = tick(early.status, 31, PASS)
    assert advanced.status.canary_weight == 50 and advanced.topology == Topology(
        {"v1": 2, "v2": 2}, "v1", "v2", 50
    )
    assert "CanaryAdvanced" in [e.reason for e in advanced.events]
    done = tick(advanced.status, 62, PASS)
    assert done.phase == SERVING and done.status.stable == "v2" and done.status.canary is None
    assert done.topology == Topology({"v2": 4}, "v2") and done.remove == ["v1"]
    assert done.status.phase == "Promoted" and "CanaryPromoted" in [e.reason for e in done.events]


@pytest.mark.parametrize("failing", sorted(FAILING))
def test_each_failing_check_rolls_back_after_the_failure_threshold(failing: str) -> None:
    checks = [*PASS[:1], FAILING[failing]] if failing != "errorRate" else [FAILING[failing]]
    once = tick(canary_v2(), 5, checks)
    assert (
        once.phase == CANARY and once.status.failures == 1 and once.events[-1].reason == "CanaryCheckFailed"
    )
    twice = tick(once.status, 10, checks)
    assert twice.phase == ROLLED_BACK and twice.status.stable == "v1" and twice.status.rolled_back == "v2"
    assert twice.topology == Topology({"v1": 4}, "v1") and twice.remove == ["v2"]
    assert f"{failing}=" in twice.message and "rolled back after 2 failed analyses" in twice.message
    assert twice.status.checks[-1].name == failing and twice.status.checks[-1].verdict == "fail"


def test_only_consecutive_failures_count() -> None:
    once = tick(canary_v2(), 5, [FAILING["errorRate"]])
    recovered = tick(once.status, 10, PASS)
    assert recovered.status.failures == 0
    assert tick(recovered.status, 15, [FAILING["errorRate"]]).phase == CANARY


def test_no_data_holds_until_the_deadline_then_rolls_back() -> None:
    held = tick(canary_v2(), 40, NODATA)
    assert held.phase == CANARY and held.status.canary_weight == 10 and held.status.no_data_since
    still = tick(held.status, 90, NODATA)
    assert still.phase == CANARY and "holding at 10%" in still.message
    late = tick(still.status, 101, NODATA)
    assert late.phase == ROLLED_BACK and "no data for 61s" in late.message and late.remove == ["v2"]


def test_data_returning_clears_the_hold() -> None:
    held = tick(canary_v2(), 5, NODATA)
    assert tick(held.status, 10, PASS).status.no_data_since is None


def test_no_data_fail_and_pass_policies() -> None:
    failing = with_spec(no_data="fail")
    once = tick(canary_v2(failing), 5, NODATA, failing)
    assert tick(once.status, 10, NODATA, failing).phase == ROLLED_BACK
    passing = with_spec(no_data="pass")
    assert tick(canary_v2(passing), 31, NODATA, passing).status.canary_weight == 50


def test_a_rolled_back_canary_leaves_nothing_for_the_next_one() -> None:
    """Bug: a stale noDataSince of the last canary rolled the next one back at once."""
    held = tick(canary_v2(), 40, NODATA)
    rolled = tick(tick(held.status, 90, NODATA).status, 101, NODATA)
    assert rolled.status.no_data_since is None and rolled.status.failures is None
    nxt = decide(SPEC, rolled.status, "v3", "replicas", None, None, at(200))
    assert nxt.status.canary == "v3" and nxt.status.no_data_since is None
    first_tick = tick(nxt.status, 205, NODATA, version="v3")
    assert first_tick.phase == CANARY and "holding" in first_tick.message


def test_a_rolled_back_version_is_not_canaried_again() -> None:
    rolled = tick(canary_v2(), 1, None, control="abort")
    again = decide(SPEC, rolled.status, "v2", "replicas", None, None, at(60))
    assert again.phase == ROLLED_BACK and again.topology is None and again.status.stable == "v1"


def test_a_newer_version_mid_canary_replaces_the_old_canary() -> None:
    """Bug: the old canary's Deployment was orphaned and kept taking traffic."""
    advanced = tick(tick(canary_v2(), 5, PASS).status, 31, PASS)
    plan = decide(SPEC, advanced.status, "v3", "replicas", None, None, at(40))
    assert plan.phase == CANARY and plan.status.canary == "v3" and plan.status.canary_weight == 10
    assert plan.remove == ["v2"] and plan.topology == Topology({"v1": 3, "v3": 1}, "v1", "v3", 10)
    assert [e.reason for e in plan.events] == ["CanarySuperseded", "CanaryStarted"]
    assert plan.status.step == 0 and plan.status.failures == 0


def test_going_back_to_the_stable_version_mid_canary_withdraws_the_canary() -> None:
    plan = decide(SPEC, canary_v2(), "v1", "replicas", None, None, at(10))
    assert plan.phase == SERVING and plan.status.canary is None and plan.remove == ["v2"]
    assert plan.topology == Topology({"v1": 4}, "v1")


def test_abort_and_promote_act_at_once_without_waiting_for_an_analysis() -> None:
    aborted = tick(canary_v2(), 1, None, control="abort")
    assert (
        aborted.phase == ROLLED_BACK and "aborted by the mlpipeline.dev/canary annotation" in aborted.message
    )
    assert aborted.remove == ["v2"]
    promoted = tick(canary_v2(), 1, None, control="promote")
    assert promoted.phase == SERVING and promoted.status.stable == "v2" and promoted.remove == ["v1"]


def test_pause_holds_the_weight_until_resumed() -> None:
    paused = tick(canary_v2(), 1, None, control="pause")
    assert paused.status.phase == "Paused" and paused.status.canary_weight == 10
    assert not analysis_due(SPEC, paused.status, at(100))
    later = tick(paused.status, 100, None, control="pause")
    assert later.status.phase == "Paused" and later.events == []
    resumed = tick(later.status, 101, None, control="resume")
    assert resumed.status.phase == "Progressing" and resumed.status.step_started_at == "2026-11-24T12:01:41Z"
    assert [e.reason for e in resumed.events] == ["CanaryResumed"]


def test_removing_the_pause_annotation_resumes() -> None:
    paused = tick(canary_v2(), 1, None, control="pause")
    assert tick(paused.status, 2, None, control=None).status.phase == "Progressing"


def test_a_control_value_acts_once_and_never_on_a_later_canary() -> None:
    """Bug: the annotation left in place (in Git, say) decided every later canary."""
    aborted = tick(canary_v2(), 1, None, control="abort")
    record = aborted.status.control
    assert record and (record.value, record.action, record.canary) == ("abort", "abort", "v2")
    nxt = decide(SPEC, aborted.status, "v3", "replicas", "abort", None, at(60))
    assert nxt.phase == CANARY and nxt.status.canary == "v3"
    still = decide(SPEC, nxt.status, "v3", "replicas", "abort", PASS, at(65))
    assert still.phase == CANARY
    again = decide(SPEC, still.status, "v3", "replicas", "abort/2", None, at(66))
    assert again.phase == ROLLED_BACK and again.status.rolled_back == "v3"


def test_a_control_without_a_canary_is_recorded_and_ignored() -> None:
    plan = decide(SPEC, serving_v1(), "v1", "replicas", "promote", None, at(5))
    assert (
        plan.phase == SERVING
        and plan.status.control
        and "no canary is in progress" in (plan.status.control.message or "")
    )
    assert [e.reason for e in plan.events] == ["ControlIgnored"]
    later = decide(SPEC, plan.status, "v2", "replicas", "promote", None, at(10))
    assert later.phase == CANARY  # the old value does not promote the new canary


def test_an_unknown_control_value_is_a_warning() -> None:
    plan = tick(canary_v2(), 1, None, control="rollback")
    assert (
        plan.phase == CANARY and plan.events[0].type == "Warning" and "use one of" in plan.events[0].message
    )


def test_replica_split() -> None:
    assert replica_split(4, 0) == (4, 0)
    assert replica_split(4, 10) == (3, 1)
    assert replica_split(4, 50) == (2, 2)
    assert replica_split(1, 50) == (1, 1)
    assert replica_split(4, 100) == (0, 4)


def test_an_edited_serving_spec_is_reapplied_without_a_canary() -> None:
    wider = SPEC.model_copy(update={"replicas": 6})
    plan = decide(wider, serving_v1(), "v1", "replicas", None, None, at(60))
    assert plan.phase == SERVING and plan.topology == Topology({"v1": 6}, "v1") and plan.status.canary is None
    assert decide(wider, plan.status, "v1", "replicas", None, None, at(61)).topology is None


def test_a_stable_version_is_serving_only_once_a_replica_is_ready() -> None:
    first = decide(SPEC, None, "v1", "replicas", None, None, T0)
    assert first.phase == SERVING
    waiting = until_answering(first, ready=0, wanted=4)
    assert waiting.phase == DEPLOYING and waiting.requeue_after == ANSWER_POLL
    assert waiting.message == "deploying model v1: none of its 4 replicas is ready yet"
    assert waiting.topology == first.topology and waiting.events == first.events  # still applied, announced
    assert until_answering(first, ready=1, wanted=4) is first
    assert until_answering(first, ready=0, wanted=0) is first  # scaled to zero: nothing to wait for


def test_a_canary_in_progress_is_not_held_by_its_readiness() -> None:
    stable = ServingStatus(stable="v1", phase="Stable", provider="replicas")
    started = decide(SPEC, stable, "v2", "replicas", None, None, T0)
    assert started.phase == CANARY
    assert until_answering(started, ready=0, wanted=4) is started  # the analysis judges the canary

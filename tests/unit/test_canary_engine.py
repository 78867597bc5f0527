"""The canary state machine tick by tick: advance, promote, roll back, hold, manual control."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mlpipeline.api.models import CanarySpec
from mlpipeline.engine.canary import CheckResult, decide, start

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
SPEC = CanarySpec.model_validate(
    {"steps": [10, 50], "interval": "30s", "analysis": {"failureThreshold": 2, "noDataDeadline": "1m"}}
)
PASS = [CheckResult("errorRate", "q", 0.0, 0.01, "pass")]
FAIL = [CheckResult("errorRate", "q", 0.2, 0.01, "fail", stable=0.0)]
NODATA = [CheckResult("errorRate", "q", None, 0.01, "nodata")]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_passing_checks_advance_after_each_interval_then_promote() -> None:
    state = start("m:1", "m:2", SPEC, T0)
    assert state["canaryWeight"] == 10
    early = decide(state, SPEC, PASS, at(5))
    assert early.weight == 10 and early.outcome is None  # the step interval has not passed
    advanced = decide(early.state, SPEC, PASS, at(31))
    assert advanced.weight == 50 and advanced.events[0][1] == "CanaryAdvanced"
    done = decide(advanced.state, SPEC, PASS, at(62))
    assert done.outcome == "promoted" and done.weight == 0
    assert (
        done.state["stable"] == "m:2" and done.state["canary"] is None and done.state["phase"] == "Promoted"
    )


def test_consecutive_failures_roll_back_with_the_check_and_value() -> None:
    state = start("m:1", "m:2", SPEC, T0)
    once = decide(state, SPEC, FAIL, at(5))
    assert once.outcome is None and once.state["failures"] == 1 and once.weight == 10
    recovered = decide(once.state, SPEC, PASS, at(10))
    assert recovered.state["failures"] == 0  # only consecutive failures count
    twice = decide(decide(recovered.state, SPEC, FAIL, at(15)).state, SPEC, FAIL, at(20))
    assert twice.outcome == "rolledBack" and twice.weight == 0 and twice.state["stable"] == "m:1"
    assert "errorRate=0.2 (threshold 0.01): fail" in twice.state["message"]
    assert twice.events[-1][:2] == ("Warning", "CanaryRolledBack")
    assert twice.state["checks"][0]["query"] == "q"


def test_no_data_holds_then_fails_at_the_deadline() -> None:
    state = start("m:1", "m:2", SPEC, T0)
    held = decide(state, SPEC, NODATA, at(40))
    assert held.outcome is None and held.weight == 10 and held.state["noDataSince"]
    still = decide(held.state, SPEC, NODATA, at(90))
    assert still.outcome is None and "holding" in still.state["message"]
    late = decide(still.state, SPEC, NODATA, at(101))
    assert late.outcome == "rolledBack" and "no data for 61s" in late.state["message"]


def test_data_returning_clears_the_hold() -> None:
    held = decide(start("m:1", "m:2", SPEC, T0), SPEC, NODATA, at(5))
    back = decide(held.state, SPEC, PASS, at(10))
    assert "noDataSince" not in back.state


def test_no_data_policies_fail_and_pass() -> None:
    failing = SPEC.model_copy(update={"analysis": SPEC.analysis.model_copy(update={"no_data": "fail"})})
    state = start("m:1", "m:2", failing, T0)
    assert (
        decide(decide(state, failing, NODATA, at(5)).state, failing, NODATA, at(10)).outcome == "rolledBack"
    )
    passing = SPEC.model_copy(update={"analysis": SPEC.analysis.model_copy(update={"no_data": "pass"})})
    assert decide(start("m:1", "m:2", passing, T0), passing, NODATA, at(31)).weight == 50


def test_manual_controls() -> None:
    state = start("m:1", "m:2", SPEC, T0)
    paused = decide(state, SPEC, FAIL, at(100), control="pause")
    assert paused.state["phase"] == "Paused" and paused.state.get("failures", 0) == 0 and paused.weight == 10
    assert decide(state, SPEC, FAIL, at(1), control="promote").outcome == "promoted"
    aborted = decide(state, SPEC, PASS, at(1), control="abort")
    assert aborted.outcome == "rolledBack" and "aborted" in aborted.state["message"]

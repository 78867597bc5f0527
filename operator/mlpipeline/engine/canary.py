"""One analysis tick of a canary in progress: from the checks and the time, hold, advance, promote or
roll back. Pure; the serving engine (engine/serving.py) calls it when an analysis is due."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from mlpipeline.api.models import AnalysisCheck, CanarySpec, ServingPhase, ServingStatus, parse_duration
from mlpipeline.engine.event import Event
from mlpipeline.protocol import parse_stamp, stamp

Outcome = Literal["promoted", "rolledBack"]


@dataclass
class Tick:
    status: ServingStatus
    outcome: Outcome | None = None
    events: list[Event] = field(default_factory=list)


def start(stable: str, canary: str, spec: CanarySpec, now: datetime, provider: str) -> ServingStatus:
    """A fresh canary: nothing of an earlier canary (failures, no-data timer, control) carries over."""
    return ServingStatus(
        stable=stable,
        canary=canary,
        canary_weight=spec.steps[0],
        phase=ServingPhase.progressing,
        provider=provider,
        step=0,
        step_started_at=stamp(now),
        analyzed_at=stamp(now),
        failures=0,
        message=f"canary {canary} at {spec.steps[0]}%",
    )


def finish(state: ServingStatus, outcome: Outcome, message: str) -> Tick:
    """The canary's end: the winner takes all traffic; the timers of the canary are cleared."""
    assert state.canary is not None
    promoted = outcome == "promoted"
    done = ServingStatus(
        stable=state.canary if promoted else state.stable,
        phase=ServingPhase.promoted if promoted else ServingPhase.rolled_back,
        provider=state.provider,
        message=message,
        analyzed_at=state.analyzed_at,
        rolled_back=state.rolled_back if promoted else state.canary,
        checks=state.checks,
        control=state.control,
    )
    event = (
        Event("Normal", "CanaryPromoted", message)
        if promoted
        else Event("Warning", "CanaryRolledBack", message)
    )
    return Tick(done, outcome, [event])


def analyse(state: ServingStatus, spec: CanarySpec, checks: list[AnalysisCheck], now: datetime) -> Tick:
    """One analysis of the canary in ``state`` (phase Progressing)."""
    new = state.model_copy(deep=True, update={"checks": checks, "analyzed_at": stamp(now)})
    canary = new.canary
    analysis = spec.analysis
    failed = [c for c in checks if c.verdict == "fail"]
    no_data = [c for c in checks if c.verdict == "nodata"]
    if no_data and not failed:
        if analysis.no_data == "fail":
            failed = no_data
        elif analysis.no_data == "hold":
            new.no_data_since = new.no_data_since or stamp(now)
            waited = (now - parse_stamp(new.no_data_since)).total_seconds()
            if waited >= parse_duration(analysis.no_data_deadline):
                return finish(
                    new,
                    "rolledBack",
                    f"canary {canary} rolled back: no data for {waited:.0f}s "
                    f"(noData=hold, noDataDeadline={analysis.no_data_deadline}): "
                    + "; ".join(c.describe() for c in no_data),
                )
            new.message = f"holding at {new.canary_weight}%: no data for {waited:.0f}s"
            return Tick(new, events=[Event("Normal", "CanaryHeld", new.message)])
    new.no_data_since = None
    if failed:
        new.failures = (new.failures or 0) + 1
        detail = "; ".join(c.describe() for c in failed)
        if new.failures >= analysis.failure_threshold:
            return finish(
                new,
                "rolledBack",
                f"canary {canary} rolled back after {new.failures} failed analyses: {detail}",
            )
        new.message = f"analysis failed ({new.failures}/{analysis.failure_threshold}): {detail}"
        return Tick(new, events=[Event("Warning", "CanaryCheckFailed", new.message)])
    new.failures = 0
    assert new.step is not None and new.step_started_at is not None
    if (now - parse_stamp(new.step_started_at)).total_seconds() < parse_duration(spec.interval):
        new.message = f"canary {canary} at {new.canary_weight}%: checks pass"
        return Tick(new)
    if new.step + 1 >= len(spec.steps):
        return finish(new, "promoted", f"canary {canary} promoted after passing every step ({spec.steps})")
    new.step += 1
    new.canary_weight = spec.steps[new.step]
    new.step_started_at = stamp(now)
    new.message = f"canary {canary} advanced to {new.canary_weight}%"
    return Tick(new, events=[Event("Normal", "CanaryAdvanced", new.message)])

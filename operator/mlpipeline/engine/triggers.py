"""Whether a pipeline retrains by itself now: its schedule, the cooldown and the concurrency policy.

Pure: the spec, the recorded RetrainStatus, whether a run is in progress and ``now`` in; the new
record, the trigger that fired (if any), the Events and when to look again out. The record is the
memory that makes the operator safe to restart: a scheduled time acted on (fired or skipped) is
never acted on again, the first sight of a schedule fires nothing (no run for times before it
existed), and after downtime only the latest missed time fires.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from mlpipeline.api.models import ConcurrencyPolicy, RetrainSpec, RetrainStatus, TriggerRecord, parse_duration
from mlpipeline.engine.event import Event
from mlpipeline.protocol import parse_stamp, stamp
from mlpipeline.schedule import Schedule


@dataclass(frozen=True)
class Firing:
    kind: str  # what RunStatus.trigger records
    value: str  # what fired it


@dataclass
class TriggerPlan:
    status: RetrainStatus | None
    fired: Firing | None = None
    events: list[Event] = field(default_factory=list)
    wake_after: float | None = None  # seconds until the next scheduled time


def decide(spec: RetrainSpec, status: RetrainStatus | None, busy: bool, now: datetime) -> TriggerPlan:
    if not spec.schedule:
        return TriggerPlan(None if status is None else status.model_copy(update={"schedule": None}))
    schedule = Schedule.parse(spec.schedule, spec.time_zone)
    new = (status or RetrainStatus()).model_copy(deep=True)
    if new.schedule != str(schedule) or not new.since:
        new.schedule, new.since = str(schedule), stamp(now)  # a new schedule counts from now
    plan = TriggerPlan(new)
    due = schedule.latest_due(parse_stamp(new.since), now)
    if due is not None:
        new.since = stamp(due)
        value = f"{schedule} at {due.isoformat()}"
        skip = _why_skip(spec, new, busy, now)
        if skip:
            new.last = TriggerRecord(
                kind="schedule", value=value, at=stamp(now), action="skipped", reason=skip
            )
            plan.events.append(Event("Normal", "RetrainSkipped", f"schedule {value} skipped: {skip}"))
        else:
            new.last = TriggerRecord(kind="schedule", value=value, at=stamp(now), action="started")
            new.token, new.fired_at = f"schedule@{stamp(due)}", stamp(now)
            plan.fired = Firing("schedule", value)
            plan.events.append(Event("Normal", "RetrainTriggered", f"schedule {value}: a new run starts"))
    upcoming = schedule.next_after(max(parse_stamp(new.since), now))
    new.next_at = stamp(upcoming)
    plan.wake_after = (upcoming - now).total_seconds()
    return plan


def _why_skip(spec: RetrainSpec, status: RetrainStatus, busy: bool, now: datetime) -> str | None:
    if busy and spec.concurrency_policy == ConcurrencyPolicy.Forbid:
        return "a run or canary is in progress (concurrencyPolicy: Forbid)"
    cooldown = parse_duration(spec.cooldown)
    if status.fired_at and cooldown > 0:
        waited = (now - parse_stamp(status.fired_at)).total_seconds()
        if waited < cooldown:
            return f"{waited:.0f}s since the last triggered run, within the cooldown of {spec.cooldown}"
    return None

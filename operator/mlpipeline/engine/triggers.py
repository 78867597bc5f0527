"""Whether a pipeline retrains by itself now: its schedule, sustained drift, the cooldown and the
concurrency policy.

Pure: the spec, the recorded RetrainStatus, whether a run is in progress and ``now`` in; the new
record, the trigger that fired (if any), the Events and when to look again out. The record is the
memory that makes the operator safe to restart: a scheduled time acted on (fired or skipped) is
never acted on again, the first sight of a schedule fires nothing (no run for times before it
existed), and after downtime only the latest missed time fires.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from mlpipeline.api.models import (
    ConcurrencyPolicy,
    MonitoringStatus,
    RetrainSpec,
    RetrainStatus,
    TriggerRecord,
    parse_duration,
)
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


def decide(
    spec: RetrainSpec,
    status: RetrainStatus | None,
    busy: bool,
    now: datetime,
    drift: MonitoringStatus | None = None,
) -> TriggerPlan:
    """``drift``: the stable version's last drift reading (status.monitoring)."""
    if not spec.schedule and not spec.on_drift:
        return TriggerPlan(None if status is None else status.model_copy(update={"schedule": None}))
    new = (status or RetrainStatus()).model_copy(deep=True)
    plan = TriggerPlan(new)
    wakes: list[float] = []
    if spec.schedule:
        schedule = Schedule.parse(spec.schedule, spec.time_zone)
        if new.schedule != str(schedule) or not new.since:
            new.schedule, new.since = str(schedule), stamp(now)  # a new schedule counts from now
        due = schedule.latest_due(parse_stamp(new.since), now)
        if due is not None:
            new.since = stamp(due)
            _act(
                plan,
                spec,
                busy,
                now,
                Firing("schedule", f"{schedule} at {due.isoformat()}"),
                f"schedule@{stamp(due)}",
            )
        upcoming = schedule.next_after(max(parse_stamp(new.since), now))
        new.next_at = stamp(upcoming)
        wakes.append((upcoming - now).total_seconds())
    else:
        new.schedule = new.next_at = None
    if spec.on_drift and plan.fired is None:
        wakes.extend(_drift(plan, spec, busy, now, drift))
    else:
        new.drift_since = None if not spec.on_drift else new.drift_since
    plan.wake_after = min(wakes) if wakes else None
    return plan


def _act(plan: TriggerPlan, spec: RetrainSpec, busy: bool, now: datetime, firing: Firing, token: str) -> None:
    """Fires ``firing`` or records why it is skipped."""
    new = plan.status
    assert new is not None
    skip = _why_skip(spec, new, busy, now)
    if skip:
        new.last = TriggerRecord(
            kind=firing.kind, value=firing.value, at=stamp(now), action="skipped", reason=skip
        )
        plan.events.append(Event("Normal", "RetrainSkipped", f"{firing.kind} {firing.value} skipped: {skip}"))
        return
    new.last = TriggerRecord(kind=firing.kind, value=firing.value, at=stamp(now), action="started")
    new.token, new.fired_at = token, stamp(now)
    plan.fired = firing
    plan.events.append(Event("Normal", "RetrainTriggered", f"{firing.kind} {firing.value}: a new run starts"))


def _drift(
    plan: TriggerPlan, spec: RetrainSpec, busy: bool, now: datetime, drift: MonitoringStatus | None
) -> list[float]:
    """Fires when the counted features stayed drifted for onDrift.sustained; returns when to look again."""
    assert spec.on_drift is not None and plan.status is not None
    new = plan.status
    wanted = spec.on_drift.features
    counted = [f for f in (drift.features if drift else []) if f.drifted and (not wanted or f.name in wanted)]
    if not counted or drift is None:
        new.drift_since = None
        return []
    new.drift_since = new.drift_since or stamp(now)
    since = parse_stamp(new.drift_since)
    left = parse_duration(spec.on_drift.sustained) - (now - since).total_seconds()
    if left > 0:
        return [left]
    values = ", ".join(f"{f.name}={f.value:.3f}" for f in counted if f.value is not None)
    firing = Firing(
        "drift", f"{values} above {drift.threshold:g} since {new.drift_since} (version {drift.model_version})"
    )
    token = f"drift@{new.drift_since}"
    new.drift_since = None  # drift must be sustained again before the next firing
    _act(plan, spec, busy, now, firing, token)
    return []


def _why_skip(spec: RetrainSpec, status: RetrainStatus, busy: bool, now: datetime) -> str | None:
    if busy and spec.concurrency_policy == ConcurrencyPolicy.Forbid:
        return "a run or canary is in progress (concurrencyPolicy: Forbid)"
    cooldown = parse_duration(spec.cooldown)
    if status.fired_at and cooldown > 0:
        waited = (now - parse_stamp(status.fired_at)).total_seconds()
        if waited < cooldown:
            return f"{waited:.0f}s since the last triggered run, within the cooldown of {spec.cooldown}"
    return None

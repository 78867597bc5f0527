"""Whether a pipeline retrains by itself now: its schedule, sustained drift, the cooldown and the
concurrency policy.

Pure: the spec, the recorded RetrainStatus, whether a run is in progress and ``now`` in; the new
record, the trigger that fired (if any), the Events and when to look again out. The record is the
memory that makes the operator safe to restart: a scheduled time acted on (fired or skipped) is
never acted on again, the first sight of a schedule fires nothing (no run for times before it
existed), and after downtime only the latest missed time fires.

Drift with no new data since the latest run does not rerun the same inputs (they would train the
same model, whose drift would stay): with spec.labeling the plan asks for a labeling round over the
served records that drifted (``TriggerPlan.label``), so that people label what changed and the
next run learns it; without, the drift is reported once (``RetrainSkipped``). Either answer is
given once, until new data, a run, a new serving version, or drift that clears and comes back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from mlpipeline.api.models import (
    ConcurrencyPolicy,
    DataStatus,
    DriftAnswer,
    FeatureDriftStatus,
    LabelingStatus,
    LabelRound,
    LabelRoundPhase,
    MLPipelineSpec,
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


@dataclass(frozen=True)
class Listing:
    """The partitions of spec.data.uri as the operator just listed them (sorted by name), with the
    rows it counted of those ``new_partitions`` asked for."""

    partitions: list[tuple[str, float | None]]  # name, modified (seconds since the epoch)
    rows: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    note: str | None = None  # said in the status beside the trigger's message (a truncated listing)


PENDING_SHOWN = 20


def new_partitions(
    spec: RetrainSpec, status: RetrainStatus | None, listing: Listing, now: datetime
) -> list[str]:
    """The new partitions that have settled, in order, stopping at the first one still being
    written (so what was processed only ever moves forward): the ones to count rows of."""
    assert spec.on_new_data is not None
    processed = status.data.processed if status and status.data else None
    if processed is None:
        return []
    return settled_after(listing, processed, parse_duration(spec.on_new_data.settle), now)


def settled_after(listing: Listing, processed: str | None, settle: float, now: datetime) -> list[str]:
    """The files named after ``processed`` (all when None) that nobody has written to for
    ``settle`` seconds, in order, up to the first that is still being written."""
    settled = []
    for name, modified in listing.partitions:
        if processed is not None and name <= processed:
            continue
        if modified is None or now.timestamp() - modified < settle:
            break
        settled.append(name)
    return settled


def data_changed_since(listing: Listing | None, started: str | None) -> bool | None:
    """Whether a file of ``listing`` (spec.data.uri) was written after ``started`` (the latest
    run's start); None when that cannot be told (no listing, a listing error, no run yet)."""
    if listing is None or listing.error or not listing.partitions or not started:
        return None
    since = parse_stamp(started).timestamp()
    return any(modified is None or modified > since for _, modified in listing.partitions)


def round_under_way(status: LabelingStatus | None) -> LabelRound | None:
    """The labeling round in progress, or failed and waiting to be tried again."""
    current = status.round if status else None
    if current is None:
        return None
    waiting = current.phase == LabelRoundPhase.failed and current.retry_at is not None
    return (
        current if current.phase in (LabelRoundPhase.proposing, LabelRoundPhase.awaiting) or waiting else None
    )


@dataclass(frozen=True)
class DriftContext:
    """What tells a drift-triggered run that would learn something from a futile one, as the
    executor knows it."""

    latest_run: str | None = None  # the latest run's id (a run since an answer makes drift count again)
    new_data: bool | None = None  # whether a run now reads data the latest run did not; None: unknown
    labeling: bool = False  # spec.labeling is set
    captured: bool = True  # spec.monitoring.capture.sampleRate > 0: served records are kept to label
    round_under_way: str | None = None  # the labeling round in progress
    window: float = 0.0  # spec.monitoring.drift.window in seconds: what one drift reading covers

    @classmethod
    def of(
        cls,
        spec: MLPipelineSpec,
        labeling: LabelingStatus | None,
        latest_run: str | None,
        new_data: bool | None,
    ) -> DriftContext:
        current = round_under_way(labeling)
        return cls(
            latest_run=latest_run,
            new_data=new_data,
            labeling=spec.labeling is not None,
            captured=spec.monitoring.capture.sample_rate > 0,
            round_under_way=current.id if current else None,
            window=parse_duration(spec.monitoring.drift.window),
        )


@dataclass(frozen=True)
class DriftLabels:
    """A labeling round asked for by drift: the served records of ``version`` captured from
    ``since`` to ``until`` (RFC 3339), the drifting window."""

    version: str
    since: str
    until: str
    value: str  # what drifted


@dataclass
class TriggerPlan:
    status: RetrainStatus | None
    fired: Firing | None = None
    events: list[Event] = field(default_factory=list)
    wake_after: float | None = None  # seconds until the next scheduled time
    label: DriftLabels | None = None  # a labeling round to start over the drifted served records


def decide(
    spec: RetrainSpec,
    status: RetrainStatus | None,
    busy: bool,
    now: datetime,
    drift: MonitoringStatus | None = None,
    listing: Listing | None = None,
    context: DriftContext | None = None,
) -> TriggerPlan:
    """``drift``: the stable version's last drift reading (status.monitoring); ``listing``: the
    partitions of spec.data.uri when the operator listed them in this reconciliation;
    ``context``: what the drift trigger knows of new data and labeling (default: nothing, so drift
    starts a run)."""
    if not spec.schedule and not spec.on_drift and not spec.on_new_data:
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
    if spec.on_new_data and listing is not None:
        _new_data(plan, spec, busy, now, listing)
    elif not spec.on_new_data:
        new.data = None
    if not spec.on_drift:
        new.drift_since = new.drift_without_new_data = None
    elif plan.fired is None:
        wakes.extend(_drift(plan, spec, busy, now, drift, context or DriftContext()))
    else:
        new.drift_without_new_data = None  # a run starts: its model's drift counts afresh
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


def drifted(spec: RetrainSpec, drift: MonitoringStatus | None) -> list[FeatureDriftStatus]:
    """The features (or 'prediction') above the threshold that onDrift counts."""
    wanted = spec.on_drift.features if spec.on_drift else []
    return [f for f in (drift.features if drift else []) if f.drifted and (not wanted or f.name in wanted)]


def drift_due(
    spec: RetrainSpec, status: RetrainStatus | None, drift: MonitoringStatus | None, now: datetime
) -> bool:
    """Whether counted drift has been sustained long enough to act on now: when an executor needs
    to know whether a run would read new data (a listing, a fingerprint), and only then."""
    if spec.on_drift is None or not drifted(spec, drift):
        return False
    since = parse_stamp(status.drift_since) if status and status.drift_since else now
    return (now - since).total_seconds() >= parse_duration(spec.on_drift.sustained)


def _drift(
    plan: TriggerPlan,
    spec: RetrainSpec,
    busy: bool,
    now: datetime,
    drift: MonitoringStatus | None,
    context: DriftContext,
) -> list[float]:
    """Acts when the counted features stayed drifted for onDrift.sustained: a run when it would
    read new data (or that is unknown), else a labeling round or a skip, once; returns when to
    look again."""
    assert spec.on_drift is not None and plan.status is not None
    new = plan.status
    counted = drifted(spec, drift)
    if not counted or drift is None:
        new.drift_since = new.drift_without_new_data = None
        return []
    fresh = context.new_data
    if spec.on_new_data and new.data and new.data.processed is not None:
        fresh = bool(new.data.pending)  # partitions listed since the latest data-triggered run
    new.drift_since = new.drift_since or stamp(now)
    answered = new.drift_without_new_data
    if answered and (fresh or answered.version != drift.model_version or answered.run != context.latest_run):
        answered = new.drift_without_new_data = None
    if answered:
        return []  # answered once: nothing more until something changes
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
    held = (
        busy and spec.concurrency_policy == ConcurrencyPolicy.Forbid
    )  # the run in progress may change things
    if fresh is False and not held:
        _answer(plan, now, drift, firing, context, since)
        return []
    _act(plan, spec, busy, now, firing, token)
    return []


def _answer(
    plan: TriggerPlan,
    now: datetime,
    drift: MonitoringStatus,
    firing: Firing,
    context: DriftContext,
    since: datetime,
) -> None:
    """Drift with no new data since the latest run: a labeling round over the drifted served
    records (or the one under way), else one skip that says what to do."""
    new = plan.status
    assert new is not None
    run = f"run {context.latest_run}" if context.latest_run else "the latest run"
    persists = f"drift {firing.value} persists with no new data since {run}"
    version = drift.model_version
    action: Literal["labeling", "skipped"] = "labeling"
    if context.labeling and context.captured and context.round_under_way:
        message = (
            f"{persists}: labeling round {context.round_under_way} is under way; its labels are the "
            f"next run's new data"
        )
    elif context.labeling and context.captured and version:
        frm, to = stamp(since - timedelta(seconds=context.window)), stamp(now)
        plan.label = DriftLabels(version, frm, to, firing.value)
        message = (
            f"{persists}: a labeling round over the records version {version} served from {frm} to {to} "
            f"asks people to label what changed, instead of retraining on the same data"
        )
    else:
        action = "skipped"
        unkept = (
            " (spec.labeling is set, but spec.monitoring.capture.sampleRate is 0: no served record is kept)"
            if context.labeling
            else ""
        )
        message = (
            f"{persists}: a run would train the same model on the same data, so none starts{unkept}. "
            f"Label served records (spec.labeling) or add labeled data under spec.data.uri, and the "
            f"next run learns what changed; or set spec.retrain.onDrift off"
        )
    new.last = TriggerRecord(kind="drift", value=firing.value, at=stamp(now), action=action, reason=message)
    new.drift_without_new_data = DriftAnswer(
        version=version, run=context.latest_run, at=stamp(now), action=action, message=message
    )
    reason = "RetrainSkipped" if action == "skipped" else "DriftLabeling"
    plan.events.append(Event("Normal", reason, message))


def shown(pending: list[str]) -> tuple[list[str], int | None]:
    """What a status lists of files waiting (the oldest PENDING_SHOWN), and how many wait in all:
    a listing of thousands must not grow the status towards etcd's object limit."""
    return pending[:PENDING_SHOWN], len(pending) or None


def _new_data(plan: TriggerPlan, spec: RetrainSpec, busy: bool, now: datetime, listing: Listing) -> None:
    _read_new_data(plan, spec, busy, now, listing)
    data = plan.status.data if plan.status else None
    if data is not None:
        data.pending, data.pending_count = shown(data.pending)
    if listing.note and data is not None:
        data.message = f"{data.message}; {listing.note}" if data.message else listing.note


def _read_new_data(plan: TriggerPlan, spec: RetrainSpec, busy: bool, now: datetime, listing: Listing) -> None:
    """New settled partitions with enough rows fire a run; until then they wait in ``pending``
    (a busy pipeline or the cooldown delays them, never drops them)."""
    assert plan.status is not None and spec.on_new_data is not None
    new = plan.status
    data = (new.data or DataStatus()).model_copy(deep=True)
    new.data = data
    data.listed_at = stamp(now)
    if listing.error:
        data.message = listing.error
        return
    names = [name for name, _ in listing.partitions]
    data.partitions, data.message = len(names), None
    if data.processed is None:  # first listing: what exists now is what the current run read
        data.processed, data.pending = (names[-1] if names else ""), []
        return
    data.pending = [n for n in names if n > data.processed]
    settled = [n for n in new_partitions(spec, new, listing, now) if n in listing.rows]
    rows = sum(listing.rows[n] for n in settled)
    if not settled:
        data.message = "new partitions are settling" if data.pending else None
        return
    if rows < spec.on_new_data.min_new_rows:
        data.message = f"{rows} new rows, waiting for minNewRows={spec.on_new_data.min_new_rows}"
        return
    skip = _why_skip(spec, new, busy, now) if plan.fired is None else "another trigger fired"
    if skip:
        data.message = f"waiting: {skip}"
        return
    newest = settled[-1]
    value = f"{len(settled)} new partition(s), {rows} rows, newest {newest}"
    data.processed, data.pending = newest, [n for n in data.pending if n > newest]
    _act(plan, spec, busy, now, Firing("data", value), f"data@{newest}")


def _why_skip(spec: RetrainSpec, status: RetrainStatus, busy: bool, now: datetime) -> str | None:
    if busy and spec.concurrency_policy == ConcurrencyPolicy.Forbid:
        return "a run or canary is in progress (concurrencyPolicy: Forbid)"
    cooldown = parse_duration(spec.cooldown)
    if status.fired_at and cooldown > 0:
        waited = (now - parse_stamp(status.fired_at)).total_seconds()
        if waited < cooldown:
            return f"{waited:.0f}s since the last triggered run, within the cooldown of {spec.cooldown}"
    return None

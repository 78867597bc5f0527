"""Serving's state machine, shared by the operator and the local runner: from the serving spec, the
recorded status, the model version the pipeline produced, the manual control, the analysis (only
when one was due) and the time, decide what must run, what goes, the new status, the events and
when to look again. Pure: the executors only apply the plan (Deployments and an HTTPRoute in a
cluster; server processes and a router on a laptop)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from mlpipeline.api.models import (
    AnalysisCheck,
    ControlStatus,
    PipelinePhase,
    ServeSpec,
    ServingPhase,
    ServingStatus,
    parse_duration,
)
from mlpipeline.engine import canary
from mlpipeline.engine.event import Event
from mlpipeline.engine.plan import digest
from mlpipeline.protocol import CONTROL_ANNOTATION, parse_stamp, stamp

PAUSE, RESUME, PROMOTE, ABORT = "pause", "resume", "promote", "abort"
ACTIONS = (PAUSE, RESUME, PROMOTE, ABORT)
GATEWAY_API, REPLICAS, ROUTER = "gatewayAPI", "replicas", "router"

SERVING, CANARY, ROLLED_BACK = PipelinePhase.serving, PipelinePhase.canary, PipelinePhase.rolled_back
DEPLOYING = PipelinePhase.deploying
ANSWER_POLL = 2.0  # seconds between looks at a Deployment whose replicas are not ready yet


@dataclass(frozen=True)
class Topology:
    """What must run: the replicas of every version that serves, and the canary's traffic share."""

    replicas: dict[str, int]
    stable: str
    canary: str | None = None
    weight: int = 0


@dataclass
class ServingPlan:
    status: ServingStatus
    phase: PipelinePhase  # Serving, Canary or RolledBack (Deploying: until_answering)
    message: str
    topology: Topology | None = None  # None: what runs stays as it is
    remove: list[str] = field(default_factory=list)  # versions whose servers go
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None  # seconds until the next analysis is due


def replica_split(total: int, weight: int) -> tuple[int, int]:
    """(stable, canary) replicas so that the canary's share of pods approximates ``weight`` %."""
    if weight <= 0:
        return total, 0
    share = max(1, round(total * weight / 100))
    stable = max(total - share, 1) if weight < 100 else 0
    return stable, share


def topology(spec: ServeSpec, status: ServingStatus) -> Topology:
    assert status.stable is not None
    total = max(spec.replicas, 1)
    if not status.canary:
        return Topology({status.stable: spec.replicas}, status.stable)
    if status.provider == REPLICAS:
        stable, share = replica_split(total, status.canary_weight)
    else:  # the route splits the traffic: both versions at full size
        stable, share = total, total
    return Topology(
        {status.stable: stable, status.canary: share}, status.stable, status.canary, status.canary_weight
    )


def analysis_due(spec: ServeSpec, status: ServingStatus | None, now: datetime) -> bool:
    """Whether the executor should query the metrics before calling ``decide``."""
    if status is None or not status.canary or status.phase != ServingPhase.progressing:
        return False
    return _until_analysis(spec, status, now) <= 0


def _until_analysis(spec: ServeSpec, status: ServingStatus, now: datetime) -> float:
    every = parse_duration(spec.canary.analysis.interval)
    if not status.analyzed_at:
        return 0.0
    return every - (now - parse_stamp(status.analyzed_at)).total_seconds()


def _control(
    value: str | None, status: ServingStatus, now: datetime
) -> tuple[str | None, ControlStatus | None, list[Event]]:
    """The action a new annotation value asks for. A value is acted on once: the status records
    it, so the same value left in place (in Git, say) does not decide a later canary. A suffix
    after a slash (``abort/2``) makes the same action a new value."""
    seen = status.control.value if status.control else None
    if value == seen:
        return None, status.control, []
    paused = status.phase == ServingPhase.paused
    action = value.split("/", 1)[0].strip() if value else (RESUME if paused else None)
    record = ControlStatus(value=value, action=action, canary=status.canary, at=stamp(now))
    if action is not None and action not in ACTIONS:
        record.action = None
        record.message = f"unknown value {value!r} of {CONTROL_ANNOTATION}: use one of {', '.join(ACTIONS)}"
        return None, record, [Event("Warning", "InvalidControl", record.message)]
    if action is not None and not status.canary:
        record.message = f"{CONTROL_ANNOTATION}={value} ignored: no canary is in progress"
        return None, record, [Event("Normal", "ControlIgnored", record.message)]
    return action, record, []


def decide(
    spec: ServeSpec,
    status: ServingStatus | None,
    version: str,
    provider: str,
    control: str | None,
    checks: list[AnalysisCheck] | None,
    now: datetime,
    rendered: Any = None,
) -> ServingPlan:
    """One reconciliation of serving. ``checks`` is the analysis of the canary in ``status`` when
    ``analysis_due`` said so, else None; ``provider`` is how traffic would be split for a new
    canary (gatewayAPI, replicas or router). An edited ``spec.serve`` is re-applied as it is,
    without a new model version, and so is ``rendered``: other settings the model servers are
    rendered from (spec.monitoring)."""
    plan = _decide(spec, status, version, provider, control, checks, now)
    served = spec.model_dump(mode="json")
    applied = digest(served if rendered is None else [served, rendered])[:16]
    if plan.status.stable and plan.status.applied != applied:
        if plan.topology is None:
            plan.topology = topology(spec, plan.status)
        plan.status = plan.status.model_copy(update={"applied": applied})
    return plan


def until_answering(plan: ServingPlan, ready: int, wanted: int) -> ServingPlan:
    """Phase Serving only once the stable version answers: with ``ready`` replicas of it passing
    their readiness probe (which asks the model server) out of the ``wanted``, none yet means
    Deploying, looked at again soon. A version scaled to zero replicas is not waited for."""
    if plan.phase != SERVING or wanted == 0 or ready > 0:
        return plan
    message = f"deploying model {plan.status.stable}: none of its {wanted} replicas is ready yet"
    wait = ANSWER_POLL if plan.requeue_after is None else min(plan.requeue_after, ANSWER_POLL)
    return replace(plan, phase=DEPLOYING, message=message, requeue_after=wait)


def _decide(
    spec: ServeSpec,
    status: ServingStatus | None,
    version: str,
    provider: str,
    control: str | None,
    checks: list[AnalysisCheck] | None,
    now: datetime,
) -> ServingPlan:
    current = status or ServingStatus()
    action, record, events = _control(control, current, now)
    current = current.model_copy(update={"control": record})
    if not current.stable:
        return _first(spec, version, provider, current, now, events)
    if current.canary and current.canary != version:
        return _superseded(spec, current, version, provider, now, events)
    if not current.canary:
        if version == current.stable:
            return ServingPlan(current, SERVING, f"serving model {version}", events=events)
        if version == current.rolled_back:
            return ServingPlan(
                current, ROLLED_BACK, current.message or f"{version} was rolled back", events=events
            )
        return _start(spec, current, version, provider, now, events)
    plan = _in_progress(spec, current, action, checks, now)
    plan.events[:0] = events
    return plan


def _first(
    spec: ServeSpec, version: str, provider: str, current: ServingStatus, now: datetime, events: list[Event]
) -> ServingPlan:
    message = f"serving model {version}"
    status = ServingStatus(
        stable=version, phase=ServingPhase.stable, provider=provider, message=message, control=current.control
    )
    return ServingPlan(
        status,
        SERVING,
        message,
        topology(spec, status),
        events=[*events, Event("Normal", "Deployed", message)],
    )


def _start(
    spec: ServeSpec,
    current: ServingStatus,
    version: str,
    provider: str,
    now: datetime,
    events: list[Event],
    remove: list[str] | None = None,
) -> ServingPlan:
    assert current.stable is not None
    status = canary.start(current.stable, version, spec.canary, now, provider)
    status.rolled_back, status.control = current.rolled_back, current.control
    started = Event(
        "Normal",
        "CanaryStarted",
        f"canary {version} against {current.stable} at {status.canary_weight}% ({provider})",
    )
    return ServingPlan(
        status,
        CANARY,
        status.message or "",
        topology(spec, status),
        remove or [],
        [*events, started],
        parse_duration(spec.canary.analysis.interval),
    )


def _superseded(
    spec: ServeSpec, current: ServingStatus, version: str, provider: str, now: datetime, events: list[Event]
) -> ServingPlan:
    """A newer version arrived while a canary was in progress: the old canary goes, the newer one
    is canaried against the stable version (or, if the newer one is the stable, it just stays)."""
    old = current.canary
    assert old is not None and current.stable is not None
    message = f"canary {old} superseded by {version}"
    gone = Event("Normal", "CanarySuperseded", message)
    if version == current.stable:
        status = ServingStatus(
            stable=version,
            phase=ServingPhase.stable,
            provider=current.provider,
            message=message,
            control=current.control,
        )
        return ServingPlan(status, SERVING, message, topology(spec, status), [old], [*events, gone])
    return _start(spec, current, version, provider, now, [*events, gone], remove=[old])


def _in_progress(
    spec: ServeSpec,
    current: ServingStatus,
    action: str | None,
    checks: list[AnalysisCheck] | None,
    now: datetime,
) -> ServingPlan:
    name = current.canary
    by = f"by the {CONTROL_ANNOTATION} annotation"
    if action in (ABORT, PROMOTE):
        outcome: canary.Outcome = "rolledBack" if action == ABORT else "promoted"
        verb = "aborted" if action == ABORT else "promoted"
        return _finished(spec, current, canary.finish(current, outcome, f"canary {name} {verb} {by}"))
    if action == PAUSE:
        status = current.model_copy(
            update={"phase": ServingPhase.paused, "message": f"paused at {current.canary_weight}% {by}"}
        )
        return ServingPlan(
            status,
            CANARY,
            status.message or "",
            events=[Event("Normal", "CanaryPaused", status.message or "")],
        )
    if action == RESUME and current.phase == ServingPhase.paused:
        status = current.model_copy(
            update={
                "phase": ServingPhase.progressing,
                "step_started_at": stamp(now),
                "analyzed_at": stamp(now),
                "no_data_since": None,
                "message": f"resumed at {current.canary_weight}% {by}",
            }
        )
        every = parse_duration(spec.canary.analysis.interval)
        return ServingPlan(
            status,
            CANARY,
            status.message or "",
            events=[Event("Normal", "CanaryResumed", status.message or "")],
            requeue_after=every,
        )
    if current.phase == ServingPhase.paused:
        return ServingPlan(current, CANARY, current.message or "")
    if checks is None:
        wait = max(_until_analysis(spec, current, now), 0.0)
        return ServingPlan(current, CANARY, current.message or "", requeue_after=wait)
    tick = canary.analyse(current, spec.canary, checks, now)
    summary = "; ".join(f"{c.describe()} [{c.query}]" for c in checks)
    analysis = Event(
        "Warning" if any(c.verdict == "fail" for c in checks) else "Normal", "CanaryAnalysis", summary
    )
    if tick.outcome:
        plan = _finished(spec, current, tick)
        plan.events.insert(0, analysis)
        return plan
    moved = tick.status.canary_weight != current.canary_weight
    return ServingPlan(
        tick.status,
        CANARY,
        tick.status.message or "",
        topology(spec, tick.status) if moved else None,
        events=[analysis, *tick.events],
        requeue_after=parse_duration(spec.canary.analysis.interval),
    )


def _finished(spec: ServeSpec, current: ServingStatus, tick: canary.Tick) -> ServingPlan:
    assert current.canary is not None and current.stable is not None
    loser = current.stable if tick.outcome == "promoted" else current.canary
    phase = SERVING if tick.outcome == "promoted" else ROLLED_BACK
    status = tick.status
    return ServingPlan(status, phase, status.message or "", topology(spec, status), [loser], tick.events)

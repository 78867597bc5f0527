"""The pipeline's state machine in the cluster: from the spec, the recorded status and what is observed
of the step Jobs, decide the new status, the Jobs to create or delete and the Events to post.

Pure: no I/O, no clock (``now`` is passed in), so every transition is unit-tested without a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mlpipeline.api.models import (
    Baseline,
    Condition,
    MLPipelineSpec,
    MLPipelineStatus,
    ModelStatus,
    PipelinePhase,
    RunStatus,
    StepOutput,
    StepPhase,
    StepStatus,
    parse_duration,
)
from mlpipeline.engine import reuse
from mlpipeline.engine.event import Event
from mlpipeline.engine.plan import STEPS
from mlpipeline.protocol import EXIT_MESSAGES, job_name, stamp

STEP_PHASES = {
    "ingest": PipelinePhase.ingesting,
    "preprocess": PipelinePhase.preprocessing,
    "tune": PipelinePhase.tuning,
    "evaluate": PipelinePhase.evaluating,
    "package": PipelinePhase.packaging,
}
DONE_PHASE = PipelinePhase.packaged
FAILED_PHASE = PipelinePhase.failed


@dataclass(frozen=True)
class JobObservation:
    """What the operator saw of one step Job and its pods."""

    name: str
    run: str
    active: int = 0
    succeeded: int = 0
    failed: int = 0
    complete: bool = False
    failed_reason: str | None = None
    failed_message: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    pod_problem: str | None = None  # e.g. "Unschedulable: 0/4 nodes are available: ..."
    pending_since: datetime | None = None  # the oldest pod that has not started
    termination_message: str | None = None
    exit_code: int | None = None
    result: dict[str, Any] | None = None  # what a succeeded step reported (its termination message)


@dataclass
class Decision:
    status: MLPipelineStatus
    create: list[str] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


def _condition(
    kind: str, value: bool, reason: str, message: str, now: str, old: list[Condition]
) -> Condition:
    status = "True" if value else "False"
    previous = next((c for c in old if c.type == kind), None)
    since = previous.last_transition_time if previous and previous.status == status else now
    return Condition(type=kind, status=status, reason=reason, message=message, last_transition_time=since)


def failure_message(job: JobObservation) -> str:
    """What the step said (its termination message) first, then how the Job ended."""
    ending = f"{job.failed_reason or 'Failed'} after {job.failed} attempt(s)"
    if job.termination_message:
        return f"{job.termination_message.strip()} ({ending})"
    if job.exit_code in EXIT_MESSAGES:
        return f"{EXIT_MESSAGES[job.exit_code]}, exit code {job.exit_code} ({ending})"
    detail = f": {job.failed_message}" if job.failed_message else ""
    return f"{ending}{detail}"


def _new_run(
    run_id: str,
    trigger: str,
    value: str | None,
    generation: int | None,
    now: str,
    rerun: str | None,
    reuses: bool,
) -> RunStatus:
    steps = [StepStatus(name=s, phase=StepPhase.pending, attempts=0) for s in STEPS]
    return RunStatus(
        id=run_id,
        trigger=trigger,
        trigger_value=value,
        generation=generation,
        started_at=now,
        rerun=rerun,
        reuse=reuses,
        steps=steps,
    )


def _learn_keys(
    spec: MLPipelineSpec, pipeline: str, run: RunStatus, ingest: JobObservation, serving: str | None
) -> None:
    """Once ingest has reported the data's fingerprint, every step's key, set once for the run:
    the Jobs it creates later read and write where these keys say, whatever serves by then."""
    reported = (ingest.result or {}).get("data")
    if run.data is None and isinstance(reported, str) and reported:
        run.data = reported
    keys = reuse.step_keys(spec, pipeline, run, serving)
    for record in run.steps:
        record.key = record.key or keys.get(record.name)
        if record.name == STEPS[0]:
            record.cached = bool((ingest.result or {}).get("cached"))  # ingest found its output itself


def serving_version(spec: MLPipelineSpec, status: MLPipelineStatus, run: str) -> str | None:
    """The version that serves, which a run's evaluate measures beside its model; None if none
    serves or it is the run's own."""
    stable = status.serving.stable if spec.serve.enabled and status.serving else None
    return stable if stable != run else None


def _reusable(
    step: str, record: StepStatus, run: RunStatus, outputs: list[StepOutput], store: str | None
) -> StepOutput | None:
    if not (store and run.reuse and record.key and step in reuse.REUSED):
        return None
    return reuse.find(outputs, step, record.key, store)


def decide(
    pipeline: str,
    spec: MLPipelineSpec,
    status: MLPipelineStatus,
    current_run: str,
    trigger: str,
    generation: int | None,
    jobs: dict[str, JobObservation],
    now: datetime,
    trigger_value: str | None = None,
    *,
    store: str | None = None,
    rerun: str | None = None,
) -> Decision:
    """One reconciliation. ``jobs`` maps step name to the Job of ``current_run`` (if it exists).
    ``store``: where step outputs are kept by key (``protocol.steps_root``), None to reuse none;
    ``rerun``: the rerun annotation's value."""
    moment = stamp(now)
    new = status.model_copy(deep=True)
    decision = Decision(status=new)
    if new.run is None or new.run.id != current_run:
        superseded = new.run.id if new.run else None
        reuses = reuse.reuses(spec, rerun, new.run)
        new.run = _new_run(current_run, trigger, trigger_value, generation, moment, rerun, reuses)
        note = f" (supersedes run {superseded})" if superseded else ""
        cause = f"{trigger} {trigger_value}" if trigger_value else trigger
        decision.events.append(Event("Normal", "RunStarted", f"run {current_run} started by {cause}{note}"))
        new.message = None
    run = new.run
    steps = {s.name: s for s in run.steps}
    pending_timeout = parse_duration(spec.steps.pending_timeout)
    every = f"run {current_run}: every step succeeded"
    phase, message = DONE_PHASE, every
    for step in STEPS:
        record = steps[step]
        job = jobs.get(step)
        before = record.phase
        if job is None:
            if before == StepPhase.succeeded and record.cached:
                continue
            if before in (StepPhase.succeeded, StepPhase.failed):
                phase, message = _settled(record, step)
                if before == StepPhase.failed:
                    break
                continue
            found = _reusable(step, record, run, new.outputs, store)
            if found:
                record.phase, record.job, record.cached = StepPhase.succeeded, found.job, True
                record.finished_at, record.message = moment, f"reused the output of {found.job}"
                decision.events.append(
                    Event("Normal", "StepCached", f"{step} unchanged: reused {found.uri} ({found.job})")
                )
                continue
            record.phase, record.job = StepPhase.pending, job_name(pipeline, current_run, step)
            if record.key:
                new.outputs = reuse.forget(new.outputs, step, record.key)
            decision.create.append(step)
            phase, message = STEP_PHASES[step], f"starting {step}"
            break
        record.job = job.name
        if not (job.active or job.succeeded or job.failed or job.complete or job.failed_reason):
            # The Job has no pod yet (being created, or held by a queue): the step is still starting.
            phase, message = STEP_PHASES[step], f"starting {step}"
            break
        record.attempts = job.failed + job.active + job.succeeded
        record.started_at = record.started_at or job.started_at or moment
        if job.complete:
            record.phase, record.finished_at, record.message = (
                StepPhase.succeeded,
                job.finished_at or moment,
                None,
            )
            if step == STEPS[0]:
                _learn_keys(spec, pipeline, run, job, serving_version(spec, new, current_run))
            if before != StepPhase.succeeded:
                decision.events.append(Event("Normal", "StepSucceeded", f"{step} succeeded ({job.name})"))
                if store and record.key and step in reuse.REUSED:
                    uri = reuse.output_uri(store, step, record.key)
                    made = StepOutput(
                        step=step, key=record.key, uri=uri, job=job.name, finished_at=record.finished_at
                    )
                    new.outputs = reuse.remember(new.outputs, made)
            continue
        if job.failed_reason is not None:
            text = failure_message(job)
            record.phase, record.finished_at, record.message = (
                StepPhase.failed,
                job.finished_at or moment,
                text,
            )
            if before != StepPhase.failed:
                decision.events.append(Event("Warning", "StepFailed", f"{step} failed: {text}"))
            phase, message = FAILED_PHASE, f"{step} failed: {text}"
            break
        waited = (now - job.pending_since).total_seconds() if job.pending_since else 0.0
        if job.pod_problem and job.pending_since and waited > pending_timeout:
            limit = spec.steps.pending_timeout
            text = f"{job.pod_problem} (pending for {waited:.0f}s > spec.steps.pendingTimeout={limit})"
            record.phase, record.finished_at, record.message = StepPhase.failed, moment, text
            decision.delete.append(job.name)
            decision.events.append(Event("Warning", "StepFailed", f"{step} failed: {text}"))
            phase, message = FAILED_PHASE, f"{step} failed: {text}"
            break
        record.phase = StepPhase.running
        if job.pod_problem:
            if record.message != job.pod_problem:
                decision.events.append(Event("Warning", "StepStuck", f"{step}: {job.pod_problem}"))
            record.message = job.pod_problem
            phase, message = STEP_PHASES[step], f"{step} is stuck: {job.pod_problem}"
        else:
            record.message = None
            phase, message = STEP_PHASES[step], f"running {step} (attempt {max(record.attempts, 1)})"
        if before != StepPhase.running:
            decision.events.append(Event("Normal", "StepStarted", f"{step} started ({job.name})"))
        break
    reused = [s.name for s in run.steps if s.cached]
    if message == every and reused:
        message += f" ({', '.join(reused)} reused: unchanged)"
    new.phase, new.message, new.observed_generation = phase, message, generation
    if phase in (DONE_PHASE, FAILED_PHASE) and not run.finished_at:
        run.finished_at = moment
        kind = "Normal" if phase == DONE_PHASE else "Warning"
        decision.events.append(Event(kind, phase, message))
    new.conditions = conditions(phase, message, moment, status.conditions)
    return decision


def model_status(
    spec: MLPipelineSpec, run: str, artifact: str, evaluate: JobObservation | None
) -> ModelStatus:
    """The packaged model of a finished run; its score is the gate metric on the test split, and its
    baseline the comparison with the model that served, as the evaluate step reported them."""
    result = (evaluate.result if evaluate else None) or {}
    score = (result.get("metrics") or {}).get(spec.evaluate.metric)
    compared = result.get("baseline")
    return ModelStatus(
        version=run,
        metric=spec.evaluate.metric,
        score=float(score) if isinstance(score, int | float) else None,
        artifact=artifact,
        report=result.get("report") if isinstance(result.get("report"), str) else None,
        baseline=Baseline.model_validate(compared) if isinstance(compared, dict) else None,
    )


READY_PHASES = {DONE_PHASE, PipelinePhase.serving, PipelinePhase.canary}
SETTLED_PHASES = {DONE_PHASE, FAILED_PHASE, PipelinePhase.serving, PipelinePhase.rolled_back}
DEGRADED_PHASES = {FAILED_PHASE, PipelinePhase.rolled_back}


def conditions(phase: str, message: str, now: str, old: list[Condition]) -> list[Condition]:
    """Ready, Progressing and Degraded for a phase, keeping transition times that did not change."""
    return [
        _condition("Ready", phase in READY_PHASES, phase, message, now, old),
        _condition("Progressing", phase not in SETTLED_PHASES, phase, message, now, old),
        _condition("Degraded", phase in DEGRADED_PHASES, phase, message, now, old),
    ]


def _settled(record: StepStatus, step: str) -> tuple[PipelinePhase, str]:
    """A step whose Job is gone (deleted after a pending timeout) keeps its recorded outcome."""
    if record.phase == StepPhase.failed:
        return FAILED_PHASE, f"{step} failed: {record.message or ''}"
    return DONE_PHASE, f"{step} succeeded"

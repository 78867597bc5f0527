"""The pipeline's state machine in the cluster: from the spec, the recorded status and what is observed
of the step Jobs, decide the new status, the Jobs to create or delete and the Events to post.

Pure: no I/O, no clock (``now`` is passed in), so every transition is unit-tested without a cluster.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mlpipeline.api.models import MLPipelineSpec, parse_duration
from mlpipeline.engine.plan import STEPS, digest

RUN_ID_LENGTH = 8
RERUN_ANNOTATION = "mlpipeline.dev/rerun"
STEP_PHASES = {
    "ingest": "Ingesting",
    "preprocess": "Preprocessing",
    "tune": "Tuning",
    "evaluate": "Evaluating",
    "package": "Packaging",
}
DONE_PHASE = "Packaged"
FAILED_PHASE = "Failed"
EXIT_MESSAGES = {2: "the step failed", 3: "the evaluation gate refused the model"}


def run_id(spec: MLPipelineSpec, rerun: str | None) -> str:
    """Deterministic: the same spec and rerun token always name the same run (and the same Jobs)."""
    return digest({"spec": spec.model_dump(by_alias=True, mode="json"), "rerun": rerun or ""})[:RUN_ID_LENGTH]


def job_name(pipeline: str, run: str, step: str) -> str:
    return f"{pipeline}-{run}-{step}"


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


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass
class Decision:
    status: dict[str, Any]
    create: list[str] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


def _condition(
    kind: str, value: bool, reason: str, message: str, now: str, old: list[dict[str, Any]]
) -> dict[str, Any]:
    status = "True" if value else "False"
    previous = next((c for c in old if c.get("type") == kind), None)
    since = previous["lastTransitionTime"] if previous and previous.get("status") == status else now
    return {"type": kind, "status": status, "reason": reason, "message": message, "lastTransitionTime": since}


def _failure_message(job: JobObservation) -> str:
    """What the step said (its termination message) first, then how the Job ended."""
    ending = f"{job.failed_reason or 'Failed'} after {job.failed} attempt(s)"
    if job.termination_message:
        return f"{job.termination_message.strip()} ({ending})"
    if job.exit_code in EXIT_MESSAGES:
        return f"{EXIT_MESSAGES[job.exit_code]}, exit code {job.exit_code} ({ending})"
    detail = f": {job.failed_message}" if job.failed_message else ""
    return f"{ending}{detail}"


def decide(
    pipeline: str,
    spec: MLPipelineSpec,
    status: dict[str, Any],
    current_run: str,
    trigger: str,
    generation: int | None,
    jobs: dict[str, JobObservation],
    now: datetime,
) -> Decision:
    """One reconciliation. ``jobs`` maps step name to the Job of ``current_run`` (if it exists)."""
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    new = copy.deepcopy(status)
    decision = Decision(status=new)
    run = new.get("run") or {}
    if run.get("id") != current_run:
        superseded = run.get("id")
        run = {
            "id": current_run,
            "trigger": trigger,
            "generation": generation,
            "startedAt": stamp,
            "steps": [{"name": s, "phase": "Pending", "attempts": 0} for s in STEPS],
        }
        note = f" (supersedes run {superseded})" if superseded else ""
        decision.events.append(Event("Normal", "RunStarted", f"run {current_run} started by {trigger}{note}"))
        new.pop("message", None)
    new["run"] = run
    steps = {s["name"]: s for s in run["steps"]}
    pending_timeout = parse_duration(spec.steps.pending_timeout)
    phase, message = DONE_PHASE, f"run {current_run}: every step succeeded"
    for step in STEPS:
        record = steps[step]
        job = jobs.get(step)
        before = record.get("phase")
        if job is None:
            if before in ("Succeeded", "Failed"):
                phase, message = _settled(record, step)
                if before == "Failed":
                    break
                continue
            record.update(phase="Pending", job=job_name(pipeline, current_run, step))
            decision.create.append(step)
            phase, message = STEP_PHASES[step], f"starting {step}"
            break
        record["job"] = job.name
        record["attempts"] = job.failed + job.active + job.succeeded
        record["startedAt"] = record.get("startedAt") or job.started_at or stamp
        if job.complete:
            record.update(phase="Succeeded", finishedAt=job.finished_at or stamp, message=None)
            if before != "Succeeded":
                decision.events.append(Event("Normal", "StepSucceeded", f"{step} succeeded ({job.name})"))
            continue
        if job.failed_reason is not None:
            text = _failure_message(job)
            record.update(phase="Failed", finishedAt=job.finished_at or stamp, message=text)
            if before != "Failed":
                decision.events.append(Event("Warning", "StepFailed", f"{step} failed: {text}"))
            phase, message = FAILED_PHASE, f"{step} failed: {text}"
            break
        waited = (now - job.pending_since).total_seconds() if job.pending_since else 0.0
        if job.pod_problem and job.pending_since and waited > pending_timeout:
            limit = spec.steps.pending_timeout
            text = f"{job.pod_problem} (pending for {waited:.0f}s > spec.steps.pendingTimeout={limit})"
            record.update(phase="Failed", finishedAt=stamp, message=text)
            decision.delete.append(job.name)
            decision.events.append(Event("Warning", "StepFailed", f"{step} failed: {text}"))
            phase, message = FAILED_PHASE, f"{step} failed: {text}"
            break
        record["phase"] = "Running"
        if job.pod_problem:
            if record.get("message") != job.pod_problem:
                decision.events.append(Event("Warning", "StepStuck", f"{step}: {job.pod_problem}"))
            record["message"] = job.pod_problem
            phase, message = STEP_PHASES[step], f"{step} is stuck: {job.pod_problem}"
        else:
            record["message"] = None
            phase, message = STEP_PHASES[step], f"running {step} (attempt {max(record['attempts'], 1)})"
        if before != "Running":
            decision.events.append(Event("Normal", "StepStarted", f"{step} started ({job.name})"))
        break
    for record in run["steps"]:
        if record.get("message") is None:
            record.pop("message", None)
    new["phase"] = phase
    new["message"] = message
    new["observedGeneration"] = generation
    if phase in (DONE_PHASE, FAILED_PHASE) and not run.get("finishedAt"):
        run["finishedAt"] = stamp
        kind = "Normal" if phase == DONE_PHASE else "Warning"
        decision.events.append(Event(kind, phase, message))
    new["conditions"] = conditions(phase, message, stamp, status.get("conditions") or [])
    return decision


READY_PHASES = {DONE_PHASE, "Serving", "Canary"}
SETTLED_PHASES = {DONE_PHASE, FAILED_PHASE, "Serving", "RolledBack"}
DEGRADED_PHASES = {FAILED_PHASE, "RolledBack"}


def conditions(phase: str, message: str, stamp: str, old: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ready, Progressing and Degraded for a phase, keeping transition times that did not change."""
    return [
        _condition("Ready", phase in READY_PHASES, phase, message, stamp, old),
        _condition("Progressing", phase not in SETTLED_PHASES, phase, message, stamp, old),
        _condition("Degraded", phase in DEGRADED_PHASES, phase, message, stamp, old),
    ]


def _settled(record: dict[str, Any], step: str) -> tuple[str, str]:
    """A step whose Job is gone (deleted after a pending timeout) keeps its recorded outcome."""
    if record.get("phase") == "Failed":
        return FAILED_PHASE, f"{step} failed: {record.get('message', '')}"
    return DONE_PHASE, f"{step} succeeded"

"""When a labeling round starts and how it moves on: pure, shared by the operator and the local
runner. A round takes the unlabeled source files that have settled since the last round, with the
model that serves now; it runs the ``label`` step (predict, pick, send tasks to people), then the
``merge`` step (wait for people, write the labeled partition). One round at a time per pipeline.
A round asked for by drift with no new data (engine/triggers.py) takes instead the serving
capture's records of the drifting window: the capture's hours it spans, read from and to its times.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from mlpipeline.api.models import LabelingSpec, LabelingStatus, LabelRound, LabelRoundPhase, parse_duration
from mlpipeline.engine.event import Event
from mlpipeline.engine.plan import digest
from mlpipeline.engine.reconcile import JobObservation, failure_message
from mlpipeline.engine.triggers import DriftLabels, Listing, round_under_way, settled_after, shown
from mlpipeline.protocol import RUN_ID_LENGTH, parse_stamp, stamp

LABEL_STEPS = ("label", "merge")
STEP_OF = {LabelRoundPhase.proposing: "label", LabelRoundPhase.awaiting: "merge"}
COUNTED = {
    "records": "records",
    "autoLabeled": "auto_labeled",
    "sentToPeople": "sent_to_people",
    "audited": "audited",
    "project": "project",
    "labeledByPeople": "labeled_by_people",
    "auditDisagreement": "audit_disagreement",
    "autoLabelsUsed": "auto_labels_used",
    "partition": "partition",
    "rows": "rows",
}


ATTEMPTS = 3  # a failed round is tried again over the same files, this many times in all
ROUND_FILES = 100
"""Source files a round takes at most, the oldest by name; the rest wait for the next rounds. Keeps
the round's status and its Job's arguments small (etcd's object limit, the kernel's E2BIG)."""


def round_id(sources: list[str], model: str, attempt: int = 1, served: tuple[str, str] | None = None) -> str:
    named = {"sources": sources, "model": model, "attempt": attempt} | ({"served": served} if served else {})
    return digest(named)[:RUN_ID_LENGTH]


def capture_sources(capture: str, version: str, since: str, until: str) -> list[str]:
    """The capture files that may hold the records ``version`` served from ``since`` to ``until``:
    one pattern per hour partition (a file is named after the hour of its first record, so the
    hour before ``since`` is included)."""
    hour = parse_stamp(since).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    last = parse_stamp(until)
    sources = []
    while hour <= last:
        sources.append(f"{capture.rstrip('/')}/version={version}/hour={hour:%Y-%m-%dT%H}/*.jsonl")
        hour += timedelta(hours=1)
    return sources


@dataclass
class LabelingPlan:
    status: LabelingStatus | None
    create: list[str] = field(default_factory=list)  # steps of status.round to start
    events: list[Event] = field(default_factory=list)
    wake_after: float | None = None  # seconds until a failed round is tried again


def start(
    spec: LabelingSpec,
    sources: list[str],
    model: str,
    now: datetime,
    attempt: int = 1,
    served: tuple[str, str] | None = None,
) -> LabelRound:
    """``served``: a drift round's window, from and to (RFC 3339)."""
    return LabelRound(
        id=round_id(sources, model, attempt, served),
        attempt=attempt,
        model=model,
        started_at=stamp(now),
        deadline=stamp(now + timedelta(seconds=parse_duration(spec.deadline))),
        sources=sources,
        served_from=served[0] if served else None,
        served_to=served[1] if served else None,
    )


def served_window(current: LabelRound) -> tuple[str, str] | None:
    if current.served_from and current.served_to:
        return current.served_from, current.served_to
    return None


def step_args(
    step: str,
    outs: dict[str, str],
    pipeline: str,
    current: LabelRound,
    model_tag: str,
    model_uri: str | None = None,
) -> list[str]:
    """Arguments of ``python -m mlpipeline.steps`` for a step of ``current`` (Job and local run);
    ``outs``: where each of the round's steps writes; ``model_uri``: the model's export, for a pod
    whose model store lacks it."""
    args = [step, "--out", outs[step], "--pipeline", pipeline]
    if step == "label":
        args += [
            "--model",
            model_tag,
            *(["--model-uri", model_uri] if model_uri else []),
            "--round",
            current.id,
        ]
        for source in current.sources:
            args += ["--source", source]
        window = served_window(current)
        if window:
            args += ["--served-from", window[0], "--served-to", window[1]]
    else:
        args += ["--proposal", outs["label"], "--started", current.started_at or ""]
    return args


def record(current: LabelRound, reported: dict[str, object]) -> None:
    """Copies what a step reported (its ``labeling`` counts) into the round."""
    for key, attribute in COUNTED.items():
        if key in reported:
            setattr(current, attribute, reported[key])


def advance(
    spec: LabelingSpec, current: LabelRound, jobs: dict[str, JobObservation], now: datetime
) -> LabelingPlan:
    """The round in progress, moved on by what its Jobs did."""
    plan = LabelingPlan(None)
    step = STEP_OF[current.phase]
    job = jobs.get(step)
    if job is None:
        plan.create.append(step)
        return plan
    if job.failed_reason is not None:
        current.phase, current.finished_at = LabelRoundPhase.failed, job.finished_at or stamp(now)
        current.message = f"{step} failed: {failure_message(job)}"
        if current.attempt < ATTEMPTS:
            backoff = parse_duration(spec.interval) * 2 ** (current.attempt - 1)
            current.retry_at = stamp(now + timedelta(seconds=backoff))
            current.message += (
                f"; tried again at {current.retry_at} (attempt {current.attempt + 1} of {ATTEMPTS})"
            )
        else:
            current.message += f"; given up after {ATTEMPTS} attempts: its files stay unlabeled"
        plan.events.append(Event("Warning", "LabelingFailed", f"round {current.id}: {current.message}"))
        return plan
    if not job.complete:
        return plan
    record(current, dict((job.result or {}).get("labeling") or {}))
    if current.phase == LabelRoundPhase.proposing:
        current.phase = LabelRoundPhase.awaiting
        current.message = f"waiting for people until {current.deadline}: {current.project}"
        plan.create.append("merge")
        plan.events.append(
            Event(
                "Normal",
                "LabelsRequested",
                f"round {current.id}: {current.records} records, {current.auto_labeled} labeled by model "
                f"{current.model}, {current.sent_to_people} sent to people and {current.audited} to audit "
                f"({current.project})",
            )
        )
        return plan
    current.phase, current.finished_at = LabelRoundPhase.merged, job.finished_at or stamp(now)
    current.message = str((job.result or {}).get("summary") or "") or None
    plan.events.append(
        Event(
            "Normal",
            "LabelsMerged",
            f"round {current.id}: {current.rows} labeled rows in {current.partition}",
        )
    )
    return plan


def decide(
    spec: LabelingSpec | None,
    status: LabelingStatus | None,
    model: str | None,
    listing: Listing | None,
    jobs: dict[str, JobObservation],
    now: datetime,
    retry_now: bool = False,
    drift: DriftLabels | None = None,
    capture: str | None = None,
) -> LabelingPlan:
    """``model``: the version serving now (None: nothing serves yet); ``listing``: the source files
    when they were listed in this reconciliation; ``jobs``: the Jobs of status.labeling.round;
    ``retry_now``: a failed round is tried again without waiting for its time (asked by a person);
    ``drift``: a round the drift trigger asked for (TriggerPlan.label), over ``capture`` (where the
    model servers write what they capture)."""
    if spec is None:
        return LabelingPlan(None)
    new = (status or LabelingStatus()).model_copy(deep=True)
    current = new.round
    if current is not None and current.phase in STEP_OF:
        plan = advance(spec, current, jobs, now)
        plan.status = new
        return plan
    if current is not None and current.retry_at and model is not None:
        wait = 0.0 if retry_now else (parse_stamp(current.retry_at) - now).total_seconds()
        if wait > 0:
            return LabelingPlan(new, wake_after=wait)
        new.round = start(spec, current.sources, model, now, current.attempt + 1, served_window(current))
        message = f"round {new.round.id}: attempt {new.round.attempt} over the files of round {current.id}"
        return LabelingPlan(new, ["label"], [Event("Normal", "LabelingRetried", message)])
    plan = LabelingPlan(new)
    if drift is not None and capture is not None and round_under_way(new) is None:
        sources = capture_sources(capture, drift.version, drift.since, drift.until)
        new.round = start(spec, sources, drift.version, now, served=(drift.since, drift.until))
        plan.create.append("label")
        message = (
            f"round {new.round.id}: the records model {drift.version} served from {drift.since} to "
            f"{drift.until}, when it drifted ({drift.value})"
        )
        plan.events.append(Event("Normal", "LabelingStarted", message))
        return plan
    if listing is None:
        return plan
    _from_listing(spec, new, model, listing, now, plan)
    if listing.note:
        new.message = f"{new.message}; {listing.note}" if new.message else listing.note
    return plan


def _from_listing(
    spec: LabelingSpec,
    new: LabelingStatus,
    model: str | None,
    listing: Listing,
    now: datetime,
    plan: LabelingPlan,
) -> LabelingPlan:
    """A round over the source files that settled since the last one, once a model serves."""
    new.listed_at = stamp(now)
    if listing.error:
        new.message = listing.error
        return plan
    names = [name for name, _ in listing.partitions]
    pending = [n for n in names if new.processed is None or n > new.processed]
    new.pending, new.pending_count = shown(pending)
    settled = settled_after(listing, new.processed, parse_duration(spec.settle), now)
    if not settled:
        new.message = "new source files are settling" if pending else None
        return plan
    if model is None:
        new.message = f"{len(settled)} source file(s) wait for a serving model"
        return plan
    taken = settled[:ROUND_FILES]
    new.round = start(spec, taken, model, now)
    new.processed, new.message = taken[-1], None
    new.pending, new.pending_count = shown([n for n in pending if n > taken[-1]])
    later = f", {len(settled) - len(taken)} more for the next rounds" if len(settled) > len(taken) else ""
    plan.create.append("label")
    plan.events.append(
        Event(
            "Normal",
            "LabelingStarted",
            f"round {new.round.id}: {len(taken)} file(s) for model {model}{later}",
        )
    )
    return plan

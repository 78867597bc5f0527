"""Pure reading of Job and Pod objects into what the state machine needs to know."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from mlpipeline.engine.reconcile import JobObservation
from mlpipeline.protocol import RUN_LABEL, parse_stamp, stamp

STUCK_WAITING_REASONS = {
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
}


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    return parse_stamp(str(value))


def iso(value: Any) -> str | None:
    moment = _time(value)
    return stamp(moment) if moment else None


def _reported(message: str | None) -> dict[str, Any] | None:
    """A succeeded step's termination message: its result as JSON (see steps/__main__.py)."""
    try:
        value = json.loads(message or "")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def pod_problem(pod: dict[str, Any]) -> str | None:
    """Why a pod cannot start, in words a user can act on; None when nothing is wrong (yet)."""
    status = pod.get("status") or {}
    for condition in status.get("conditions") or []:
        unscheduled = condition.get("type") == "PodScheduled" and condition.get("status") == "False"
        if unscheduled and condition.get("reason") == "Unschedulable":
            return f"Unschedulable: {condition.get('message') or 'no node fits'}"
    for container in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in STUCK_WAITING_REASONS:
            detail = f": {waiting['message']}" if waiting.get("message") else ""
            return f"{waiting['reason']}{detail}"
    return None


def _terminated(pod: dict[str, Any]) -> dict[str, Any]:
    for container in (pod.get("status") or {}).get("containerStatuses") or []:
        terminated = (container.get("state") or {}).get("terminated")
        if terminated:
            return dict(terminated)
    return {}


def _last(pods: list[dict[str, Any]], phase: str) -> dict[str, Any] | None:
    return next((p for p in reversed(pods) if (p.get("status") or {}).get("phase") == phase), None)


def by_creation(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(pods, key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp") or ""))


def pending_problem(pods: list[dict[str, Any]]) -> tuple[str | None, datetime | None]:
    """Why the newest pending pod cannot start, and since when the oldest one waits."""
    problem, pending_since = None, None
    for pod in by_creation(pods):
        if (pod.get("status") or {}).get("phase") == "Pending" and not (pod.get("metadata") or {}).get(
            "deletionTimestamp"
        ):
            problem = pod_problem(pod) or problem
            pending_since = pending_since or _time((pod.get("metadata") or {}).get("creationTimestamp"))
    return problem, pending_since


def observe_job(job: dict[str, Any], pods: list[dict[str, Any]]) -> JobObservation:
    status = job.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or [] if c.get("status") == "True"}
    failed = conditions.get("Failed")
    ordered = by_creation(pods)
    last_failed = _last(ordered, "Failed")
    terminated = _terminated(last_failed) if last_failed else {}
    succeeded = _last(ordered, "Succeeded")
    problem, pending_since = pending_problem(ordered)
    labels = (job.get("metadata") or {}).get("labels") or {}
    # Finished pods the Job controller has not counted yet: still attempts (else they seem to vanish).
    uncounted = status.get("uncountedTerminatedPods") or {}
    return JobObservation(
        name=job["metadata"]["name"],
        run=labels.get(RUN_LABEL, ""),
        active=int(status.get("active") or 0),
        succeeded=int(status.get("succeeded") or 0) + len(uncounted.get("succeeded") or []),
        failed=int(status.get("failed") or 0) + len(uncounted.get("failed") or []),
        complete="Complete" in conditions,
        failed_reason=(failed.get("reason") or "Failed") if failed else None,
        failed_message=failed.get("message") if failed else None,
        started_at=iso(status.get("startTime")),
        finished_at=iso(status.get("completionTime") or (failed or {}).get("lastTransitionTime")),
        pod_problem=problem,
        pending_since=pending_since,
        termination_message=(terminated.get("message") or None) if failed else None,
        exit_code=terminated.get("exitCode") if failed else None,
        result=_reported(_terminated(succeeded).get("message")) if succeeded else None,
    )

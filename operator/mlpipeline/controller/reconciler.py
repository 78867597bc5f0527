"""One reconciliation of one MLPipeline: observe, let the engine decide, apply. Level-triggered and
idempotent, so any event (the pipeline, one of its Jobs or pods) or a restart may call it."""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from mlpipeline.api.manifest import field_errors
from mlpipeline.api.models import MLPipelineSpec, parse_duration
from mlpipeline.controller import metrics
from mlpipeline.controller.serving import ServingReconciler
from mlpipeline.engine.reconcile import (
    DONE_PHASE,
    FAILED_PHASE,
    RERUN_ANNOTATION,
    Decision,
    Event,
    conditions,
    decide,
    run_id,
)
from mlpipeline.kube.client import Kube
from mlpipeline.kube.jobs import OperatorSettings, build_step_job, step_outputs
from mlpipeline.kube.observe import observe_job

log = logging.getLogger("mlpipeline.operator")


def _seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    parse = datetime.fromisoformat
    return (parse(end.replace("Z", "+00:00")) - parse(start.replace("Z", "+00:00"))).total_seconds()


def trigger_of(status: dict[str, Any], generation: int | None) -> str:
    previous = status.get("run")
    if not previous:
        return "create"
    return "spec" if previous.get("generation") != generation else "rerun"


class Reconciler:
    def __init__(self, kube: Kube, settings: OperatorSettings, serving: ServingReconciler | None = None):
        self.kube = kube
        self.settings = settings
        self.serving = serving or ServingReconciler(kube, settings, None, "mlpipeline_dev_model_version")
        self.locks: defaultdict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)
        self.wakeups: dict[tuple[str, str], threading.Timer] = {}
        self.phases = metrics.PhaseBook()

    def forget(self, namespace: str, name: str) -> None:
        self.phases.set((namespace, name), None)
        timer = self.wakeups.pop((namespace, name), None)
        if timer:
            timer.cancel()

    def reconcile(self, namespace: str, name: str) -> None:
        started = time.monotonic()
        result = "ok"
        try:
            with self.locks[(namespace, name)]:
                result = self._reconcile(namespace, name)
        except Exception:
            result = "error"
            log.exception("reconciling %s/%s failed", namespace, name)
            self.wake_later(namespace, name, 5.0)  # a transient API error: try again soon
        finally:
            metrics.RECONCILIATIONS.labels(result).inc()
            metrics.RECONCILE_SECONDS.observe(time.monotonic() - started)

    def wake_later(self, namespace: str, name: str, seconds: float) -> None:
        """Reconcile again after a deadline that no event would announce (a pod stuck pending)."""
        key = (namespace, name)
        previous = self.wakeups.pop(key, None)
        if previous:
            previous.cancel()
        timer = threading.Timer(seconds, self.reconcile, args=(namespace, name))
        timer.daemon = True
        self.wakeups[key] = timer
        timer.start()

    def _reconcile(self, namespace: str, name: str) -> str:
        body = self.kube.get_pipeline(namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            self.forget(namespace, name)
            return "gone"
        status: dict[str, Any] = dict(body.get("status") or {})
        generation = body["metadata"].get("generation")
        try:
            spec = MLPipelineSpec.model_validate(body.get("spec") or {})
        except ValidationError as exc:
            # The CRD schema refuses most bad specs; this catches rules only pydantic knows.
            reasons = "; ".join(str(e) for e in field_errors(exc, "spec"))
            self._refuse(body, status, generation, reasons)
            return "invalid"
        annotations = body["metadata"].get("annotations") or {}
        current = run_id(spec, annotations.get(RERUN_ANNOTATION))
        all_jobs = self.kube.list_jobs(namespace, name)
        for job in all_jobs:
            job_run = job["metadata"]["labels"].get("mlpipeline.dev/run")
            if job_run != current and (job.get("status") or {}).get("active"):
                self.kube.delete_job(namespace, job["metadata"]["name"])  # superseded run
        pods = self.kube.list_pods(namespace, name, current)
        observations = {}
        for job in all_jobs:
            labels = job["metadata"]["labels"]
            if labels.get("mlpipeline.dev/run") != current:
                continue
            own = [
                p for p in pods if p["metadata"].get("labels", {}).get("job-name") == job["metadata"]["name"]
            ]
            observations[labels["mlpipeline.dev/step"]] = observe_job(job, own)
        now = datetime.now(UTC)
        decision = decide(
            name, spec, status, current, trigger_of(status, generation), generation, observations, now
        )
        if decision.status.get("phase") == DONE_PHASE and spec.serve.enabled:
            self._serve(body, spec, current, decision, status, now)
        self._apply(body, spec, current, decision, status)
        stuck = [o for o in observations.values() if o.pod_problem and o.pending_since]
        if stuck and decision.status.get("phase") != FAILED_PHASE:
            deadline = parse_duration(spec.steps.pending_timeout)
            waited = max((now - o.pending_since).total_seconds() for o in stuck if o.pending_since)
            self.wake_later(namespace, name, max(deadline - waited, 0) + 0.5)
        self.phases.set((namespace, name), decision.status.get("phase"))
        return "ok"

    def _serve(
        self,
        body: dict[str, Any],
        spec: MLPipelineSpec,
        run: str,
        decision: Decision,
        old: dict[str, Any],
        now: datetime,
    ) -> None:
        meta = body["metadata"]
        artifact = step_outputs(self.settings, spec, meta["namespace"], meta["name"], run)["package"]
        outcome = self.serving.reconcile(body, spec, old, run, artifact + "/model.bentomodel")
        status = decision.status
        status["serving"] = outcome.serving
        status["phase"], status["message"] = outcome.phase, outcome.message
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        status["conditions"] = conditions(outcome.phase, outcome.message, stamp, old.get("conditions") or [])
        decision.events.extend(outcome.events)
        if outcome.wake_after is not None:
            self.wake_later(meta["namespace"], meta["name"], outcome.wake_after + 0.1)

    def _apply(
        self, body: dict[str, Any], spec: MLPipelineSpec, run: str, decision: Decision, old: dict[str, Any]
    ) -> None:
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        for step in decision.create:
            job = build_step_job(
                pipeline=name,
                namespace=namespace,
                uid=meta["uid"],
                spec=spec,
                run=run,
                step=step,
                settings=self.settings,
            )
            if self.kube.create_job(job):
                log.info("created Job %s/%s", namespace, job["metadata"]["name"])
        for job_name in decision.delete:
            self.kube.delete_job(namespace, job_name)
        status = decision.status
        finished = (status.get("run") or {}).get("finishedAt") and status.get("phase") != FAILED_PHASE
        if finished and (old.get("model") or {}).get("version") != run:
            outputs = step_outputs(self.settings, spec, namespace, name, run)
            status["model"] = {
                "version": run,
                "metric": spec.evaluate.metric,
                "artifact": outputs["package"] + "/model.bentomodel",
            }
        if status != old:
            self.kube.patch_status(namespace, name, status)
        self._observe_steps(old, status)
        for event in decision.events:
            self.kube.post_event(body, event)

    @staticmethod
    def _observe_steps(old: dict[str, Any], new: dict[str, Any]) -> None:
        before = {s["name"]: s.get("phase") for s in (old.get("run") or {}).get("steps", [])}
        same_run = (old.get("run") or {}).get("id") == (new.get("run") or {}).get("id")
        for step in (new.get("run") or {}).get("steps", []):
            phase = step.get("phase")
            if phase in ("Succeeded", "Failed") and (not same_run or before.get(step["name"]) != phase):
                seconds = _seconds_between(step.get("startedAt"), step.get("finishedAt"))
                if seconds is not None:
                    metrics.STEP_SECONDS.labels(step["name"], phase).observe(seconds)

    def _refuse(
        self, body: dict[str, Any], status: dict[str, Any], generation: int | None, reasons: str
    ) -> None:
        message = f"invalid spec: {reasons}"
        if status.get("message") == message and status.get("observedGeneration") == generation:
            return
        self.kube.patch_status(
            body["metadata"]["namespace"],
            body["metadata"]["name"],
            {"phase": FAILED_PHASE, "message": message, "observedGeneration": generation},
        )
        self.kube.post_event(body, Event("Warning", "InvalidSpec", message))

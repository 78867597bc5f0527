"""One reconciliation of one MLPipeline: observe, let the engine decide, apply. Level-triggered and
idempotent, so any event (the pipeline, one of its Jobs or pods) or a restart may call it."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from mlpipeline import policy
from mlpipeline.api.manifest import field_errors
from mlpipeline.api.models import (
    LabelingStatus,
    MLPipelineSpec,
    MLPipelineStatus,
    RetrainStatus,
    parse_duration,
)
from mlpipeline.controller import memory, metrics
from mlpipeline.controller.cache import ClusterCache
from mlpipeline.controller.monitoring import MonitoringReader
from mlpipeline.controller.serving import ServingReconciler
from mlpipeline.controller.wakeups import Wakeups
from mlpipeline.engine import labeling, triggers
from mlpipeline.engine.event import Event
from mlpipeline.engine.history import runs_to_prune
from mlpipeline.engine.labeling import LABEL_STEPS
from mlpipeline.engine.plan import run_id
from mlpipeline.engine.reconcile import (
    DONE_PHASE,
    FAILED_PHASE,
    SETTLED_PHASES,
    Decision,
    JobObservation,
    conditions,
    decide,
    model_status,
    serving_version,
)
from mlpipeline.engine.triggers import Firing
from mlpipeline.kube.client import Kube
from mlpipeline.kube.connection import ApiError
from mlpipeline.kube.jobs import (
    OperatorSettings,
    artifacts_base,
    build_labeling_job,
    build_step_job,
    unshared_store,
)
from mlpipeline.kube.observe import observe_job
from mlpipeline.kube.patch import merge_patch
from mlpipeline.kube.rayjob import (
    NETWORK_POLICY,
    NETWORKING_API,
    RAY_API,
    RAYJOB,
    build_ray_network_policy,
    build_tune_rayjob,
    is_active,
    observe_rayjob,
)
from mlpipeline.listing import Scope, list_files, list_if_due, list_sources_if_due
from mlpipeline.protocol import (
    RERUN_ANNOTATION,
    RUN_LABEL,
    STEP_LABEL,
    capture_uri,
    parse_stamp,
    stamp,
    steps_root,
)

log = logging.getLogger("mlpipeline.operator")


STATUS_FIELDS = [f.alias or n for n, f in MLPipelineStatus.model_fields.items()]


def _seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (parse_stamp(end) - parse_stamp(start)).total_seconds()


def trigger_of(status: MLPipelineStatus, generation: int | None, fired: Firing | None) -> str:
    """What starts a run, should the run id have changed: a trigger that fired in this
    reconciliation, else a new generation of the spec, else the rerun annotation."""
    if status.run is None:
        return "create"
    if fired:
        return fired.kind
    return "spec" if status.run.generation != generation else "rerun"


def rerun_token(annotation: str | None, retrain: RetrainStatus | None) -> str | None:
    """What besides the spec makes a run new: the rerun annotation and the last trigger that fired."""
    parts = [p for p in (annotation, retrain.token if retrain else None) if p]
    return "/".join(parts) or None


BURST = 200  # reconciliations after which an idle pool hands freed memory back
CONFLICT_RETRY = 30.0  # seconds between looks at serving objects someone else holds
STALE_RETRY = 1.0  # seconds before deciding again on a pipeline whose status write found it changed


class Reconciler:
    def __init__(
        self,
        kube: Kube,
        settings: OperatorSettings,
        cache: ClusterCache,
        serving: ServingReconciler | None = None,
        workers: int = 8,
    ):
        self.kube = kube
        self.cache = cache
        self.settings = settings
        self.serving = serving or ServingReconciler(kube, settings, None, "mlpipeline_dev_model_version")
        self.monitoring = MonitoringReader(settings, self.serving.prometheus)
        self.queue = threading.Lock()
        self.queued: set[tuple[str, str]] = set()  # pipelines waiting for a thread of the pool
        self.running: set[tuple[str, str]] = set()  # pipelines being reconciled, by one thread each
        self.dirty: set[tuple[str, str]] = set()  # ... and changed again meanwhile
        self.since_release = 0  # reconciliations since freed memory was last handed back
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reconcile")
        self.wakeups: Wakeups[tuple[str, str]] = Wakeups(lambda key: self.enqueue(*key))
        self.failures: dict[tuple[str, str], int] = {}  # failed reconciliations in a row
        self.deleting: dict[tuple[str, str], set[str]] = {}  # Jobs of earlier runs, by pipeline
        self.phases = metrics.PhaseBook()
        self.kuberay_seen: tuple[bool, float] | None = None  # (installed, when asked)

    def forget(self, namespace: str, name: str) -> None:
        self.cache.forget(namespace, name)
        self.phases.set((namespace, name), None)
        metrics.forget_serving(namespace, name)
        self.failures.pop((namespace, name), None)
        self.deleting.pop((namespace, name), None)
        self.wakeups.cancel((namespace, name))

    def enqueue(self, namespace: str, name: str) -> None:
        """Asks for a reconciliation by the pool and returns at once: the event handlers wait for
        nothing (kopf then drops each event's body right away), and a pipeline already waiting is
        not queued twice."""
        key = (namespace, name)
        with self.queue:
            if key in self.queued:
                return
            self.queued.add(key)
        self.pool.submit(self._dequeue, key)

    def _dequeue(self, key: tuple[str, str]) -> None:
        with self.queue:
            self.queued.discard(key)
        self.reconcile(*key)

    def reconcile(self, namespace: str, name: str) -> None:
        """Reconciles a pipeline, or, when another thread is reconciling it, asks that thread to go
        once more and returns at once: no two reconciliations of one pipeline run together, no
        thread waits for another, and a burst of events costs at most two reconciliations."""
        key = (namespace, name)
        with self.queue:
            if key in self.running:
                self.dirty.add(key)
                return
            self.running.add(key)
        while True:
            self._reconcile_once(namespace, name)
            with self.queue:
                self.since_release += 1
                if key not in self.dirty:
                    self.running.discard(key)
                    burst_over = not (self.running or self.queued) and self.since_release >= BURST
                    if burst_over:
                        self.since_release = 0
                    break
                self.dirty.discard(key)
        if burst_over:
            memory.release_freed()

    def _reconcile_once(self, namespace: str, name: str) -> None:
        self.cache.wait_synced()  # never act on a partial view: a Job not listed yet is not missing
        started = time.monotonic()
        result = "ok"
        key = (namespace, name)
        try:
            result = self._reconcile(namespace, name)
            self.failures.pop(key, None)
        except Exception:
            result = "error"
            failures = self.failures[key] = self.failures.get(key, 0) + 1
            log.exception("reconciling %s/%s failed (%d in a row)", namespace, name, failures)
            # A transient API error: again soon; one that persists: less and less often.
            self.wake_later(namespace, name, min(5.0 * 2 ** (failures - 1), 300.0))
        finally:
            metrics.RECONCILIATIONS.labels(result).inc()
            metrics.RECONCILE_SECONDS.observe(time.monotonic() - started)

    def wake_later(self, namespace: str, name: str, seconds: float) -> None:
        """Reconcile again after a deadline that no event would announce (a pod stuck pending, a
        canary analysis, a scheduled time). The earliest pending deadline wins: every
        reconciliation asks again for the ones it still needs."""
        self.wakeups.after((namespace, name), seconds)

    def _reconcile(self, namespace: str, name: str) -> str:
        body = self.cache.pipeline(namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            self.forget(namespace, name)
            return "gone"
        recorded: dict[str, Any] = dict(body.get("status") or {})
        status = MLPipelineStatus.model_validate(recorded)
        generation = body["metadata"].get("generation")
        try:
            spec = MLPipelineSpec.model_validate(body.get("spec") or {})
        except ValidationError as exc:
            # The CRD schema refuses most bad specs; this catches rules only pydantic knows.
            reasons = "; ".join(str(e) for e in field_errors(exc, "spec"))
            self._refuse(body, status, recorded, generation, f"invalid spec: {reasons}", "InvalidSpec")
            return "invalid"
        problem = unshared_store(spec, self.settings)
        if problem:
            self._refuse(body, status, recorded, generation, problem, "ArtifactStoreNotShared")
            return "invalid"
        distributed = spec.train.distributed
        if distributed and distributed.when == "Always" and not self._kuberay():
            missing = (
                "spec.train.distributed.when is Always but KubeRay's RayJob API (ray.io/v1) is not installed "
                "in this cluster: install KubeRay, or set when: IfAvailable to tune in one pod without it"
            )
            self._refuse(body, status, recorded, generation, missing, "KubeRayMissing")
            return "invalid"
        refusal = self._not_allowed(spec, namespace)
        if refusal:
            self._refuse(body, status, recorded, generation, *refusal)
            return "invalid"
        annotations = body["metadata"].get("annotations") or {}
        now = datetime.now(UTC)
        busy = status.run is not None and status.phase not in SETTLED_PHASES
        status.monitoring, read_again = self.monitoring.read(
            spec, namespace, name, status.serving, status.monitoring, now
        )
        listing, list_again = list_if_due(spec, status.retrain, now, self._scope(namespace))
        latest = status.run.id if status.run else None
        fresh = self._new_data(spec, status, namespace, now)
        context = triggers.DriftContext.of(spec, status.labeling, latest, fresh)
        retrain = triggers.decide(
            spec.retrain, status.retrain, busy, now, status.monitoring, listing, context
        )
        status.retrain = retrain.status
        current = run_id(spec, name, rerun=rerun_token(annotations.get(RERUN_ANNOTATION), retrain.status))
        all_jobs = self.cache.jobs(namespace, name)
        run_jobs = [j for j in all_jobs if j["metadata"]["labels"].get(STEP_LABEL) not in LABEL_STEPS]
        beyond_history = runs_to_prune(run_jobs, current, spec.steps.history_limit)
        self._delete_once(
            namespace,
            name,
            run_jobs,
            [
                j  # a superseded run's Jobs still running, and every Job of runs beyond the history
                for j in run_jobs
                if (run := j["metadata"]["labels"].get(RUN_LABEL)) != current
                and (is_active(j) or run in beyond_history)
            ],
        )
        observations = self._observe(namespace, name, current, run_jobs)
        trigger = trigger_of(status, generation, retrain.fired)
        value = retrain.fired.value if retrain.fired else None
        store = steps_root(artifacts_base(spec, self.settings), namespace, name)
        rerun = annotations.get(RERUN_ANNOTATION)
        decision = decide(
            name,
            spec,
            status,
            current,
            trigger,
            generation,
            observations,
            now,
            value,
            store=store,
            rerun=rerun,
        )
        decision.events[:0] = retrain.events
        new = decision.status
        if new.phase == DONE_PHASE and (new.model is None or new.model.version != current):
            artifact = self.serving.artifact(spec, namespace, name, current)
            # evaluate's result, or, when its output was reused, package's (which repeats its metrics)
            scored = observations.get("evaluate") or observations.get("package")
            new.model = model_status(spec, current, artifact, scored)
        if new.phase == DONE_PHASE and spec.serve.enabled:
            self._serve(body, spec, current, decision, now, status)
        labeling, label_again = self._label(body, spec, status.labeling, new, all_jobs, now, retrain.label)
        new.labeling = labeling.status
        decision.events.extend(labeling.events)
        if not self._apply(body, spec, current, decision, status, recorded):
            return "conflict"
        stuck = [o for o in observations.values() if o.pod_problem and o.pending_since]
        if stuck and new.phase != FAILED_PHASE:
            deadline = parse_duration(spec.steps.pending_timeout)
            waited = max((now - o.pending_since).total_seconds() for o in stuck if o.pending_since)
            self.wake_later(namespace, name, max(deadline - waited, 0) + 0.5)
        for seconds in (retrain.wake_after, read_again, list_again, label_again):
            if seconds is not None:
                self.wake_later(namespace, name, seconds + 0.5)
        self.phases.set((namespace, name), new.phase)
        return "ok"

    def _new_data(
        self, spec: MLPipelineSpec, status: MLPipelineStatus, namespace: str, now: datetime
    ) -> bool | None:
        """For drift about to be acted on without onNewData (whose own listing tells): whether a
        file of spec.data.uri was written since the latest run started, from a listing within the
        namespace's data prefixes; None when it may not or cannot be listed (drift then runs)."""
        retrain = spec.retrain
        if retrain.on_new_data or not triggers.drift_due(retrain, status.retrain, status.monitoring, now):
            return None
        listing = list_files(spec.data.uri, "spec.data.uri", scope=self._scope(namespace))
        return triggers.data_changed_since(listing, status.run.started_at if status.run else None)

    def _scope(self, namespace: str) -> Scope:
        """What the operator may list, with its own credentials, for the namespace's pipelines."""
        prefixes = policy.data_prefixes(
            namespace, list(self.settings.data_prefixes), self.settings.artifacts_uri
        )
        return Scope(tuple(prefixes), self.settings.list_max_entries, self.settings.list_timeout)

    def _not_allowed(self, spec: MLPipelineSpec, namespace: str) -> tuple[str, str] | None:
        """A pipeline that would have the operator query a Prometheus, or list data, that the
        platform did not allow, or run an image or code it did not allow, is refused before anything
        is reached or created: (message, Event reason)."""
        settings = self.settings
        code = policy.code_refusal(
            spec.train.image, spec.train.model, list(settings.allowed_images), settings.custom_code
        )
        if code:
            return code
        return policy.pipeline_refusal(
            prometheus_url=spec.serve.canary.analysis.prometheus_url,
            retrain_data_uri=spec.data.uri if spec.retrain.on_new_data else None,
            labeling_source=spec.labeling.source if spec.labeling else None,
            default_prometheus=self.serving.prometheus_url,
            allowed_prometheus=self.serving.allowed,
            prefixes=list(self._scope(namespace).prefixes),
        )

    def _observe(
        self, namespace: str, name: str, run: str, jobs: list[dict[str, Any]]
    ) -> dict[str, JobObservation]:
        """The Jobs of one run (or labeling round) with their pods, by step."""
        mine = [j for j in jobs if j["metadata"]["labels"].get(RUN_LABEL) == run]
        if not mine:
            return {}
        pods = self.cache.pods(namespace, name, run)
        observations: dict[str, JobObservation] = {}
        for job in mine:
            own = [
                p for p in pods if p["metadata"].get("labels", {}).get("job-name") == job["metadata"]["name"]
            ]
            step = job["metadata"]["labels"][STEP_LABEL]
            observations[step] = (
                observe_rayjob(job, pods) if job.get("kind") == RAYJOB else observe_job(job, own)
            )
        return observations

    def _kuberay(self) -> bool:
        """Whether KubeRay's RayJob API is installed, asked at most once a minute."""
        now = time.monotonic()
        if self.kuberay_seen is None or now - self.kuberay_seen[1] > 60:
            self.kuberay_seen = (self.kube.has_api(RAY_API), now)
        return self.kuberay_seen[0]

    def _delete_once(
        self, namespace: str, name: str, jobs: list[dict[str, Any]], doomed: list[dict[str, Any]]
    ) -> None:
        """Deletes Jobs (or RayJobs) of earlier runs, each once: until the watch shows it gone, a Job
        asked for deletion is remembered (per pipeline, forgotten with it)."""
        asked = self.deleting.setdefault((namespace, name), set())
        asked &= {j["metadata"]["name"] for j in jobs}
        for job in doomed:
            job_name = job["metadata"]["name"]
            if job_name not in asked:
                self._delete(namespace, job_name, job.get("kind") == RAYJOB)
                asked.add(job_name)
        if not asked:
            del self.deleting[(namespace, name)]

    def _delete(self, namespace: str, name: str, rayjob: bool) -> None:
        if rayjob:
            self.kube.delete(RAY_API, RAYJOB, namespace, name)
            self.kube.delete(NETWORKING_API, NETWORK_POLICY, namespace, name)  # its own, if any
        else:
            self.kube.delete("batch/v1", "Job", namespace, name)

    def _label(
        self,
        body: dict[str, Any],
        spec: MLPipelineSpec,
        recorded: LabelingStatus | None,
        status: MLPipelineStatus,
        all_jobs: list[dict[str, Any]],
        now: datetime,
        drift: triggers.DriftLabels | None,
    ) -> tuple[labeling.LabelingPlan, float | None]:
        """The labeling round: started when new source files settled and a model serves, or when
        the drift trigger asks for one over the drifted served records (``drift``), moved on by
        its Jobs, which it creates."""
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        listing, again = list_sources_if_due(spec, recorded, now, self._scope(namespace))
        if spec.serve.enabled:
            model = status.serving.stable if status.serving else None
        else:
            model = status.model.version if status.model and status.phase == DONE_PHASE else None
        current = recorded.round if recorded else None
        jobs = [j for j in all_jobs if j["metadata"]["labels"].get(STEP_LABEL) in LABEL_STEPS]
        observed = self._observe(namespace, name, current.id, jobs) if current else {}
        capture = capture_uri(artifacts_base(spec, self.settings), namespace, name)
        plan = labeling.decide(
            spec.labeling, recorded, model, listing, observed, now, drift=drift, capture=capture
        )
        round_now = plan.status.round if plan.status else None
        for step in plan.create:
            assert round_now is not None
            job = build_labeling_job(
                pipeline=name,
                namespace=namespace,
                uid=meta["uid"],
                spec=spec,
                current=round_now,
                step=step,
                settings=self.settings,
                model_uri=self.serving.artifact(spec, namespace, name, round_now.model),
            )
            self._create(job)
        waits = [w for w in (again, plan.wake_after) if w is not None]
        return plan, min(waits) if waits else None

    def _create(self, obj: dict[str, Any]) -> None:
        """Creates a step's Job or RayJob; one that exists already (a restarted operator, a racing
        event) is left as it is."""
        meta = obj["metadata"]
        created = self.kube.create(obj)
        if created:
            self.cache.made(created)
            log.info("created %s %s/%s", obj["kind"], meta["namespace"], meta["name"])

    def _serve(
        self,
        body: dict[str, Any],
        spec: MLPipelineSpec,
        run: str,
        decision: Decision,
        now: datetime,
        recorded: MLPipelineStatus,
    ) -> None:
        """Serving's plan applied, its status recorded; or, when objects of the serving names stand
        that this pipeline does not control, nothing touched: phase Failed, the objects named in the
        message and a ServingConflict Event (once per message), looked at again later (no event
        announces that someone removed them). ``recorded``: the status before this reconciliation."""
        meta = body["metadata"]
        status = decision.status
        plan, refused = self.serving.reconcile(
            body, spec, status.serving, run, now, status.model, recorded.phase
        )
        if refused:
            message = (
                f"serving refused: {'; '.join(refused)}. The operator does not change or delete objects "
                f"it did not create: remove or rename them, or give the pipeline another name (its Service "
                f"is named {meta['name']}, its HTTPRoute {meta['name']}-model, its model objects "
                f"{meta['name']}-model-<version>)"
            )
            status.phase, status.message = FAILED_PHASE, message
            status.conditions = conditions(FAILED_PHASE, message, stamp(now), recorded.conditions)
            if recorded.message != message:
                decision.events.append(Event("Warning", "ServingConflict", message))
            self.wake_later(meta["namespace"], meta["name"], CONFLICT_RETRY)
            return
        status.serving = plan.status
        metrics.record_serving(meta["namespace"], meta["name"], plan.status)
        status.phase, status.message = plan.phase, plan.message
        status.conditions = conditions(plan.phase, plan.message, stamp(now), status.conditions)
        decision.events.extend(plan.events)
        if plan.requeue_after is not None:
            self.wake_later(meta["namespace"], meta["name"], plan.requeue_after + 0.1)

    def _apply(
        self,
        body: dict[str, Any],
        spec: MLPipelineSpec,
        run: str,
        decision: Decision,
        old: MLPipelineStatus,
        recorded: dict[str, Any],
    ) -> bool:
        """The decision carried out; False when its status was not written (see _write_status):
        neither its Events nor anything else of it then, a reconciliation of the newer pipeline
        decides again."""
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        on_ray = spec.train.distributed is not None and self._kuberay()
        recorded_run = decision.status.run
        keys = {s.name: s.key for s in recorded_run.steps if s.key} if recorded_run else {}
        reuse = recorded_run.reuse if recorded_run else True
        serving = serving_version(spec, decision.status, run)
        for step in decision.create:
            if step == "tune" and on_ray:
                rayjob = build_tune_rayjob(
                    pipeline=name,
                    namespace=namespace,
                    uid=meta["uid"],
                    spec=spec,
                    run=run,
                    settings=self.settings,
                    keys=keys,
                )
                if self.settings.network_policies:  # first: the head never listens unguarded
                    peers = list(self.settings.ray_dashboard_peers)
                    self.kube.create(build_ray_network_policy(rayjob, peers))
                self._create(rayjob)
                continue
            job = build_step_job(
                pipeline=name,
                namespace=namespace,
                uid=meta["uid"],
                spec=spec,
                run=run,
                step=step,
                settings=self.settings,
                keys=keys,
                reuse=reuse,
                serving=serving if step == "evaluate" else None,
            )
            self._create(job)
        for job_name in decision.delete:
            self._delete(namespace, job_name, on_ray and job_name.endswith("-tune"))
        patch = merge_patch(recorded, decision.status.to_wire(), STATUS_FIELDS)
        if patch and not self._write_status(body, patch):
            return False
        self._observe_steps(old, decision.status)
        for event in decision.events:
            self.kube.post_event(body, event)
        return True

    def _write_status(self, body: dict[str, Any], patch: dict[str, Any]) -> bool:
        """Patches the status on the condition that the pipeline is still the version it was decided
        on (its resourceVersion): False when it changed meanwhile (409: another replica that thinks
        it leads, a user's edit), with nothing written; it is then reconciled again from its newer
        version, which its watch event brings (and a wake-up, should that event ask for nothing)."""
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        try:
            written = self.kube.patch_status(namespace, name, patch, meta.get("resourceVersion"))
        except ApiError as exc:
            if exc.status != 409:
                raise
            log.info("%s/%s changed since it was read: its status is decided again", namespace, name)
            self.wake_later(namespace, name, STALE_RETRY)
            return False
        self.cache.wrote(written)
        return True

    @staticmethod
    def _observe_steps(old: MLPipelineStatus, new: MLPipelineStatus) -> None:
        before = {s.name: s.phase for s in (old.run.steps if old.run else [])}
        same_run = old.run is not None and new.run is not None and old.run.id == new.run.id
        for step in new.run.steps if new.run else []:
            if step.phase in ("Succeeded", "Failed") and (
                not same_run or before.get(step.name) != step.phase
            ):
                seconds = _seconds_between(step.started_at, step.finished_at)
                if seconds is not None:
                    metrics.STEP_SECONDS.labels(step.name, step.phase).observe(seconds)

    def _refuse(
        self,
        body: dict[str, Any],
        status: MLPipelineStatus,
        recorded: dict[str, Any],
        generation: int | None,
        message: str,
        reason: str,
    ) -> None:
        if status.message == message and status.observed_generation == generation:
            return
        refused = status.model_copy(
            update={"phase": FAILED_PHASE, "message": message, "observed_generation": generation}
        )
        patch = merge_patch(recorded, refused.to_wire(), STATUS_FIELDS)
        if self._write_status(body, patch):
            self.kube.post_event(body, Event("Warning", reason, message))

"""Serving in the cluster: observe (the Gateway API, the canary's metrics when an analysis is due,
the control annotation), let the serving engine decide, apply its plan as Kubernetes objects."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mlpipeline import policy
from mlpipeline.api.models import AnalysisCheck, MLPipelineSpec, ModelStatus, ServingStatus
from mlpipeline.engine import serving
from mlpipeline.engine.serving import GATEWAY_API, REPLICAS, ServingPlan
from mlpipeline.kube.client import Kube
from mlpipeline.kube.jobs import OperatorSettings, serving_export
from mlpipeline.kube.serving import HTTP_ROUTE_API, build_serving_objects, conflicts, owned_by
from mlpipeline.monitoring.analysis import analyse
from mlpipeline.monitoring.prometheus import Prometheus, client, namespace_scope
from mlpipeline.protocol import CONTROL_ANNOTATION, model_object_name


class ServingReconciler:
    def __init__(
        self, kube: Kube, settings: OperatorSettings, prometheus_url: str | None, version_label: str
    ):
        self.kube = kube
        self.settings = settings
        self.prometheus_url = prometheus_url or settings.prometheus_url
        self.allowed = policy.parse_allowed(list(settings.prometheus_allowed))
        self.version_label = version_label

    def provider(self, spec: MLPipelineSpec, status: ServingStatus | None) -> str:
        """How a new canary's traffic is split; with ``auto``, the Gateway API is looked up once and
        the answer remembered in the status."""
        wanted = str(spec.serve.canary.traffic)
        if wanted != "auto":
            return wanted
        if status is not None and status.provider in (GATEWAY_API, REPLICAS):
            return status.provider
        return GATEWAY_API if self.kube.has_api(HTTP_ROUTE_API) else REPLICAS

    def artifact(self, spec: MLPipelineSpec, namespace: str, pipeline: str, version: str) -> str:
        return serving_export(self.settings, spec, namespace, pipeline, version)

    def prometheus(self, spec: MLPipelineSpec) -> Prometheus | None:
        """The pipeline's Prometheus (canary analysis and drift): its own URL when the platform
        allows it, or the operator's. A URL not allowed is never queried (the reconciler has refused
        the pipeline already: see policy.pipeline_refusal); the URL queried is the one rebuilt
        from the parts that were checked."""
        try:
            endpoint = policy.prometheus_endpoint(
                spec.serve.canary.analysis.prometheus_url, self.prometheus_url, self.allowed
            )
        except policy.NotAllowed:
            return None
        return client(endpoint.url) if endpoint else None

    def _analyse(
        self, spec: MLPipelineSpec, namespace: str, status: ServingStatus, model: ModelStatus | None
    ) -> list[AnalysisCheck]:
        """The canary's checks, on the series of the pipeline's namespace; ``model``'s baseline
        counts when ``model`` is the canary."""
        assert status.canary is not None and status.stable is not None
        baseline = model.baseline if model and model.version == status.canary else None
        analysis = spec.serve.canary.analysis
        source = self.prometheus(spec)
        scope = namespace_scope(self.settings.prometheus_namespace_label, namespace)
        return analyse(source, analysis, status.canary, status.stable, self.version_label, baseline, scope)

    def reconcile(
        self,
        body: dict[str, Any],
        spec: MLPipelineSpec,
        status: ServingStatus | None,
        version: str,
        now: datetime,
        model: ModelStatus | None = None,
        shown: str | None = None,
    ) -> tuple[ServingPlan, list[str]]:
        """The serving plan, applied; and the conflicts that kept it from being applied (objects of
        the serving names that this pipeline does not control), if any. ``model``: the packaged
        model (status.model), whose baseline its canary is judged against; ``shown``: the pipeline's
        phase before this reconciliation (a stable version shown Serving is not looked at again)."""
        meta = body["metadata"]
        control = (meta.get("annotations") or {}).get(CONTROL_ANNOTATION)
        due = status is not None and serving.analysis_due(spec.serve, status, now)
        checks = self._analyse(spec, meta["namespace"], status, model) if status and due else None
        plan = serving.decide(
            spec.serve,
            status,
            version,
            self.provider(spec, status),
            control,
            checks,
            now,
            spec.monitoring.model_dump(mode="json"),
        )
        refused = self.apply(body, spec, plan)
        proven = shown == serving.SERVING and status is not None and status.stable == plan.status.stable
        if refused or proven or plan.phase != serving.SERVING or plan.status.stable is None:
            return plan, refused
        name = model_object_name(meta["name"], plan.status.stable)
        deployment = self.kube.get("apps/v1", "Deployment", meta["namespace"], name) or {}
        ready = int((deployment.get("status") or {}).get("readyReplicas") or 0)
        return serving.until_answering(plan, ready, spec.serve.replicas), refused

    def apply(self, body: dict[str, Any], spec: MLPipelineSpec, plan: ServingPlan) -> list[str]:
        """Applies the plan's objects and removes its versions' — only where no object of those names
        stands that this pipeline does not control: then nothing at all is applied or removed, and
        the conflicts are returned. Objects it controls are applied with force; new ones without."""
        meta = body["metadata"]
        namespace, pipeline, uid = meta["namespace"], meta["name"], meta["uid"]
        objects: list[dict[str, Any]] = []
        if plan.topology is not None:
            artifact_of = {v: self.artifact(spec, namespace, pipeline, v) for v in plan.topology.replicas}
            objects = build_serving_objects(
                pipeline=pipeline,
                namespace=namespace,
                uid=uid,
                spec=spec,
                topology=plan.topology,
                provider=plan.status.provider or REPLICAS,
                artifact_of=artifact_of,
                settings=self.settings,
            )
        existing = [
            self.kube.get(obj["apiVersion"], obj["kind"], namespace, obj["metadata"]["name"])
            for obj in objects
        ]
        found = conflicts(objects, existing, uid)
        if found:
            return found
        for obj, before in zip(objects, existing, strict=True):
            self.kube.apply(obj, force=before is not None)  # no conflict: before is ours
        for version in plan.remove:
            name = model_object_name(pipeline, version)
            for api_version, kind in (("apps/v1", "Deployment"), ("v1", "Service")):
                old = self.kube.get(api_version, kind, namespace, name)
                if old is not None and owned_by(old, uid):
                    self.kube.delete(api_version, kind, namespace, name, uid=old["metadata"]["uid"])
        return []

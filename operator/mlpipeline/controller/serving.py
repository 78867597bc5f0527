"""Serving in the cluster: observe (the Gateway API, the canary's metrics when an analysis is due,
the control annotation), let the serving engine decide, apply its plan as Kubernetes objects."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mlpipeline.api.models import AnalysisCheck, MLPipelineSpec, ServingStatus
from mlpipeline.engine import serving
from mlpipeline.engine.serving import GATEWAY_API, REPLICAS, ServingPlan
from mlpipeline.kube.client import Kube
from mlpipeline.kube.jobs import OperatorSettings, artifacts_base
from mlpipeline.kube.serving import HTTP_ROUTE_API, build_serving_objects
from mlpipeline.monitoring.analysis import analyse
from mlpipeline.monitoring.prometheus import Prometheus, client
from mlpipeline.protocol import CONTROL_ANNOTATION, MODEL_EXPORT, model_object_name, step_output


class ServingReconciler:
    def __init__(
        self, kube: Kube, settings: OperatorSettings, prometheus_url: str | None, version_label: str
    ):
        self.kube = kube
        self.settings = settings
        self.prometheus_url = prometheus_url
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
        package = step_output(artifacts_base(spec, self.settings), namespace, pipeline, version, "package")
        return f"{package}/{MODEL_EXPORT}"

    def prometheus(self, spec: MLPipelineSpec) -> Prometheus | None:
        """The pipeline's Prometheus (canary analysis and drift): its own URL or the operator's."""
        url = spec.serve.canary.analysis.prometheus_url or self.prometheus_url
        return client(url) if url else None

    def _analyse(self, spec: MLPipelineSpec, status: ServingStatus) -> list[AnalysisCheck]:
        assert status.canary is not None and status.stable is not None
        source = self.prometheus(spec)
        if source is None:
            return [
                AnalysisCheck(
                    name="prometheus",
                    query="no spec.serve.canary.analysis.prometheusUrl",
                    threshold=0.0,
                    verdict="nodata",
                )
            ]
        return analyse(source, spec.serve.canary.analysis, status.canary, status.stable, self.version_label)

    def reconcile(
        self,
        body: dict[str, Any],
        spec: MLPipelineSpec,
        status: ServingStatus | None,
        version: str,
        now: datetime,
    ) -> ServingPlan:
        meta = body["metadata"]
        control = (meta.get("annotations") or {}).get(CONTROL_ANNOTATION)
        checks = (
            self._analyse(spec, status) if status and serving.analysis_due(spec.serve, status, now) else None
        )
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
        self.apply(body, spec, plan)
        return plan

    def apply(self, body: dict[str, Any], spec: MLPipelineSpec, plan: ServingPlan) -> None:
        meta = body["metadata"]
        namespace, pipeline = meta["namespace"], meta["name"]
        if plan.topology is not None:
            artifact_of = {v: self.artifact(spec, namespace, pipeline, v) for v in plan.topology.replicas}
            for obj in build_serving_objects(
                pipeline=pipeline,
                namespace=namespace,
                uid=meta["uid"],
                spec=spec,
                topology=plan.topology,
                provider=plan.status.provider or REPLICAS,
                artifact_of=artifact_of,
                settings=self.settings,
            ):
                self.kube.apply(obj)
        for version in plan.remove:
            name = model_object_name(pipeline, version)
            self.kube.delete("apps/v1", "Deployment", namespace, name)
            self.kube.delete("v1", "Service", namespace, name)

"""Serving in the cluster: the first model version that passes its gate becomes stable; a later one
is rolled out as a canary, analysed on Prometheus by the same engine as the local runner, and
promoted or rolled back. Traffic is split by HTTPRoute weights when the Gateway API is installed,
else by the ratio of canary to stable replicas."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlpipeline.api.models import MLPipelineSpec, parse_duration
from mlpipeline.engine import canary
from mlpipeline.engine.canary import CheckResult
from mlpipeline.engine.reconcile import Event
from mlpipeline.kube.client import Kube
from mlpipeline.kube.jobs import OperatorSettings
from mlpipeline.kube.serving import (
    build_http_route,
    build_model_deployment,
    build_model_service,
    model_object_name,
    replica_split,
)
from mlpipeline.monitoring.analysis import analyse
from mlpipeline.monitoring.prometheus import Prometheus

GATEWAY_API = "gateway.networking.k8s.io/v1"


@dataclass
class ServingOutcome:
    serving: dict[str, Any]
    phase: str
    message: str
    events: list[Event] = field(default_factory=list)
    wake_after: float | None = None


def _stamp(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


class ServingReconciler:
    def __init__(
        self, kube: Kube, settings: OperatorSettings, prometheus_url: str | None, version_label: str
    ):
        self.kube = kube
        self.settings = settings
        self.prometheus_url = prometheus_url
        self.version_label = version_label

    def provider(self, spec: MLPipelineSpec) -> str:
        wanted = str(spec.serve.canary.traffic)
        if wanted == "auto":
            return "gatewayAPI" if self.kube.has_api(GATEWAY_API) else "replicas"
        return wanted

    def _deploy(
        self, body: dict[str, Any], spec: MLPipelineSpec, version: str, artifact: str, replicas: int
    ) -> None:
        meta = body["metadata"]
        common = {"pipeline": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]}
        self.kube.apply(
            build_model_deployment(
                **common,
                spec=spec,
                version=version,
                artifact=artifact,
                replicas=replicas,
                settings=self.settings,
            )
        )
        self.kube.apply(build_model_service(**common, port=spec.serve.port, version=version))
        self.kube.apply(build_model_service(**common, port=spec.serve.port, version=None))

    def _route(
        self, body: dict[str, Any], spec: MLPipelineSpec, serving: dict[str, Any], provider: str
    ) -> None:
        meta = body["metadata"]
        stable, candidate, weight = serving["stable"], serving.get("canary"), serving.get("canaryWeight", 0)
        if provider == "gatewayAPI":
            self.kube.apply(
                build_http_route(
                    pipeline=meta["name"], namespace=meta["namespace"], uid=meta["uid"], spec=spec,
                    stable=stable, canary=candidate, weight=weight,
                )
            )  # fmt: skip
            return
        stable_replicas, canary_replicas = replica_split(
            max(spec.serve.replicas, 1), weight if candidate else 0
        )
        for version, replicas in ((stable, stable_replicas), (candidate, canary_replicas)):
            if version:
                self._scale(body, version, replicas)

    def _scale(self, body: dict[str, Any], version: str, replicas: int) -> None:
        meta = body["metadata"]
        self.kube.merge_patch(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {
                    "name": model_object_name(meta["name"], version),
                    "namespace": meta["namespace"],
                },
                "spec": {"replicas": replicas},
            }
        )

    def _remove(self, body: dict[str, Any], version: str) -> None:
        meta = body["metadata"]
        name = model_object_name(meta["name"], version)
        self.kube.delete("apps/v1", "Deployment", meta["namespace"], name)
        self.kube.delete("v1", "Service", meta["namespace"], name)

    def _analyse(self, spec: MLPipelineSpec, state: dict[str, Any]) -> list[CheckResult]:
        url = spec.serve.canary.analysis.prometheus_url or self.prometheus_url
        if not url:
            return [
                CheckResult("prometheus", "no spec.serve.canary.analysis.prometheusUrl", None, 0.0, "nodata")
            ]
        return analyse(
            Prometheus(url), spec.serve.canary.analysis, state["canary"], state["stable"], self.version_label
        )

    def reconcile(
        self, body: dict[str, Any], spec: MLPipelineSpec, status: dict[str, Any], version: str, artifact: str
    ) -> ServingOutcome:
        now = datetime.now(UTC)
        serving = dict(status.get("serving") or {})
        # The Gateway API check is a request: made when a version is first routed, then remembered.
        provider = serving.get("provider") or self.provider(spec)
        stable = serving.get("stable")
        if not stable:
            self._deploy(body, spec, version, artifact, spec.serve.replicas)
            serving = {"stable": version, "canaryWeight": 0, "phase": "Stable", "provider": provider}
            self._route(body, spec, serving, provider)
            message = f"serving model {version}"
            return ServingOutcome(serving, "Serving", message, [Event("Normal", "Deployed", message)])
        if version in (stable, serving.get("rolledBack")) and not serving.get("canary"):
            if serving.get("rolledBack") == version:
                return ServingOutcome(
                    serving, "RolledBack", serving.get("message", f"{version} was rolled back")
                )
            return ServingOutcome(serving, "Serving", f"serving model {stable}")
        analysis_every = parse_duration(spec.serve.canary.analysis.interval)
        if serving.get("canary") != version:
            provider = self.provider(spec)
            state = canary.start(stable, version, spec.serve.canary, now)
            state["provider"], state["analyzedAt"] = provider, _stamp(now)
            _, canary_replicas = replica_split(max(spec.serve.replicas, 1), state["canaryWeight"])
            self._deploy(
                body,
                spec,
                version,
                artifact,
                spec.serve.replicas if provider == "gatewayAPI" else canary_replicas,
            )
            self._route(body, spec, state, provider)
            event = Event(
                "Normal",
                "CanaryStarted",
                f"canary {version} against {stable} at {state['canaryWeight']}% ({provider})",
            )
            return ServingOutcome(state, "Canary", state["message"], [event], analysis_every)
        last = datetime.fromisoformat(serving["analyzedAt"].replace("Z", "+00:00"))
        waited = (now - last).total_seconds()
        if waited < analysis_every:
            return ServingOutcome(
                serving, "Canary", serving.get("message", ""), wake_after=analysis_every - waited
            )
        control = (body["metadata"].get("annotations") or {}).get(canary.CONTROL_ANNOTATION)
        checks = self._analyse(spec, serving)
        decision = canary.decide(serving, spec.serve.canary, checks, now, control)
        state = decision.state
        state["analyzedAt"] = _stamp(now)
        events = [Event(kind, reason, message) for kind, reason, message in decision.events]
        summary = "; ".join(c.describe() + f" [{c.query}]" for c in checks)
        events.append(
            Event(
                "Warning" if any(c.verdict == "fail" for c in checks) else "Normal", "CanaryAnalysis", summary
            )
        )
        if decision.outcome == "promoted":
            self._remove(body, stable)
            self._scale(body, version, spec.serve.replicas)
            self._route(body, spec, state, provider)
            return ServingOutcome(state, "Serving", state["message"], events)
        if decision.outcome == "rolledBack":
            state["canary"], state["rolledBack"] = None, version
            self._remove(body, version)
            self._route(body, spec, state, provider)
            self._scale(body, stable, spec.serve.replicas)
            return ServingOutcome(state, "RolledBack", state["message"], events)
        self._route(body, spec, state, provider)
        return ServingOutcome(state, "Canary", state["message"], events, analysis_every)

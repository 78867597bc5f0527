"""Monitoring in the cluster: the stable version's drift, as its model servers exported it to
Prometheus, read back into status.monitoring once per drift interval."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from mlpipeline.api.models import MLPipelineSpec, MonitoringStatus, ServingStatus, parse_duration
from mlpipeline.kube.jobs import OperatorSettings, artifacts_base
from mlpipeline.monitoring import drift_metrics
from mlpipeline.monitoring.prometheus import Prometheus, namespace_scope
from mlpipeline.protocol import capture_uri, drift_report_uri, parse_stamp, stamp


class MonitoringReader:
    def __init__(self, settings: OperatorSettings, prometheus: Callable[[MLPipelineSpec], Prometheus | None]):
        self.settings = settings
        self.prometheus = prometheus  # the pipeline's Prometheus (ServingReconciler.prometheus)

    def read(
        self,
        spec: MLPipelineSpec,
        namespace: str,
        pipeline: str,
        serving: ServingStatus | None,
        recorded: MonitoringStatus | None,
        now: datetime,
    ) -> tuple[MonitoringStatus | None, float | None]:
        """The reading to record and the seconds until the next one is due (None: no need)."""
        stable = serving.stable if serving and spec.serve.enabled else None
        if stable is None:
            return None, None
        interval = parse_duration(spec.monitoring.drift.interval)
        if recorded and recorded.model_version == stable and recorded.measured_at:
            elapsed = (now - parse_stamp(recorded.measured_at)).total_seconds()
            if elapsed < interval:
                return recorded, interval - elapsed
        source = self.prometheus(spec)
        if source is None:
            if spec.retrain.on_drift is None:
                return None, None
            message = (
                "no Prometheus to read drift from: set spec.serve.canary.analysis.prometheusUrl, or ask "
                "the platform team for the chart's prometheus.url"
            )
            return MonitoringStatus(model_version=stable, measured_at=stamp(now), message=message), interval
        drift = spec.monitoring.drift
        scope = namespace_scope(self.settings.prometheus_namespace_label, namespace)
        reading = drift_metrics.read(
            source, pipeline, stable, drift.threshold, drift.min_samples, stamp(now), scope
        )
        captured = capture_uri(artifacts_base(spec, self.settings), namespace, pipeline)
        reading.report = drift_report_uri(captured, stable)
        return reading, interval

"""The drift metrics the model servers export, and reading them back from Prometheus into
status.monitoring. Light on purpose (no numpy): the operator imports it."""

from __future__ import annotations

from mlpipeline.api.models import FeatureDriftStatus, MonitoringStatus
from mlpipeline.monitoring.prometheus import Prometheus, PrometheusError

FEATURE_DRIFT = "mlpipeline_feature_drift"  # {pipeline, model_version, feature}
PREDICTION_DRIFT = "mlpipeline_prediction_drift"  # {pipeline, model_version}
DRIFT_SAMPLES = "mlpipeline_drift_samples"  # {pipeline, model_version}
CAPTURED = "mlpipeline_capture_records_total"  # {pipeline, model_version, outcome}
PREDICTION = "prediction"  # what the predictions are called among the features


def read(
    prometheus: Prometheus, pipeline: str, version: str, threshold: float, min_samples: int, now: str
) -> MonitoringStatus:
    """The worst value over the version's servers for each feature (a replica that sees drift is
    enough), the samples summed over them."""
    selector = f'pipeline="{pipeline}",model_version="{version}"'
    status = MonitoringStatus(model_version=version, measured_at=now, threshold=threshold)
    try:
        samples = prometheus.scalar(f"sum({DRIFT_SAMPLES}{{{selector}}})")
        values = prometheus.by_label(f"max by (feature) ({FEATURE_DRIFT}{{{selector}}})", "feature")
        predicted = prometheus.scalar(f"max({PREDICTION_DRIFT}{{{selector}}})")
    except PrometheusError as exc:
        status.message = str(exc)
        return status
    if samples is None:
        status.message = f"no drift metrics of version {version} in Prometheus yet"
        return status
    status.samples = int(samples)
    if predicted is not None:
        values[PREDICTION] = predicted
    status.features = [
        FeatureDriftStatus(name=name, value=value, drifted=value > threshold)
        for name, value in sorted(values.items())
    ]
    if not values:
        status.message = f"not enough data: {status.samples} samples, {min_samples} needed"
    return status

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


def reading(
    version: str | None,
    values: dict[str, float | None],
    threshold: float,
    samples: int | None,
    at: str | None,
) -> MonitoringStatus:
    """status.monitoring for drift ``values`` by feature (None: not enough data, left out)."""
    features = [
        FeatureDriftStatus(name=name, value=value, drifted=value > threshold)
        for name, value in sorted(values.items())
        if value is not None
    ]
    return MonitoringStatus(
        model_version=version, measured_at=at, samples=samples, threshold=threshold, features=features
    )


def read(
    prometheus: Prometheus,
    pipeline: str,
    version: str,
    threshold: float,
    min_samples: int,
    now: str,
    scope: str = "",
) -> MonitoringStatus:
    """The worst value over the version's servers for each feature (a replica that sees drift is
    enough), the samples summed over them. ``scope``: matchers every query carries (the pipeline's
    namespace in a cluster)."""
    selector = f'{scope}pipeline="{pipeline}",model_version="{version}"'
    try:
        samples = prometheus.scalar(f"sum({DRIFT_SAMPLES}{{{selector}}})")
        values: dict[str, float | None] = dict(
            prometheus.by_label(f"max by (feature) ({FEATURE_DRIFT}{{{selector}}})", "feature")
        )
        values[PREDICTION] = prometheus.scalar(f"max({PREDICTION_DRIFT}{{{selector}}})")
    except PrometheusError as exc:
        return MonitoringStatus(model_version=version, measured_at=now, threshold=threshold, message=str(exc))
    if samples is None:
        message = f"no drift metrics of version {version} in Prometheus yet"
        return MonitoringStatus(model_version=version, measured_at=now, threshold=threshold, message=message)
    status = reading(version, values, threshold, int(samples), now)
    if not status.features:
        status.message = f"not enough data: {status.samples} samples, {min_samples} needed"
    return status

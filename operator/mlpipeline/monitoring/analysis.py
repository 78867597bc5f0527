"""Canary analysis: PromQL that compares a canary version with the stable one on error rate, p95
latency and the distribution of predictions (PSI), each against its threshold."""

from __future__ import annotations

from dataclasses import dataclass

from mlpipeline.api.models import AnalysisCheck, AnalysisSpec, parse_duration
from mlpipeline.monitoring.distance import psi
from mlpipeline.monitoring.prometheus import Prometheus, PrometheusError

REQUESTS = "bentoml_service_request_total"
DURATION = "bentoml_service_request_duration_seconds_bucket"
PREDICTIONS = "mlpipeline_predictions_total"


@dataclass(frozen=True)
class Queries:
    """PromQL for one version; ``version_label`` is the label the scrape attaches to each server."""

    version: str
    window: str
    version_label: str = "version"
    endpoint: str = "/predict"

    @property
    def selector(self) -> str:
        return f'{self.version_label}="{self.version}",endpoint="{self.endpoint}"'

    @property
    def requests(self) -> str:
        return f"sum(increase({REQUESTS}{{{self.selector}}}[{self.window}]))"

    @property
    def error_rate(self) -> str:
        errors = f'sum(rate({REQUESTS}{{{self.selector},http_response_code=~"5.."}}[{self.window}]))'
        total = f"sum(rate({REQUESTS}{{{self.selector}}}[{self.window}]))"
        return f"({errors} or vector(0)) / {total}"

    @property
    def latency_p95(self) -> str:
        return f"histogram_quantile(0.95, sum by (le) (rate({DURATION}{{{self.selector}}}[{self.window}])))"

    @property
    def predictions(self) -> str:
        selector = f'{self.version_label}="{self.version}"'
        return f"sum by (predicted_class) (increase({PREDICTIONS}{{{selector}}}[{self.window}]))"


def _distribution(counts: dict[str, float]) -> dict[str, float]:
    total = sum(counts.values())
    return {k: v / total for k, v in counts.items()} if total > 0 else {}


def analyse(
    prometheus: Prometheus, spec: AnalysisSpec, canary: str, stable: str, version_label: str = "version"
) -> list[AnalysisCheck]:
    """One analysis: every check's query, value, threshold and verdict."""
    window = spec.window
    can, sta = Queries(canary, window, version_label), Queries(stable, window, version_label)
    try:
        requests = prometheus.scalar(can.requests) or 0.0
        enough = requests >= spec.min_requests
        results = []
        error = prometheus.scalar(can.error_rate) if enough else None
        results.append(
            _check("errorRate", can.error_rate, error, spec.max_error_rate, prometheus.scalar(sta.error_rate))
        )
        latency = prometheus.scalar(can.latency_p95) if enough else None
        limit = parse_duration(spec.max_latency_p95)
        results.append(
            _check("latencyP95", can.latency_p95, latency, limit, prometheus.scalar(sta.latency_p95))
        )
        mine = _distribution(prometheus.by_label(can.predictions, "predicted_class")) if enough else {}
        theirs = _distribution(prometheus.by_label(sta.predictions, "predicted_class")) if enough else {}
        if not enough or mine or theirs:  # regression models count no classes: no shift check
            shift = psi(theirs, mine) if mine and theirs else None
            query = f"psi({sta.predictions}, {can.predictions})"
            results.append(_check("predictionShift", query, shift, spec.max_prediction_shift))
    except PrometheusError as exc:
        return [AnalysisCheck(name="prometheus", query=str(exc), threshold=0.0, verdict="nodata")]
    return results


def _check(
    name: str, query: str, value: float | None, threshold: float, stable: float | None = None
) -> AnalysisCheck:
    verdict = "nodata" if value is None else ("pass" if value <= threshold else "fail")
    return AnalysisCheck(
        name=name, query=query, value=value, threshold=threshold, verdict=verdict, stable=stable
    )

"""Canary analysis: PromQL that compares a canary version with the stable one on error rate, p95
latency and the distribution of predictions (PSI), each against its threshold. With a baseline (what
evaluate measured of the canary beside the stable version on held-out rows), the prediction shift is
judged against the shift evaluate expected, and a canary that scored worse there fails."""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

from mlpipeline.api.models import METRICS, AnalysisCheck, AnalysisSpec, Baseline, parse_duration
from mlpipeline.monitoring.distance import chance_shift, prediction_shift
from mlpipeline.monitoring.prometheus import Prometheus, PrometheusError

REQUESTS = "bentoml_service_request_total"
DURATION = "bentoml_service_request_duration_seconds_bucket"
PREDICTIONS = "mlpipeline_predictions_total"


@dataclass(frozen=True)
class Queries:
    """PromQL for one version; ``version_label`` is the label the scrape attaches to each server,
    ``scope`` the matchers that keep the queries to the pipeline's namespace (namespace_scope)."""

    version: str
    window: str
    version_label: str = "version"
    endpoint: str = "/predict"
    scope: str = ""

    @property
    def selector(self) -> str:
        return f'{self.scope}{self.version_label}="{self.version}",endpoint="{self.endpoint}"'

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
        selector = f'{self.scope}{self.version_label}="{self.version}"'
        return f"sum by (predicted_class) (increase({PREDICTIONS}{{{selector}}}[{self.window}]))"


def analyse(
    prometheus: Prometheus | None,
    spec: AnalysisSpec,
    canary: str,
    stable: str,
    version_label: str = "version",
    baseline: Baseline | None = None,
    scope: str = "",
) -> list[AnalysisCheck]:
    """One analysis: every check's query, value, threshold and verdict. ``baseline``: what evaluate
    measured of the canary beside a serving version; it counts only when that version is ``stable``.
    ``scope``: matchers every query carries (the pipeline's namespace in a cluster).
    Without Prometheus (None: none configured, or an error) the live checks have no data."""
    if baseline is not None and baseline.version != stable:
        baseline = None
    score = score_check(baseline, spec.max_score_drop) if baseline else None
    offline = [score] if score else []
    if prometheus is None:
        missing = "no spec.serve.canary.analysis.prometheusUrl"
        return [AnalysisCheck(name="prometheus", query=missing, threshold=0.0, verdict="nodata"), *offline]
    window = spec.window
    can = Queries(canary, window, version_label, scope=scope)
    sta = Queries(stable, window, version_label, scope=scope)
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
        mine = prometheus.by_label(can.predictions, "predicted_class") if enough else {}
        theirs = prometheus.by_label(sta.predictions, "predicted_class") if enough else {}
        if not enough or any(mine.values()) or any(theirs.values()):  # regression counts no classes
            query = f"psi({sta.predictions}, {can.predictions})"
            expected = baseline.prediction_shift if baseline else None
            results.append(shift_check(query, theirs, mine, spec.max_prediction_shift, expected))
    except PrometheusError as exc:
        return [AnalysisCheck(name="prometheus", query=str(exc), threshold=0.0, verdict="nodata"), *offline]
    return results + offline


def shift_check(
    query: str,
    stable: dict[str, float],
    canary: dict[str, float],
    tolerance: float,
    expected: float | None = None,
) -> AnalysisCheck:
    """The live prediction shift from the predictions counted per class, judged against the shift
    evaluate ``expected`` (0 when none was measured): it may depart from it by ``tolerance``, plus
    what chance explains at these counts."""
    shift = prediction_shift(stable, canary)
    if shift is None:
        return AnalysisCheck(
            name="predictionShift", query=query, threshold=tolerance, verdict="nodata", expected=expected
        )
    classes = len({k for k, v in stable.items() if v > 0} | {k for k, v in canary.items() if v > 0})
    allowed = tolerance + chance_shift(classes, sum(stable.values()), sum(canary.values()))
    verdict = "pass" if abs(shift - (expected or 0.0)) <= allowed else "fail"
    return AnalysisCheck(
        name="predictionShift",
        query=query,
        value=shift,
        threshold=allowed,
        verdict=verdict,
        expected=expected,
    )


def score_check(baseline: Baseline, max_drop: float, confidence: float = 0.99) -> AnalysisCheck | None:
    """Whether the canary scored at evaluate no worse than the stable version, on the same held-out
    rows, than ``max_drop`` (in the units of the gate metric) and chance allow: a difference within
    the one-sided ``confidence`` bound of its bootstrap error is chance. None when not both scored."""
    if baseline.score is None or baseline.candidate_score is None:
        return None
    lower_is_better = METRICS.get(baseline.metric) == "min"
    allowed = max_drop + NormalDist().inv_cdf(confidence) * (baseline.score_error or 0.0)
    bound = baseline.score + allowed if lower_is_better else baseline.score - allowed
    worse = baseline.candidate_score > bound if lower_is_better else baseline.candidate_score < bound
    return AnalysisCheck(
        name="offlineScore",
        query=f"{baseline.metric} at evaluate on {baseline.rows} held-out rows neither version trained on",
        value=baseline.candidate_score,
        threshold=bound,
        verdict="fail" if worse else "pass",
        stable=baseline.score,
    )


def _check(
    name: str, query: str, value: float | None, threshold: float, stable: float | None = None
) -> AnalysisCheck:
    verdict = "nodata" if value is None else ("pass" if value <= threshold else "fail")
    return AnalysisCheck(
        name=name, query=query, value=value, threshold=threshold, verdict=verdict, stable=stable
    )

"""The operator's own Prometheus metrics."""

from __future__ import annotations

import contextlib
import math
from collections import Counter as Tally

from prometheus_client import Counter, Gauge, Histogram

from mlpipeline.api.models import ServingStatus

RECONCILIATIONS = Counter(
    "mlpipeline_operator_reconciliations_total", "Reconciliations of MLPipelines, by result", ["result"]
)
RECONCILE_SECONDS = Histogram(
    "mlpipeline_operator_reconcile_seconds",
    "Time of one reconciliation",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
PIPELINES = Gauge("mlpipeline_operator_pipelines", "MLPipelines by phase", ["phase"])
STEP_SECONDS = Histogram(
    "mlpipeline_operator_step_duration_seconds",
    "Duration of finished steps, from Job start to end",
    ["step", "result"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200),
)

CANARY_WEIGHT = Gauge(
    "mlpipeline_operator_canary_weight",
    "Percent of a serving pipeline's traffic sent to its canary (0: none)",
    ["namespace", "pipeline"],
)
CANARY_CHECK = Gauge(
    "mlpipeline_operator_canary_check",
    "The last canary analysis: each check's value (NaN: no data) and threshold",
    ["namespace", "pipeline", "check", "measure"],
)


_CHECKS: dict[tuple[str, str], set[tuple[str, str]]] = {}  # the check series set per pipeline


def record_serving(namespace: str, pipeline: str, serving: ServingStatus | None) -> None:
    """The canary's weight and its last analysis, for dashboards and alerts; the checks of a canary
    that has ended are removed."""
    if serving is None:
        forget_serving(namespace, pipeline)
        return
    CANARY_WEIGHT.labels(namespace, pipeline).set(serving.canary_weight if serving.canary else 0)
    current: set[tuple[str, str]] = set()
    for check in serving.checks if serving.canary else []:
        value = math.nan if check.value is None else check.value
        for measure, number in (("value", value), ("threshold", check.threshold)):
            CANARY_CHECK.labels(namespace, pipeline, check.name, measure).set(number)
            current.add((check.name, measure))
    for name, measure in _CHECKS.get((namespace, pipeline), set()) - current:
        CANARY_CHECK.remove(namespace, pipeline, name, measure)
    _CHECKS[(namespace, pipeline)] = current


def forget_serving(namespace: str, pipeline: str) -> None:
    with contextlib.suppress(KeyError):
        CANARY_WEIGHT.remove(namespace, pipeline)
    for name, measure in _CHECKS.pop((namespace, pipeline), set()):
        CANARY_CHECK.remove(namespace, pipeline, name, measure)


class PhaseBook:
    """The phase of every known pipeline, exported as counts per phase."""

    def __init__(self) -> None:
        self.phases: dict[tuple[str, str], str] = {}
        self.seen: set[str] = set()

    def set(self, key: tuple[str, str], phase: str | None) -> None:
        if phase is None:
            self.phases.pop(key, None)
        else:
            self.phases[key] = phase
        counts = Tally(self.phases.values())
        self.seen |= set(counts)
        for name in self.seen:  # a phase that emptied out reads 0, not its last count
            PIPELINES.labels(name).set(counts.get(name, 0))

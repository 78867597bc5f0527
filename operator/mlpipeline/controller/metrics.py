"""The operator's own Prometheus metrics."""

from __future__ import annotations

from collections import Counter as Tally

from prometheus_client import Counter, Gauge, Histogram

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

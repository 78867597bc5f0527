"""`mlpipeline run --watch`: the cycle on this machine. While the model serves, the same trigger
engine as the operator's looks at the schedule, the partitions of spec.data.uri and the stable
server's drift (its POST /drift) every few seconds; when a trigger fires, the pipeline runs again
while the old model keeps serving, and a new model is then rolled out as a canary. What fired is
kept in <workdir>/<pipeline>/retrain-status.json, so a restarted `--watch` fires nothing twice.
With spec.labeling, new unlabeled files are labeled in rounds in the background by the serving
model (`mlpipeline label`'s steps); a round's partition is new data for spec.retrain.onNewData.
Drift with no new data since the latest run starts no run (it would train the same model): the
engine asks for a labeling round over the drifted served records instead, or says so once."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
from rich.console import Console

from mlpipeline.api.models import MonitoringStatus, RetrainStatus, parse_duration
from mlpipeline.engine import triggers
from mlpipeline.listing import list_if_due
from mlpipeline.local.labeling import LocalLabeling
from mlpipeline.local.runner import LocalRunner
from mlpipeline.monitoring import drift_metrics
from mlpipeline.protocol import model_tag

STATE = "retrain-status.json"


def drift_of(server_url: str, threshold: float) -> MonitoringStatus | None:
    """The stable server's last drift measurement, as status.monitoring would show it."""
    try:
        summary = httpx.post(f"{server_url}/drift", json={}, timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return None
    status = drift_metrics.reading(
        summary.get("version"),
        summary.get("features", {}),
        threshold,
        summary.get("samples"),
        summary.get("measuredAt"),
    )
    status.report = summary.get("report")
    return status


@dataclass
class LocalCycle:
    runner: LocalRunner
    console: Console
    every: float = 2.0  # seconds between looks
    _next: float = field(default=0.0)
    _next_listing: float = field(default=0.0)
    _labeling: threading.Thread | None = field(default=None)

    @property
    def state(self) -> Path:
        return self.runner.root / STATE

    def load(self) -> RetrainStatus | None:
        return RetrainStatus.model_validate_json(self.state.read_text()) if self.state.exists() else None

    def begin(self) -> None:
        """Before the first run: a new schedule counts from now and the partitions present now are
        what that run reads (the baseline), as when the operator first sees a pipeline."""
        self.look(None)

    def look(self, stable_url: str | None) -> triggers.TriggerPlan:
        spec = self.runner.spec
        now = datetime.now(UTC)
        recorded = self.load()
        listing, _ = list_if_due(spec, recorded, now)
        threshold = spec.monitoring.drift.threshold
        drift = drift_of(stable_url, threshold) if stable_url and spec.retrain.on_drift else None
        # a fingerprint of the data only when drift is to be acted on
        fresh = self.runner.new_inputs() if triggers.drift_due(spec.retrain, recorded, drift, now) else None
        rounds = LocalLabeling(self.runner, self.console).load() if spec.labeling else None
        context = triggers.DriftContext.of(spec, rounds, self.runner.latest_run(), fresh)
        if context.round_under_way is None and self._labeling and self._labeling.is_alive():
            context = replace(context, round_under_way="(being started)")  # not recorded yet
        plan = triggers.decide(spec.retrain, recorded, False, now, drift, listing, context)
        if plan.status is not None:
            self.state.parent.mkdir(parents=True, exist_ok=True)
            self.state.write_text(plan.status.model_dump_json(by_alias=True, indent=2))
        return plan

    def label(self, stable: str, drift: triggers.DriftLabels | None = None) -> None:
        """With spec.labeling: a labeling round over new source files, by the serving model, in the
        background (it waits for people); its partition is new data for the next look. ``drift``:
        the round the drift trigger asked for instead, over the drifted served records."""
        labeling = self.runner.spec.labeling
        if labeling is None or (self._labeling and self._labeling.is_alive()):
            return
        if drift is None and time.monotonic() < self._next_listing:
            return
        if drift is None:
            self._next_listing = time.monotonic() + parse_duration(labeling.interval)
        rounds = LocalLabeling(self.runner, self.console)
        tag = model_tag(self.runner.name, drift.version if drift else stable)
        self._labeling = threading.Thread(target=rounds.round, args=(tag, True, drift), daemon=True)
        self._labeling.start()

    def check(self, stable_url: str, stable: str) -> bool:
        """Called while serving; True when a trigger retrained a model other than ``stable``."""
        if time.monotonic() < self._next:
            return False
        self._next = time.monotonic() + self.every
        plan = self.look(stable_url)
        for event in plan.events:
            self.console.print(f"[bold]{event.reason}[/] {event.message}", soft_wrap=True)
        self.label(stable, plan.label)
        if plan.fired is None:
            return False
        self.console.print(f"[bold]retraining[/] ({plan.fired.kind}) while {stable} serves")
        outcome = self.runner.run()
        if not outcome.ok:
            self.console.print(
                f"[red]the retraining run failed at {outcome.steps[-1].step}; {stable} keeps serving[/]"
            )
            return False
        if outcome.version == stable:
            self.console.print(f"[dim]the same data trained the same model {stable}: nothing to roll out[/]")
            return False
        return True

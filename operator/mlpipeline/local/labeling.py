"""`mlpipeline label`: one labeling round on this machine, with the same engine and steps as in a
cluster. The source files not labeled yet are listed now, the last run's model labels them, the
round's tasks go to Label Studio (or its import file), and the command waits for people until every
task is answered or the round's deadline, then writes the partition. What was labeled is kept in
<workdir>/<pipeline>/labeling-status.json, so no file is labeled twice."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from mlpipeline.api.models import LabelingStatus, LabelRound, LabelRoundPhase
from mlpipeline.engine import labeling
from mlpipeline.engine.reconcile import JobObservation
from mlpipeline.engine.triggers import DriftLabels
from mlpipeline.listing import list_files
from mlpipeline.local.runner import LocalRunner, StepOutcome
from mlpipeline.protocol import version_of

STATE = "labeling-status.json"


class LocalLabeling:
    def __init__(self, runner: LocalRunner, console: Console):
        self.runner = runner
        self.console = console

    @property
    def state(self) -> Path:
        return self.runner.root / STATE

    def load(self) -> LabelingStatus | None:
        return LabelingStatus.model_validate_json(self.state.read_text()) if self.state.exists() else None

    def save(self, status: LabelingStatus) -> None:
        self.state.parent.mkdir(parents=True, exist_ok=True)
        partial = self.state.with_suffix(".tmp")  # replaced at once: a reader never sees half a file
        partial.write_text(status.model_dump_json(by_alias=True, indent=2, exclude_none=True))
        partial.replace(self.state)

    def model(self) -> str | None:
        """The model of the last run (the one `mlpipeline run` serves)."""
        last = self.runner.root / "last-run.json"
        return str(json.loads(last.read_text())["model"]) if last.exists() else None

    def round(
        self, model: str | None = None, background: bool = False, drift: DriftLabels | None = None
    ) -> LabelRound | None:
        """Runs one round over the source files not labeled yet with ``model`` (default: the last
        run's); None when there are none. ``background``: from `run --watch` while the model
        serves: files count once settled, and nothing is said when there is nothing to do.
        ``drift``: instead, the round the drift trigger asked for, over the drifted served records."""
        spec = self.runner.spec
        assert spec.labeling is not None
        tag = model or self.model()
        if tag is None:
            self.console.print("[red]no model yet: `mlpipeline run` trains one first[/]")
            return None
        # asked for now, label what is there; in the background, wait for files to settle
        wanted = spec.labeling if background else spec.labeling.model_copy(update={"settle": "0s"})
        listing = None if drift else list_files(spec.labeling.source, "spec.labeling.source")
        now = datetime.now(UTC)
        plan = labeling.decide(
            wanted,
            self.load(),
            version_of(tag),
            listing,
            {},
            now,
            retry_now=not background,
            drift=drift,
            capture=self.runner.capture,
        )
        status = plan.status
        assert status is not None
        current = status.round
        if not plan.create or current is None:
            if not background:
                self.console.print(status.message or f"nothing new to label in {spec.labeling.source}")
            self.save(status)
            return None
        self.save(status)  # the round is under way from now on (the drift trigger reads it)
        self._tell(plan)
        while plan.create:
            step = plan.create[0]
            outcome = self._execute(current, step, tag, spinner=not background)
            self.runner.show(outcome)
            observed = {step: _observation(current, step, outcome)}
            plan = labeling.advance(spec.labeling, current, observed, datetime.now(UTC))
            self.save(status)
            self._tell(plan)
            if current.phase == LabelRoundPhase.awaiting and (current.sent_to_people or current.audited):
                self.console.print(
                    f"[bold]people label {current.sent_to_people} + {current.audited} tasks[/] in "
                    f"{current.project}; waiting until every one is answered or {current.deadline}"
                )
        return current

    def _execute(self, current: LabelRound, step: str, tag: str, spinner: bool) -> StepOutcome:
        outs = {s: str(self.runner.root / "labeling" / current.id / s) for s in labeling.LABEL_STEPS}
        args = [
            *labeling.step_args(step, outs, self.runner.name, current, tag),
            "--spec",
            self.runner.spec_file(),
        ]
        return self.runner.execute(step, outs[step], args, spinner)[0]

    def _tell(self, plan: labeling.LabelingPlan) -> None:
        for event in plan.events:
            style = "red" if event.type == "Warning" else "bold"
            self.console.print(f"[{style}]{event.reason}[/] {event.message}", soft_wrap=True)


def _observation(current: LabelRound, step: str, outcome: StepOutcome) -> JobObservation:
    """A step that ran here, as the engine sees a Job."""
    if outcome.state == "failed":
        return JobObservation(
            f"{step}", current.id, failed=1, failed_reason="Failed", termination_message=outcome.message
        )
    return JobObservation(f"{step}", current.id, succeeded=1, complete=True, result=outcome.result)

"""The local runner: the same manifest and the same step commands as in a cluster, run as
subprocesses on this machine, with step caching by content hash and a BentoML server at the end."""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from mlpipeline import store
from mlpipeline.api.models import MLPipeline
from mlpipeline.engine.plan import STEPS, StepInvocation, fingerprints, run_id, with_serving
from mlpipeline.local.serve import load_serving
from mlpipeline.local.stepserver import StepProcess
from mlpipeline.protocol import EXIT_FAILED, EXIT_GATE, RESULT_FILE, keyed, model_tag
from mlpipeline.steps.estimators import model_module
from mlpipeline.store import StepError

LATEST = "latest-run"  # the id of the latest run started, whatever its outcome


def resolve_data_uri(uri: str, manifest_dir: Path) -> str:
    """A plain relative path in ``spec.data.uri`` is relative to the manifest's folder."""
    if "://" in uri or Path(uri).is_absolute():
        return uri
    return str((manifest_dir / uri).resolve())


@dataclass
class StepOutcome:
    step: str
    state: str  # done | cached | failed
    seconds: float
    out: str
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def message(self) -> str:
        return str(self.result.get("summary") or self.result.get("message") or "")


@dataclass
class RunOutcome:
    pipeline: str
    steps: list[StepOutcome]
    workdir: Path
    version: str | None = None  # the run's identity, also the model's version
    model_tag: str | None = None
    exit_code: int = 0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def result(self, step: str) -> dict[str, Any]:
        return next((s.result for s in self.steps if s.step == step), {})


class LocalRunner:
    def __init__(
        self,
        pipeline: MLPipeline,
        manifest_dir: Path,
        workdir: Path,
        console: Console,
        cpu_only: bool = False,
        no_cache: bool = False,
    ):
        spec = pipeline.spec.model_copy(deep=True)
        spec.data.uri = resolve_data_uri(spec.data.uri, manifest_dir)
        if spec.labeling:
            spec.labeling.source = resolve_data_uri(spec.labeling.source, manifest_dir)
            spec.labeling.into = resolve_data_uri(spec.labeling.into, manifest_dir)
        if cpu_only and spec.train.resources.gpu:
            console.print(
                f"[yellow]--cpu-only: training on the CPU instead of {spec.train.resources.gpu} GPU(s)[/]"
            )
            spec.train.resources.gpu = 0
        self.name = pipeline.metadata.name
        self.spec = spec
        self.root = (workdir / self.name).resolve()
        self.console = console
        self.bentoml_home = workdir.resolve() / "bentoml"
        self.reuse = spec.steps.cache and not no_cache  # else every step runs, writing where it would

    @property
    def capture(self) -> str:
        """Where the model servers write what they capture (serving/capture.py)."""
        return str(self.root / "capture")

    def environment(self) -> dict[str, str]:
        return {**os.environ, "BENTOML_HOME": str(self.bentoml_home), "RAY_USAGE_STATS_ENABLED": "0"}

    def spec_file(self) -> str:
        """The spec as the steps read it (``--spec``), written afresh."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / "spec.json"
        path.write_text(json.dumps(self.spec.model_dump(by_alias=True, mode="json"), sort_keys=True))
        return str(path)

    def run(self) -> RunOutcome:
        spec_path = self.spec_file()
        outcome = RunOutcome(self.name, [], self.root)
        try:
            data_fp = store.fingerprint(self.spec.data.uri)
        except StepError as exc:
            outcome.steps.append(
                StepOutcome("ingest", "failed", 0.0, "", {"message": f"spec.data.uri: {exc}"})
            )
            self.show(outcome.steps[-1])
            outcome.exit_code = EXIT_FAILED
            return outcome
        version = run_id(self.spec, self.name, data_fp)
        (self.root / LATEST).write_text(version)
        serving = load_serving(self.root)
        stable = serving.stable if serving and serving.stable != version else None
        prints = with_serving(fingerprints(self.spec, data_fp, self.name), stable)
        outs = {step: keyed(str(self.root / "steps" / step), prints[step]) for step in STEPS}
        cached = {step: store.finished(outs[step]) if self.reuse else None for step in STEPS}
        # Every step to run is forked at once, so later steps import their heavy modules meanwhile.
        ahead = {step: self.fork(step) for step in STEPS if cached[step] is None}
        try:
            for step in STEPS:
                invocation = StepInvocation(
                    step,
                    outs[step],
                    outs,
                    self.name,
                    version,
                    version,
                    str(spec_path),
                    serving=model_tag(self.name, stable) if stable else None,
                )
                result = cached[step]
                if result is not None:
                    outcome.steps.append(StepOutcome(step, "cached", 0.0, outs[step], result))
                else:
                    step_outcome, code = self.execute(
                        step, outs[step], invocation.args(), process=ahead.pop(step)
                    )
                    outcome.steps.append(step_outcome)
                    if code:
                        self.show(step_outcome)
                        outcome.exit_code = code
                        return outcome
                self.show(outcome.steps[-1])
        finally:
            for process in ahead.values():
                process.discard()
        outcome.version, outcome.model_tag = version, model_tag(self.name, version)
        (self.root / "last-run.json").write_text(
            json.dumps(
                {
                    "model": outcome.model_tag,
                    "steps": {s.step: s.out for s in outcome.steps},
                    "cached": [s.step for s in outcome.steps if s.state == "cached"],
                },
                indent=2,
            )
        )
        return outcome

    def latest_run(self) -> str | None:
        """The id of the latest run started here, whatever its outcome."""
        path = self.root / LATEST
        return (path.read_text().strip() or None) if path.exists() else None

    def new_inputs(self) -> bool | None:
        """Whether a run now would read other data (or spec) than the latest run: its id, made of
        both, differs; None when the data cannot be read."""
        try:
            version = run_id(self.spec, self.name, store.fingerprint(self.spec.data.uri))
        except StepError:
            return None
        return version != self.latest_run()

    def fork(self, step: str) -> StepProcess:
        """The step's process, forked ahead of its turn."""
        train = self.spec.train
        return StepProcess(step, self.environment(), model_module(train.task, train.model))

    def execute(
        self, step: str, out: str, args: list[str], spinner: bool = True, process: StepProcess | None = None
    ) -> tuple[StepOutcome, int]:
        """Runs ``python -m mlpipeline.steps ARGS`` as the step's pod would (forked from a warm
        process: local/stepserver.py), in ``process`` when it was forked ahead; its log in logs/.
        ``spinner``: False from a background thread (one live display at a time)."""
        log_path = self.root / "logs" / f"{step}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        process = process or self.fork(step)
        started = time.monotonic()
        status = self.console.status(f"[bold]{step}[/] running…") if spinner else contextlib.nullcontext()
        log_path.write_bytes(b"")
        store.unfinish(out)  # a rerun (--no-cache) interrupted halfway leaves nothing to reuse
        with status:
            code = process.run(args, str(log_path))
        seconds = time.monotonic() - started
        result_path = Path(out) / RESULT_FILE
        if result_path.exists():
            result = json.loads(result_path.read_text())
        else:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
            result = {"ok": False, "message": f"exited with {code}: " + " | ".join(tail)}
        if code == 0 and not result.get("ok"):
            code = EXIT_FAILED
        state = "done" if code == 0 else "failed"
        outcome = StepOutcome(step, state, seconds, out, result)
        if code:
            outcome.result["log"] = str(log_path)
        return outcome, code if code in (0, EXIT_GATE) else (code or EXIT_FAILED)

    def show(self, step: StepOutcome) -> None:
        mark = {"done": "[green]✓[/]", "cached": "[cyan]↺[/]", "failed": "[red]✗[/]"}[step.state]
        timing = "cached" if step.state == "cached" else f"{step.seconds:5.1f}s"
        self.console.print(f"{mark} {step.step:<11} {timing:>7}  {step.message}")
        if step.state == "failed" and "log" in step.result:
            self.console.print(f"  [dim]log: {step.result['log']}[/]")


def summary_table(outcome: RunOutcome, serving_url: str | None = None) -> Table:
    table = Table(title=f"MLPipeline {outcome.pipeline}", show_header=False)
    best = outcome.result("tune").get("best", {})
    metrics = outcome.result("evaluate").get("metrics", {})
    table.add_row("best params", json.dumps(best.get("config", {}), sort_keys=True))
    if best:
        scored = "validation" if best.get("checkpoint") else "cv"
        table.add_row(f"{scored} {best.get('metric')}", f"{best.get('score', 0):.4f}")
    for name, value in metrics.items():
        table.add_row(f"test {name}", f"{value:.4f}")
    table.add_row("model version", outcome.model_tag or "-")
    report = outcome.result("evaluate").get("report")
    if report:
        table.add_row("report", str(report))
    table.add_row("workdir", str(outcome.workdir))
    if serving_url:
        table.add_row("serving", serving_url)
    return table

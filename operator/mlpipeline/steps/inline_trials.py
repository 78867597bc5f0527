"""Trials one after another in the step's own process: Ray Tune's search algorithms (its variant
generator for grid and random, its Optuna searcher for bayesian) and its ASHA scheduler, driven
without starting Ray. For small searches, where Ray's start-up (a local cluster, then an actor
process per concurrent trial importing Ray Tune: about 10 s on a laptop) costs more than running
trials in parallel saves. Grid and random search propose the same configurations as on Ray with the
same seed."""

from __future__ import annotations

import itertools
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray.air.constants import TRAINING_ITERATION
from ray.tune.schedulers import TrialScheduler
from ray.tune.search import BasicVariantGenerator
from ray.tune.search.sample import _BackwardsCompatibleNumpyRng
from ray.tune.search.variant_generator import generate_variants

Report = Callable[[dict[str, Any], str | None], None]
"""What a trial calls after each fold or epoch: its metrics, and a folder holding a checkpoint."""


class StopTrial(Exception):
    """The scheduler stopped the trial at this report."""


@dataclass
class InlineTrial:
    trial_id: str
    config: dict[str, Any]
    results: list[dict[str, Any]] = field(default_factory=list)
    checkpoint: Path | None = None
    stopped: bool = False  # by the scheduler (ASHA also says stop at its last rung, max_t)
    error: str | None = None
    seconds: float = 0.0


def variants(space: dict[str, Any], samples: int, seed: int) -> Iterator[dict[str, Any]]:
    """The configurations BasicVariantGenerator(random_state=seed) proposes for ``samples`` samples
    of ``space``: every grid point per sample, random domains drawn from the same generator."""
    rng = _BackwardsCompatibleNumpyRng(seed)
    for _ in range(samples):
        for _resolved, spec in generate_variants({"config": space}, random_state=rng):
            yield dict(spec["config"])


class Proposals:
    """Configurations to try: from Ray Tune's variant generator, or from a Searcher told every
    result (Optuna learns from each finished trial)."""

    def __init__(
        self, algorithm: Any, space: dict[str, Any], samples: int, seed: int, metric: str, mode: str
    ):
        self.searcher = None if isinstance(algorithm, BasicVariantGenerator) else algorithm
        if self.searcher is not None:
            self.searcher.set_search_properties(metric, mode, space)
            self._left = samples
        else:
            self._fixed = variants(space, samples, seed)

    def next(self, trial_id: str) -> dict[str, Any] | None:
        if self.searcher is None:
            return next(self._fixed, None)
        if self._left == 0:
            return None
        self._left -= 1
        config: dict[str, Any] | None = self.searcher.suggest(trial_id)
        return config

    def result(self, trial_id: str, result: dict[str, Any]) -> None:
        if self.searcher is not None:
            self.searcher.on_trial_result(trial_id, result)

    def complete(self, trial_id: str, result: dict[str, Any] | None, error: bool) -> None:
        if self.searcher is not None:
            self.searcher.on_trial_complete(trial_id, result=result, error=error)


def run_trials(
    trainable: Callable[[dict[str, Any], Report], None],
    proposals: Proposals,
    scheduler: TrialScheduler,
    metric: str,
    mode: str,
    folder: Path,
) -> list[InlineTrial]:
    """Runs ``trainable(config, report)`` for each proposal until they run out; a trial's reports
    go to the scheduler, which may stop it (StopTrial is raised from its ``report``). A trial's last
    checkpoint is kept under ``folder``; a failing trial is recorded with its error, as on Ray."""
    scheduler.set_search_properties(metric, mode)
    done: list[InlineTrial] = []
    for number in itertools.count():
        trial = InlineTrial(f"trial_{number:05d}", {})
        config = proposals.next(trial.trial_id)
        if config is None:
            return done
        trial.config = config
        scheduler.on_trial_add(None, trial)  # type: ignore[arg-type]
        started = time.monotonic()

        def report(metrics: dict[str, Any], checkpoint: str | None, trial: InlineTrial = trial) -> None:
            result = {**metrics, TRAINING_ITERATION: len(trial.results) + 1}
            trial.results.append(result)
            if checkpoint is not None:
                trial.checkpoint = folder / trial.trial_id
                shutil.copytree(checkpoint, trial.checkpoint, dirs_exist_ok=True)
            proposals.result(trial.trial_id, result)
            if scheduler.on_trial_result(None, trial, result) == TrialScheduler.STOP:  # type: ignore[arg-type]
                raise StopTrial

        try:
            trainable(config, report)
        except StopTrial:
            trial.stopped = True
        except Exception as exc:  # a trial's own failure, reported as Ray Tune reports it
            trial.error = f"{type(exc).__name__}: {exc}"
        trial.seconds = time.monotonic() - started
        last = trial.results[-1] if trial.results else None
        if trial.stopped or trial.error:
            scheduler.on_trial_remove(None, trial)  # type: ignore[arg-type]
        else:
            scheduler.on_trial_complete(None, trial, last or {})  # type: ignore[arg-type]
        proposals.complete(trial.trial_id, last, error=trial.error is not None)
        done.append(trial)
    return done

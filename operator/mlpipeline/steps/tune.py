"""Tune: hyperparameter search with Ray Tune. A trial of a scikit-learn family is a k-fold
cross-validation that reports its running mean after each fold; a trial of a deep-learning family
trains on 80 % of the train split and reports the score on the rest after each epoch, with a
checkpoint. Either way ASHA can stop a poor trial before its end. Only rows whose label a person gave
or the original data holds are scored: those a labeling round's model labeled itself always train
(steps/split.py). Trials run as Ray actors, or inline (one after another in this process,
steps/inline_trials.py) when the search is small."""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.model_selection import KFold, ShuffleSplit, StratifiedKFold, StratifiedShuffleSplit

from mlpipeline import store
from mlpipeline.api.models import Executor, MLPipelineSpec, TuneSpec
from mlpipeline.steps import artifacts
from mlpipeline.steps.artifacts import StepError
from mlpipeline.steps.dataset import Dataset
from mlpipeline.steps.estimators import build_estimator, max_epochs, trains_by_epoch, visible_device
from mlpipeline.steps.images import image_shape
from mlpipeline.steps.metrics import score
from mlpipeline.steps.split import scored_splits

if TYPE_CHECKING:
    from mlpipeline.steps.inline_trials import Report

VALIDATION = 0.2
"""Share of the train split an epoch-wise trial holds out to score each epoch."""
CHECKPOINT = "model.joblib"
INLINE_MAX_ROWS = 10_000
"""executor auto runs the trials of a family trained by folds inline up to this many train rows."""


@dataclass(frozen=True)
class Trials:
    """What every trial of a tune step shares."""

    task: str
    model: str
    metric: str
    folds: int
    seed: int
    context: dict[str, Any]
    by_epoch: bool

    def estimator(self, config: dict[str, Any]) -> Any:
        context = {**self.context, "device": visible_device()}
        return build_estimator(self.task, self.model, config, self.seed, context)


def trial(
    config: dict[str, Any],
    features: np.ndarray,
    target: np.ndarray,
    trusted: np.ndarray,
    trials: Trials,
    report: Report,
) -> None:
    """One trial; ``report(metrics, checkpoint_folder)`` after each fold or epoch. ``trusted``: per
    row, whether its label may score (False: a labeling round's model labeled it; it only trains)."""
    if trials.by_epoch:
        train_by_epoch(trials.estimator(config), features, target, trusted, trials, report)
    else:
        cross_validate(config, features, target, trusted, trials, report)


def ray_trial(
    config: dict[str, Any], features: np.ndarray, target: np.ndarray, trusted: np.ndarray, trials: Trials
) -> None:
    """A trial as a Ray Tune function trainable."""
    from ray import tune

    def report(metrics: dict[str, Any], folder: str | None) -> None:
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder) if folder else None)

    trial(config, features, target, trusted, trials, report)


def train_by_epoch(
    estimator: Any,
    features: np.ndarray,
    target: np.ndarray,
    trusted: np.ndarray,
    trials: Trials,
    report: Report,
) -> None:
    import joblib

    kind = StratifiedShuffleSplit if trials.task == "classification" else ShuffleSplit
    holdout = kind(n_splits=1, test_size=VALIDATION, random_state=trials.seed)
    fit, held = scored_splits(holdout, target, trusted)[0]
    fit_x, valid_x, fit_y, valid_y = features[fit], features[held], target[fit], target[held]
    last = int(estimator.get_params()["epochs"])
    metric = trials.metric
    for epoch in estimator.epochs_fit(fit_x, fit_y):
        metrics = {metric: score(metric, estimator, valid_x, valid_y), "epoch": epoch}
        if epoch != last and epoch & (epoch - 1):
            report(metrics, None)
            continue
        # a checkpoint where ASHA may stop the trial (its rungs: epochs 1, 2, 4, 8, ...) and at the end
        with tempfile.TemporaryDirectory() as folder:
            joblib.dump(estimator, os.path.join(folder, CHECKPOINT))
            report(metrics, folder)


def cross_validate(
    config: dict[str, Any],
    features: np.ndarray,
    target: np.ndarray,
    trusted: np.ndarray,
    trials: Trials,
    report: Report,
) -> None:
    splitter = (
        StratifiedKFold(trials.folds, shuffle=True, random_state=trials.seed)
        if trials.task == "classification"
        else KFold(trials.folds, shuffle=True, random_state=trials.seed)
    )
    scores: list[float] = []
    for fold, (train_idx, valid_idx) in enumerate(scored_splits(splitter, target, trusted), start=1):
        estimator = trials.estimator(config)
        estimator.fit(features[train_idx], target[train_idx])
        scores.append(score(trials.metric, estimator, features[valid_idx], target[valid_idx]))
        report({trials.metric: float(np.mean(scores)), "fold": fold}, None)


def check_folds(folds: int, scored: np.ndarray, classification: bool, rows: int) -> None:
    """StepError unless ``scored`` (the train rows a fold may score) fill every fold, per class."""
    which = "train rows" if len(scored) == rows else "train rows not labeled by the model itself"
    if classification:
        counts = np.unique(scored, return_counts=True)[1]
        smallest = int(counts.min()) if len(counts) else 0
        if smallest < folds:
            raise StepError(
                f"spec.train.tune.folds={folds} but the smallest class has {smallest} {which}; "
                "lower folds or add data"
            )
    elif len(scored) < folds:
        raise StepError(f"spec.train.tune.folds={folds} but there are {len(scored)} {which}; lower folds")


def best_trial(trials: list[dict[str, Any]], metric: str, mode: str) -> dict[str, Any]:
    """The best trial among those that ran to the end: a trial stopped early after a lucky first
    fold or epoch must not win against complete ones. StepError when every trial failed."""
    ok = [t for t in trials if "error" not in t]
    if not ok:
        raise StepError(f"every trial failed; first error: {trials[0]['error']}")
    complete = [t for t in ok if not t["stoppedEarly"]] or ok
    pick = max if mode == "max" else min
    return pick(complete, key=lambda t: t[metric])


def runs_inline(tune_spec: TuneSpec, by_epoch: bool, gpu: float, distributed: bool, rows: int) -> bool:
    """executor inline, or auto on a small search: a family trained by folds on few rows, with no
    GPU and no Ray cluster asked for (maxConcurrent is a limit: one at a time keeps it)."""
    if tune_spec.executor != Executor.auto.value:
        return tune_spec.executor == Executor.inline.value
    small = not by_epoch and rows <= INLINE_MAX_ROWS
    return small and not gpu and not distributed


@dataclass(frozen=True)
class Search:
    """One tune step's search: what the executors share."""

    spec: TuneSpec
    horizon: int
    probe: Any
    trials: Trials
    out: str

    @property
    def unit(self) -> str:
        return "epoch" if self.trials.by_epoch else "fold"

    def record(
        self,
        trial_id: str | None,
        config: dict[str, Any],
        last: dict[str, Any],
        curve: list[float],
        seconds: float,
    ) -> dict[str, Any]:
        """A finished trial: its parameters, last score, how far it went and its learning curve."""
        done = int(last.get(self.unit) or 0)
        planned = (
            int(config.get("epochs", self.probe.get_params().get("epochs", 0)))
            if self.trials.by_epoch
            else self.spec.folds
        )
        return {
            "id": trial_id,
            "config": config,
            self.spec.metric: last.get(self.spec.metric),
            f"{self.unit}s": done,
            "stoppedEarly": done < planned,
            "curve": curve,
            "seconds": round(seconds, 3),
        }

    @staticmethod
    def failed(config: dict[str, Any], error: str) -> dict[str, Any]:
        """A trial that raised: its parameters and the start of its error."""
        return {"config": config, "error": error[:500]}

    def best(self, trials: list[dict[str, Any]]) -> dict[str, Any]:
        return best_trial(trials, self.spec.metric, self.spec.resolved_mode)

    def keep_checkpoint(self, folder: str) -> None:
        """The best trial's last checkpoint, copied to the artifact store: the evaluation gate
        scores this network instead of training another."""
        with open(os.path.join(folder, CHECKPOINT), "rb") as f:
            artifacts.write_bytes(artifacts.join(self.out, CHECKPOINT), f.read())


def run(spec: MLPipelineSpec, data_uri: str, preprocess_uri: str, out: str) -> dict[str, Any]:
    tune_spec = spec.train.tune
    dataset = Dataset.load(data_uri, preprocess_uri)
    features, target, trusted = dataset.rows(data_uri, "train")
    check_folds(tune_spec.folds, target[trusted], spec.train.task == "classification", len(target))
    try:
        cpu = spec.train.resources.cores
    except ValueError as exc:
        raise StepError(str(exc)) from None
    gpu = spec.train.resources.gpu
    task, model = str(spec.train.task), spec.train.model
    context = {"input_shape": image_shape(dataset.preprocessor)}
    try:
        probe = build_estimator(task, model, {}, spec.data.seed, context)
    except ValueError as exc:  # a model that cannot be loaded: the registry says why
        raise StepError(f"spec.train.model: {exc}") from None
    by_epoch = trains_by_epoch(probe)
    if getattr(probe, "architecture", None) == "cnn" and not context["input_shape"]:
        raise StepError(
            "spec.train.model torch_cnn reads images: declare an image column in spec.data.columns "
            "or use spec.data.format images"
        )
    horizon = max_epochs(probe, tune_spec.search_space) if by_epoch else tune_spec.folds
    trials_spec = Trials(task, model, tune_spec.metric, tune_spec.folds, spec.data.seed, context, by_epoch)
    search = Search(tune_spec, horizon, probe, trials_spec, out)
    on_cluster = bool(os.environ.get("RAY_ADDRESS"))  # the driver of a RayJob (spec.train.distributed)
    distributed = on_cluster or spec.train.distributed is not None
    if runs_inline(tune_spec, by_epoch, gpu, distributed, len(target)):
        if gpu and visible_device() == "cpu":
            raise StepError(
                f"spec.train.resources.gpu={gpu:g} per trial but this node exposes no GPU "
                "(run locally with --cpu-only to train on the CPU)"
            )
        executor = "inline"
        trials, best = search_inline(search, features, target, trusted)
    else:
        executor = "Ray"
        trials, best = search_on_ray(search, features, target, trusted, cpu, gpu, on_cluster)
    best_doc = {
        "config": best["config"],
        "checkpoint": artifacts.join(out, CHECKPOINT) if by_epoch else None,
        "metric": tune_spec.metric,
        "mode": tune_spec.resolved_mode,
        "score": best[tune_spec.metric],
    }
    artifacts.write_json(artifacts.join(out, "trials.json"), trials)
    artifacts.write_json(artifacts.join(out, "best.json"), best_doc)
    stopped = sum(1 for t in trials if t.get("stoppedEarly"))
    scored = "validation" if by_epoch else "cv"
    return {
        "summary": f"{len(trials)} trials ({stopped} stopped early, {executor}), best {scored} "
        f"{tune_spec.metric}={best_doc['score']:.4f}",
        "trials": len(trials),
        "executor": executor.lower(),
        "best": best_doc,
    }


def search_inline(
    search: Search, features: np.ndarray, target: np.ndarray, trusted: np.ndarray
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from mlpipeline.steps import search_space
    from mlpipeline.steps.inline_trials import Proposals, run_trials

    spec = search.spec
    proposals = Proposals(
        search_space.search_algorithm(spec, search.trials.seed),
        search_space.param_space(spec),
        search_space.num_samples(spec),
        search.trials.seed,
        spec.metric,
        spec.resolved_mode,
    )

    def trainable(config: dict[str, Any], report: Report) -> None:
        trial(config, features, target, trusted, search.trials, report)

    with tempfile.TemporaryDirectory(prefix="mlp-trials-") as folder:
        done = run_trials(
            trainable,
            proposals,
            search_space.scheduler(spec, search.horizon),
            spec.metric,
            spec.resolved_mode,
            Path(folder),
        )
        trials = [
            search.failed(t.config, t.error)
            if t.error
            else search.record(
                t.trial_id,
                t.config,
                t.results[-1] if t.results else {},
                [float(r[spec.metric]) for r in t.results],
                t.seconds,
            )
            for t in done
        ]
        best = search.best(trials)
        if search.trials.by_epoch:
            checkpoint = next(t.checkpoint for t in done if t.trial_id == best["id"])
            if checkpoint is None:
                raise StepError("the best trial left no checkpoint")
            search.keep_checkpoint(str(checkpoint))
    return trials, best


def search_on_ray(
    search: Search,
    features: np.ndarray,
    target: np.ndarray,
    trusted: np.ndarray,
    cpu: float,
    gpu: float,
    on_cluster: bool,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    import ray
    from ray import tune

    from mlpipeline.steps import search_space

    spec = search.spec
    if on_cluster:
        ray.init(address="auto", log_to_driver=False, configure_logging=False)
    else:
        ray.init(
            num_cpus=max(os.cpu_count() or 1, math.ceil(cpu)),
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
            ignore_reinit_error=True,
        )
    try:
        resources = ray.cluster_resources()  # type: ignore[no-untyped-call]
        gpus = resources.get("GPU", 0)
        if gpu > gpus:
            where = "the Ray cluster" if on_cluster else "this node"
            raise StepError(
                f"spec.train.resources.gpu={gpu:g} per trial but {where} exposes {gpus:g} GPUs "
                "(run locally with --cpu-only to train on the CPU)"
            )
        trainable = tune.with_resources(
            tune.with_parameters(
                ray_trial, features=features, target=target, trusted=trusted, trials=search.trials
            ),
            {"cpu": cpu, "gpu": gpu},
        )
        with trial_storage(search.out, on_cluster) as (storage, filesystem):
            tuner = tune.Tuner(
                trainable,
                param_space=search_space.param_space(spec),
                tune_config=tune.TuneConfig(
                    metric=spec.metric,
                    mode=spec.resolved_mode,
                    num_samples=search_space.num_samples(spec),
                    search_alg=search_space.search_algorithm(spec, search.trials.seed),
                    scheduler=search_space.scheduler(spec, search.horizon),
                    max_concurrent_trials=spec.max_concurrent,
                    reuse_actors=True,  # a new actor per trial costs seconds of imports
                ),
                run_config=tune.RunConfig(
                    storage_path=storage,
                    storage_filesystem=filesystem,
                    name="tune",
                    verbose=0,
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                ),
            )
            results = tuner.fit()
            trials = [
                search.failed(r.config, str(r.error))
                if r.error is not None
                else search.record(
                    trial_id(r),
                    r.config,
                    r.metrics,
                    curve(r, spec.metric),
                    float(r.metrics.get("time_total_s") or 0.0),
                )
                for r in results  # type: ignore[attr-defined]
            ]
            best = search.best(trials)
            if search.trials.by_epoch:
                keep_ray_checkpoint(results, best, search)
    finally:
        ray.shutdown()
    return trials, best


@contextlib.contextmanager
def trial_storage(out: str, on_cluster: bool) -> Iterator[tuple[str, Any]]:
    """Where trials write results and checkpoints: a temporary folder in one pod; across the nodes of
    a Ray cluster, the artifact store (every worker has its credentials), under the step's output."""
    if not on_cluster:
        with tempfile.TemporaryDirectory(prefix="mlp-tune-") as folder:
            yield folder, None
        return
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    filesystem, path = store.filesystem(artifacts.join(out, "ray"))
    yield path, PyFileSystem(FSSpecHandler(filesystem))


def trial_id(result: Any) -> str | None:
    """A trial's own name (its folder), unique where configurations may repeat."""
    return str(result.path).rsplit("/", 1)[-1] if result.path else None


def curve(result: Any, metric: str) -> list[float]:
    """A Ray trial's metric after each report."""
    history = result.metrics_dataframe
    if history is None or metric not in history.columns:
        return []
    return [float(v) for v in history[metric].tolist()]


def keep_ray_checkpoint(results: Any, best: dict[str, Any], search: Search) -> None:
    for result in results:
        if result.error is None and trial_id(result) == best["id"] and result.checkpoint:
            with result.checkpoint.as_directory() as folder:
                search.keep_checkpoint(folder)
            return
    raise StepError("the best trial left no checkpoint")

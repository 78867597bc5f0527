"""Tune: hyperparameter search with Ray Tune; every trial is a k-fold cross-validation that reports
its running mean after each fold, so ASHA can stop a poor trial before its last fold."""

from __future__ import annotations

import math
import os
import re
import tempfile
from typing import Any

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold

from mlpipeline.api.models import MLPipelineSpec
from mlpipeline.steps import artifacts
from mlpipeline.steps.artifacts import StepError
from mlpipeline.steps.dataset import Dataset
from mlpipeline.steps.estimators import build_estimator
from mlpipeline.steps.metrics import score


def cpu_quantity(value: str) -> float:
    match = re.fullmatch(r"([0-9.]+)(m?)", value)
    if not match:
        raise StepError(f"spec.train.resources.cpu: cannot use {value!r} as a CPU count")
    number = float(match.group(1))
    return number / 1000 if match.group(2) else number


def cross_validate(
    config: dict[str, Any],
    features: np.ndarray,
    target: np.ndarray,
    task: str,
    model: str,
    metric: str,
    folds: int,
    seed: int,
) -> None:
    from ray import tune

    splitter = (
        StratifiedKFold(folds, shuffle=True, random_state=seed)
        if task == "classification"
        else KFold(folds, shuffle=True, random_state=seed)
    )
    scores: list[float] = []
    for fold, (train_idx, valid_idx) in enumerate(splitter.split(features, target), start=1):
        estimator = build_estimator(task, model, config, seed)
        estimator.fit(features[train_idx], target[train_idx])
        scores.append(score(metric, estimator, features[valid_idx], target[valid_idx]))
        tune.report({metric: float(np.mean(scores)), "fold": fold})


def best_trial(trials: list[dict[str, Any]], metric: str, mode: str) -> dict[str, Any]:
    """The best trial among those that ran every fold: a trial stopped early after a lucky first
    fold must not win against full cross-validations."""
    complete = [t for t in trials if not t["stoppedEarly"]] or trials
    pick = max if mode == "max" else min
    return pick(complete, key=lambda t: t[metric])


def run(spec: MLPipelineSpec, data_uri: str, preprocess_uri: str, out: str) -> dict[str, Any]:
    import ray
    from ray import tune

    from mlpipeline.steps import search_space

    tune_spec = spec.train.tune
    dataset = Dataset.load(data_uri, preprocess_uri)
    features, target = dataset.split(data_uri, "train")
    if spec.train.task == "classification":
        smallest = int(np.bincount(target).min())
        if smallest < tune_spec.folds:
            raise StepError(
                f"spec.train.tune.folds={tune_spec.folds} but the smallest class has {smallest} "
                "train rows; lower folds or add data"
            )
    cpu = cpu_quantity(spec.train.resources.cpu)
    gpu = spec.train.resources.gpu
    available_cpus = max(os.cpu_count() or 1, math.ceil(cpu))
    ray.init(
        num_cpus=available_cpus,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        ignore_reinit_error=True,
    )
    try:
        resources = ray.cluster_resources()  # type: ignore[no-untyped-call]
        gpus = int(resources.get("GPU", 0))
        if gpu > gpus:
            raise StepError(
                f"spec.train.resources.gpu={gpu} but this node has {gpus} GPUs "
                "(run locally with --cpu-only to train on the CPU)"
            )
        trainable = tune.with_resources(
            tune.with_parameters(
                cross_validate,
                features=features,
                target=target,
                task=str(spec.train.task),
                model=spec.train.model,
                metric=tune_spec.metric,
                folds=tune_spec.folds,
                seed=spec.data.seed,
            ),
            {"cpu": cpu, "gpu": gpu},
        )
        with tempfile.TemporaryDirectory(prefix="mlp-tune-") as storage:
            tuner = tune.Tuner(
                trainable,
                param_space=search_space.param_space(tune_spec),
                tune_config=tune.TuneConfig(
                    metric=tune_spec.metric,
                    mode=tune_spec.resolved_mode,
                    num_samples=search_space.num_samples(tune_spec),
                    search_alg=search_space.search_algorithm(tune_spec, spec.data.seed),
                    scheduler=search_space.scheduler(tune_spec),
                    max_concurrent_trials=tune_spec.max_concurrent,
                ),
                run_config=tune.RunConfig(storage_path=storage, name="tune", verbose=0),
            )
            results = tuner.fit()
            trials = []
            for result in results:  # type: ignore[attr-defined]
                if result.error is not None:
                    trials.append({"config": result.config, "error": str(result.error)[:500]})
                    continue
                trials.append(
                    {
                        "config": result.config,
                        tune_spec.metric: result.metrics.get(tune_spec.metric),
                        "folds": result.metrics.get("fold"),
                        "stoppedEarly": (result.metrics.get("fold") or 0) < tune_spec.folds,
                    }
                )
            ok = [t for t in trials if "error" not in t]
            if not ok:
                raise StepError(f"every trial failed; first error: {trials[0]['error']}")
    finally:
        ray.shutdown()
    best = best_trial(ok, tune_spec.metric, tune_spec.resolved_mode)
    best_doc = {
        "config": best["config"],
        "metric": tune_spec.metric,
        "mode": tune_spec.resolved_mode,
        "score": best[tune_spec.metric],
    }
    artifacts.write_json(artifacts.join(out, "trials.json"), trials)
    artifacts.write_json(artifacts.join(out, "best.json"), best_doc)
    stopped = sum(1 for t in ok if t["stoppedEarly"])
    return {
        "summary": f"{len(trials)} trials ({stopped} stopped early), best cv "
        f"{tune_spec.metric}={best_doc['score']:.4f}",
        "trials": len(trials),
        "best": best_doc,
    }

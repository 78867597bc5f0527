"""Tuning, measured: what each search algorithm reaches and spends, and what a tune step costs
beyond the training it runs.

    python -m bench.tune [--seeds 3] [--runs 3] [--skip-search]

1. Search algorithms on one search space, in the same run, through ``mlpipeline run`` (the local
   runner, as a user runs it): a PyTorch MLP (torch_mlp, trained epoch by epoch) on scikit-learn's
   digits as 64 pixel columns; grid search over every combination, random and Bayesian (Optuna TPE)
   search with as many trials as the grid has points, each both without early stopping and with
   ASHA stopping trials between epochs (six configurations), so that the search algorithm and the
   early stopping are measured apart. Repeated for --seeds data seeds (the split and every random
   choice), all six configurations per seed before the next seed. Per configuration, the median and
   spread (min, max) across seeds of: best validation accuracy, test accuracy of the gated model,
   trial-epochs spent; ratios of medians against grid without early stopping (the exhaustive
   search) and, for ASHA, against the same algorithm without it.
2. Fixed cost: ``mlpipeline run -f examples/iris.yaml --no-serve`` (seconds per step) with the
   trials inline (what ``executor: auto`` picks for iris) and on Ray (``executor: ray``), against
   the same 8 trials of 3-fold cross-validation (random forest, same search space) with Optuna in one
   Python process, imports included; and within the tune step, the trials' own training seconds
   against the step's wall time (the rest is the step's imports and, on Ray, Ray's start-up and
   scheduling). --runs rounds, interleaved (in-process, inline, Ray, in-process, ...): median and
   spread of each figure, ratios of medians.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from sklearn.datasets import load_digits

from bench.stats import ratio, summarise

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "mlpipeline.cli"]

SPACE: dict[str, dict[str, list[float]]] = {
    "lr": {"grid": [0.001, 0.003, 0.01]},
    "width": {"grid": [32, 128]},
    "dropout": {"grid": [0.0, 0.3]},
}
EPOCHS = 10

BASELINE = """
import time; started = time.time()
import optuna, pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import cross_val_score
frame = pd.read_csv({data!r})
x, y = frame.drop(columns=["species"]), frame["species"]
def objective(trial):
    model = RandomForestClassifier(
        n_estimators=trial.suggest_int("n_estimators", 10, 119),
        max_depth=trial.suggest_categorical("max_depth", [2, 3, 5, 8]),
        min_samples_leaf=trial.suggest_int("min_samples_leaf", 1, 4), n_jobs=1, random_state=42)
    return cross_val_score(model, x, y, cv=3).mean()
optuna.logging.set_verbosity(optuna.logging.WARNING)
study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=42))
study.optimize(objective, n_trials=8)
print(study.best_value)
"""


def run_pipeline(manifest: Path, workdir: Path) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    done = subprocess.run(
        [*CLI, "run", "-f", str(manifest), "--workdir", str(workdir), "--no-serve"],
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"mlpipeline run failed:\n{done.stdout}\n{done.stderr}")
    name = yaml.safe_load(manifest.read_text())["metadata"]["name"]
    folder = workdir / name
    steps = {p.name.split("-", 1)[0]: p for p in (folder / "steps").iterdir()}
    results = {s: json.loads((p / "result.json").read_text()) for s, p in steps.items()}
    return seconds, {"steps": steps, "results": results}


def search(tmp: Path, data: Path, algorithm: str, scheduler: str, seed: int, trials: int) -> dict[str, Any]:
    space = SPACE if algorithm != "random" else {k: {"choice": v["grid"]} for k, v in SPACE.items()}
    document = {
        "apiVersion": "mlpipeline.dev/v1alpha1",
        "kind": "MLPipeline",
        "metadata": {"name": f"digits-{algorithm}-{scheduler}-{seed}"},
        "spec": {
            "data": {"uri": str(data), "label": "digit", "seed": seed},
            "train": {
                "model": "torch_mlp",
                "tune": {
                    "algorithm": algorithm,
                    "scheduler": scheduler,
                    "trials": 1 if algorithm == "grid" else trials,
                    "maxConcurrent": 2,
                    "metric": "accuracy",
                    "searchSpace": {**space, "epochs": {"choice": [EPOCHS]}},
                },
            },
            "evaluate": {"metric": "accuracy", "min": 0.5},
            "serve": {"enabled": False},
        },
    }
    manifest = tmp / f"{algorithm}-{scheduler}-{seed}.yaml"
    manifest.write_text(yaml.safe_dump(document))
    seconds, run = run_pipeline(manifest, tmp / "work")
    done = json.loads((run["steps"]["tune"] / "trials.json").read_text())
    best = json.loads((run["steps"]["tune"] / "best.json").read_text())
    return {
        "algorithm": algorithm,
        "scheduler": scheduler,
        "trials": len(done),
        "stoppedEarly": sum(t.get("stoppedEarly", False) for t in done),
        "trialEpochs": sum(t.get("epochs", 0) for t in done),
        "bestValidationAccuracy": round(best["score"], 4),
        "testAccuracy": round(run["results"]["evaluate"]["metrics"]["accuracy"], 4),
        "tuneSeconds": run["results"]["tune"]["seconds"],
        "runSeconds": round(seconds, 1),
    }


def searches(tmp: Path, seeds: int) -> dict[str, Any]:
    """Every algorithm with and without ASHA, for each seed in turn; summaries and ratios of medians
    against grid without early stopping and against the same algorithm without it."""
    digits = load_digits(as_frame=True)
    frame = digits.data.copy()
    frame["digit"] = digits.target
    data = tmp / "digits.csv"
    frame.to_csv(data, index=False)
    points = 1
    for param in SPACE.values():
        points *= len(param["grid"])
    configurations = [(a, s) for a in ("grid", "random", "bayesian") for s in ("none", "asha")]
    seed_list = [42 + i for i in range(seeds)]
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {c: [] for c in configurations}
    for seed in seed_list:
        for algorithm, scheduler in configurations:
            runs[algorithm, scheduler].append(search(tmp, data, algorithm, scheduler, seed, points))
    summaries = {c: summarise(rows) for c, rows in runs.items()}
    compared = ("trialEpochs", "bestValidationAccuracy", "testAccuracy")
    rows = []
    for (algorithm, scheduler), row in summaries.items():
        against = {"vsGridWithoutEarlyStopping": summaries["grid", "none"]}
        if scheduler != "none":
            against["vsSameWithoutEarlyStopping"] = summaries[algorithm, "none"]
        for label, baseline in against.items():
            row[label] = {k: ratio(row[k], baseline[k]) for k in compared}
        rows.append(row)
    return {"seeds": seed_list, "configurations": rows}


def iris_with(tmp: Path, executor: str) -> Path:
    """examples/iris.yaml (maxConcurrent 2) with ``spec.train.tune.executor`` set and its data path
    made absolute."""
    manifest = yaml.safe_load((ROOT / "examples" / "iris.yaml").read_text())
    manifest["spec"]["data"]["uri"] = str(ROOT / "examples" / manifest["spec"]["data"]["uri"])
    manifest["spec"]["train"]["tune"]["executor"] = executor
    path = tmp / f"iris-{executor}.yaml"
    path.write_text(yaml.safe_dump(manifest))
    return path


def fixed_cost_once(tmp: Path, index: int) -> dict[str, Any]:
    started = time.perf_counter()
    baseline = subprocess.run(
        [sys.executable, "-c", BASELINE.format(data=str(ROOT / "examples" / "data" / "iris.csv"))],
        capture_output=True,
        text=True,
        check=True,
    )
    report: dict[str, Any] = {
        "inProcessOptunaSeconds": round(time.perf_counter() - started, 1),
        "inProcessBestCv": round(float(baseline.stdout.strip()), 4),
    }
    for asked in ("auto", "ray"):  # auto runs iris's trials inline
        # a fresh workdir each time: the runner would reuse the steps of an identical run
        seconds, run = run_pipeline(iris_with(tmp, asked), tmp / f"{asked}-{index}")
        executor = run["results"]["tune"]["executor"]
        trials = json.loads((run["steps"]["tune"] / "trials.json").read_text())
        tune_seconds = run["results"]["tune"]["seconds"]
        training = sum(t.get("seconds", 0.0) for t in trials)
        at_once = 1 if executor == "inline" else 2  # iris.yaml: maxConcurrent 2
        report[executor] = {
            "pipelineSeconds": round(seconds, 1),
            "stepSeconds": {s: r["seconds"] for s, r in run["results"].items()},
            "bestCv": run["results"]["tune"]["best"]["score"],
            "tuneStepSeconds": tune_seconds,
            "trialTrainingSeconds": round(training, 1),
            "tuneOverhead": round((tune_seconds - training / at_once) / tune_seconds, 2),
        }
    return report


def fixed_cost(tmp: Path, runs: int) -> dict[str, Any]:
    """``runs`` rounds of the in-process baseline, the inline run and the Ray run, interleaved."""
    report = summarise([fixed_cost_once(tmp, i) for i in range(runs)])
    in_process = report["inProcessOptunaSeconds"]
    for executor in ("inline", "ray"):
        report[executor]["pipelineOverInProcess"] = ratio(report[executor]["pipelineSeconds"], in_process)
    report["rayOverInline"] = ratio(report["ray"]["pipelineSeconds"], report["inline"]["pipelineSeconds"])
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--skip-search", action="store_true", help="only the fixed cost")
    parser.add_argument("--seeds", type=int, default=3, help="data seeds of the search comparison")
    parser.add_argument("--runs", type=int, default=3, help="rounds of the fixed cost")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-tune-") as folder:
        tmp = Path(folder)
        report: dict[str, Any] = {"benchmark": "tune", "fixedCost": fixed_cost(tmp, args.runs)}
        if not args.skip_search:
            report["search"] = searches(tmp, args.seeds)
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""Tuning, measured: what each search algorithm reaches and spends, and what a tune step costs
beyond the training it runs.

    python -m bench.tune

1. Search algorithms on one search space, in the same run, through ``mlpipeline run`` (the local
   runner, as a user runs it): a PyTorch MLP (torch_mlp, trained epoch by epoch) on scikit-learn's
   digits as 64 pixel columns; grid search over every combination without early stopping, against
   random and Bayesian (Optuna TPE) search with ASHA stopping trials between epochs, each with as
   many trials as the grid has points. Per algorithm: best validation accuracy, test accuracy of the
   gated model, trial-epochs spent; ratios against grid.
2. Fixed cost: ``mlpipeline run -f examples/iris.yaml --no-serve`` (seconds per step) with the
   trials inline (what ``executor: auto`` picks for iris) and on Ray (``executor: ray``), against
   the same 8 trials of 3-fold cross-validation (random forest, same search space) with Optuna in one
   Python process, imports included; and within the tune step, the trials' own training seconds
   against the step's wall time (the rest is the step's imports and, on Ray, Ray's start-up and
   scheduling).
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

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "mlpipeline.cli"]

SPACE = {
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


def search(tmp: Path, data: Path, algorithm: str, trials: int) -> dict[str, Any]:
    scheduler = "none" if algorithm == "grid" else "asha"
    space = SPACE if algorithm != "random" else {k: {"choice": v["grid"]} for k, v in SPACE.items()}
    document = {
        "apiVersion": "mlpipeline.dev/v1alpha1",
        "kind": "MLPipeline",
        "metadata": {"name": f"digits-{algorithm}"},
        "spec": {
            "data": {"uri": str(data), "label": "digit"},
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
    manifest = tmp / f"{algorithm}.yaml"
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


def iris_with(tmp: Path, executor: str) -> Path:
    """examples/iris.yaml (maxConcurrent 2) with ``spec.train.tune.executor`` set and its data path
    made absolute."""
    manifest = yaml.safe_load((ROOT / "examples" / "iris.yaml").read_text())
    manifest["spec"]["data"]["uri"] = str(ROOT / "examples" / manifest["spec"]["data"]["uri"])
    manifest["spec"]["train"]["tune"]["executor"] = executor
    path = tmp / f"iris-{executor}.yaml"
    path.write_text(yaml.safe_dump(manifest))
    return path


def fixed_cost(tmp: Path) -> dict[str, Any]:
    started = time.perf_counter()
    baseline = subprocess.run(
        [sys.executable, "-c", BASELINE.format(data=str(ROOT / "examples" / "data" / "iris.csv"))],
        capture_output=True,
        text=True,
        check=True,
    )
    in_process = time.perf_counter() - started
    report: dict[str, Any] = {
        "inProcessOptunaSeconds": round(in_process, 1),
        "inProcessBestCv": round(float(baseline.stdout.strip()), 4),
    }
    for asked in ("auto", "ray"):  # auto runs iris's trials inline
        seconds, run = run_pipeline(iris_with(tmp, asked), tmp / asked)
        executor = run["results"]["tune"]["executor"]
        trials = json.loads((run["steps"]["tune"] / "trials.json").read_text())
        tune_seconds = run["results"]["tune"]["seconds"]
        training = sum(t.get("seconds", 0.0) for t in trials)
        at_once = 1 if executor == "inline" else 2  # iris.yaml: maxConcurrent 2
        report[executor] = {
            "pipelineSeconds": round(seconds, 1),
            "pipelineOverInProcess": round(seconds / in_process, 2),
            "stepSeconds": {s: r["seconds"] for s, r in run["results"].items()},
            "bestCv": run["results"]["tune"]["best"]["score"],
            "tuneStepSeconds": tune_seconds,
            "trialTrainingSeconds": round(training, 1),
            "tuneOverhead": round((tune_seconds - training / at_once) / tune_seconds, 2),
        }
    report["rayOverInline"] = round(report["ray"]["pipelineSeconds"] / report["inline"]["pipelineSeconds"], 2)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--skip-search", action="store_true", help="only the fixed cost")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-tune-") as folder:
        tmp = Path(folder)
        report: dict[str, Any] = {"fixedCost": fixed_cost(tmp)}
        if not args.skip_search:
            digits = load_digits(as_frame=True)
            frame = digits.data.copy()
            frame["digit"] = digits.target
            data = tmp / "digits.csv"
            frame.to_csv(data, index=False)
            points = 1
            for param in SPACE.values():
                points *= len(param["grid"])
            rows = [search(tmp, data, a, points) for a in ("grid", "random", "bayesian")]
            grid = rows[0]
            for row in rows:
                row["trialEpochsVsGrid"] = round(row["trialEpochs"] / grid["trialEpochs"], 2)
                row["bestVsGrid"] = round(row["bestValidationAccuracy"] / grid["bestValidationAccuracy"], 3)
            report["search"] = rows
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

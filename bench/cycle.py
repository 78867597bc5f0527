"""The cycle, measured: does it leave a better model serving, for how many human labels, without
refusing a request? For each data set (bench/cycle_data.py: the sensors example and scikit-learn's
digits) and each changed world (a new month whose inputs shifted; one whose behaviour changed),
`mlpipeline run --watch` serves a model trained on the old months. A client sends the new month's
records to the announced port the whole time. The new month's batch lands unlabeled in
spec.labeling.source: the labeling round labels what the serving model is sure of and asks people
(here: the known truth) for the rest and the audit; its partition is new data, so onNewData retrains
and the canary (default checks) promotes or rolls back the new model — nothing is done by hand.

    python -m bench.cycle [--seeds 1] [--datasets sensors,digits] [--last-partitions 0] [--jobs 1]

The pipeline trains on every partition, as spec.data.uri's pattern does by default (--last-partitions
N: the newest N only, spec.data.lastPartitions). Scored on held-out labeled rows of the new month, in
the same run:
  * stale: the model serving before the month landed;
  * automatic: the model serving after the cycle (promoted, or the stale one if rolled back; the
    retrained candidate's own score is reported beside it);
  * byHand: a random forest trained by hand on every labeled row of the same window, the whole
    batch labeled by people (the obvious upper baseline, at the price of a label per record).
Also the human labels each spent, the requests the client sent and those refused or failed (5xx),
the seconds from the batch landing to the cycle's end. JSON: per data set and scenario the median,
mean and spread (min, max) over --seeds seeds (each draws other months), with the gains, gaps and
ratios. Each cycle's figures also go to stderr as soon as it ends.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import yaml
from mlpipeline.local.load import Load
from mlpipeline.local.server import free_port, is_ready, stop_group
from sklearn.ensemble import RandomForestClassifier

from bench.cycle_data import DATASETS, SCENARIOS, Digits, Months, Sensors
from bench.stats import ratio, summarise

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
Dataset = Sensors | Digits


def manifest(folder: Path, dataset: Dataset, args: argparse.Namespace) -> Path:
    """examples/cycle.yaml over this folder's months, retraining on new data only (a round's
    partition), with labeling rounds over new batches (spec.labeling's selection defaults)."""
    document = yaml.safe_load((EXAMPLES / "cycle.yaml").read_text())
    document["metadata"]["name"] = f"cycle-{dataset.name}"
    spec = document["spec"]
    spec["data"] = {"uri": str(folder / "data" / "*.csv"), "label": dataset.label}
    if args.last_partitions:
        spec["data"]["lastPartitions"] = args.last_partitions
    spec["train"]["tune"]["trials"] = args.trials
    spec["retrain"] = {"onNewData": {"interval": "1s", "settle": "1s", "minNewRows": 1}}
    spec["labeling"] = {
        "source": str(folder / "unlabeled" / "*.csv"),
        "into": str(folder / "data"),
        "interval": "1s",
        "settle": "1s",
    }
    path = folder / "cycle.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return {}


def wait(what: str, check: Callable[[], Any], timeout: float, process: subprocess.Popen[bytes]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlpipeline run --watch exited while waiting for {what}")
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise TimeoutError(what)


def accuracy(url: str, records: list[dict[str, Any]], truth: list[str]) -> float:
    answers = httpx.post(f"{url}/predict", json={"records": records}, timeout=120).json()
    return round(sum(str(a["label"]) == y for a, y in zip(answers, truth, strict=True)) / len(truth), 4)


def bundle_accuracy(workdir: Path, tag: str, held_out: pd.DataFrame, label: str) -> float:
    """A packaged model's accuracy, loaded as its servers load it (for a candidate not serving)."""
    script = (
        "import json, sys\n"
        "from mlpipeline.serving.bundle import load_bundle\n"
        "records, truth = json.load(sys.stdin)\n"
        f"_, bundle = load_bundle({tag!r})\n"
        "answers = bundle.predict(records)\n"
        "print(sum(str(a['label']) == t for a, t in zip(answers, truth)) / len(truth))\n"
    )
    given = json.dumps(
        [held_out.drop(columns=label).to_dict("records"), held_out[label].astype(str).tolist()]
    )
    env = {**os.environ, "BENTOML_HOME": str(workdir / "bentoml")}
    out = subprocess.run(
        [sys.executable, "-c", script], input=given, env=env, capture_output=True, text=True, check=True
    )
    return round(float(out.stdout.strip().splitlines()[-1]), 4)


def by_hand(months: Months, label: str, seed: int, window: int) -> float:
    """The upper baseline: a random forest on every labeled row of the partitions the pipeline
    trains on (the newest ``window``, 0: all), the new month's whole batch labeled by people."""
    partitions = [*months.old, months.batch]
    train = pd.concat(partitions[-window:] if window else partitions)
    model = RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1)
    model.fit(train.drop(columns=label), train[label].astype(str))
    held = months.held_out
    return round(float(model.score(held.drop(columns=label), held[label].astype(str))), 4)


def choice(label: str) -> dict[str, Any]:
    return {"from_name": "label", "to_name": "record", "type": "choices", "value": {"choices": [label]}}


def answer_as_people(root: Path, truth: list[str], process: subprocess.Popen[bytes]) -> None:
    """Plays the people of the round: once it waits for them, every task (the uncertain records and
    the audit) is answered from the truth, as Label Studio's JSON export beside its import file."""
    current = wait(
        "the labeling round to wait for people",
        lambda: (
            (r := read_json(root / "labeling-status.json").get("round") or {}).get("phase")
            in ("AwaitingPeople", "Failed")
            and r
        ),
        600,
        process,
    )
    if current["phase"] == "Failed":
        raise RuntimeError(f"the labeling round failed: {current.get('message')}")
    imported = Path(current["project"])
    tasks = json.loads(imported.read_text())
    export = [
        {
            "id": i,
            "data": t["data"],
            "annotations": [{"id": i, "result": [choice(truth[t["data"]["mlp_row"]])]}],
        }
        for i, t in enumerate(tasks)
    ]
    (imported.parent / "label-studio-export.json").write_text(json.dumps(export))


def cycle_end(root: Path, stale: str, log: Path) -> tuple[str, str] | None:
    """(outcome, serving version) once the retrained model was promoted or rolled back, or the
    retraining ended without a canary; None before."""
    serving = read_json(root / "serving-status.json")
    if serving.get("phase") == "Promoted" and serving.get("stable") != stale:
        return "promoted", serving["stable"]
    if serving.get("phase") == "RolledBack":
        return "rolled back", serving["stable"]
    said = log.read_text(errors="replace")
    if "the retraining run failed" in said:
        return "retraining failed", stale
    if "nothing to roll out" in said:
        return "the same model", stale
    return None


def start_watch(
    folder: Path, dataset: Dataset, months: Months, args: argparse.Namespace, port: int
) -> subprocess.Popen[bytes]:
    """The old months as partitions, an empty batch folder, and `mlpipeline run --watch` on them,
    announcing ``port``."""
    (folder / "data").mkdir()
    (folder / "unlabeled").mkdir()
    for index, month in enumerate(months.old, start=1):  # names sort before the rounds' labels-*
        month.to_csv(folder / "data" / f"2026-{index:02d}.csv", index=False)
    command = [
        str(Path(sys.executable).with_name("mlpipeline")),
        "run",
        "-f",
        str(manifest(folder, dataset, args)),
    ]
    command += ["--workdir", str(folder / "work"), "--watch", "--port", str(port), "--canary-load", "10"]
    with (folder / "watch.log").open("wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def watched(folder: Path, dataset: Dataset, months: Months, args: argparse.Namespace) -> dict[str, Any]:
    """The cycle itself, measured: the stale model's score, the batch landing, the people's answers,
    the cycle's end, the served model's score; a client on the announced port meanwhile."""
    label = dataset.label
    records = months.held_out.drop(columns=label).to_dict("records")
    truth = months.held_out[label].astype(str).tolist()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    root = folder / "work" / f"cycle-{dataset.name}"
    log = folder / "watch.log"
    process = start_watch(folder, dataset, months, args, port)
    try:
        stale = wait(
            "the first model", lambda: read_json(root / "serving-status.json").get("stable"), 900, process
        )
        wait("the announced port", lambda: is_ready(url), 240, process)
        accuracy_stale = accuracy(url, records, truth)
        client = Load(f"{url}/predict", records, rate=5, threads=2, max_seconds=1800).start()
        try:
            landed = time.monotonic()
            months.batch.drop(columns=label).to_csv(folder / "unlabeled" / "batch-01.csv", index=False)
            answer_as_people(root, months.batch[label].astype(str).tolist(), process)
            outcome, serving = wait("the cycle's end", lambda: cycle_end(root, stale, log), 900, process)
            seconds = round(time.monotonic() - landed, 1)
            accuracy_automatic = accuracy(url, records, truth)
        finally:
            requests = client.stop()
    finally:
        stop_group(process)
    labeled = read_json(root / "labeling-status.json").get("round") or {}
    failed_checks = [
        f"{c.get('name')}={c.get('value')} (allowed {c.get('threshold')}, expected {c.get('expected')})"
        for c in read_json(root / "serving-status.json").get("checks") or []
        if c.get("verdict") == "fail"
    ]
    candidate = str(read_json(root / "last-run.json").get("model") or "")
    accuracy_candidate = accuracy_automatic
    if candidate and not candidate.endswith((f":{serving}", f":{stale}")):
        accuracy_candidate = bundle_accuracy(folder / "work", candidate, months.held_out, label)
    return {
        "outcome": outcome,
        "canaryChecksFailed": failed_checks,
        "accuracyStale": accuracy_stale,
        "accuracyAutomatic": accuracy_automatic,
        "accuracyRetrainedCandidate": accuracy_candidate,
        "humanLabels": {
            "automatic": labeled.get("labeledByPeople"),
            "byHand": len(months.batch),
            "autoLabeled": labeled.get("autoLabeled"),
            "auditDisagreement": labeled.get("auditDisagreement"),
        },
        "autoLabelsUsed": labeled.get("autoLabelsUsed"),
        "requests": {"sent": requests.total, "refused": requests.refused, "failed": requests.failed},
        "secondsBatchLandedToCycleEnd": seconds,
    }


def one_cycle(dataset: Dataset, scenario: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    months = dataset.months(scenario, seed)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        try:
            run = watched(folder, dataset, months, args)
        except Exception as exc:
            log = folder / "watch.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{type(exc).__name__}: {exc}; watch.log ends: {tail}") from exc
    stale, automatic = run["accuracyStale"], run["accuracyAutomatic"]
    by_hand_score = by_hand(months, dataset.label, seed, args.last_partitions)
    return run | {
        "accuracyByHand": by_hand_score,
        "gainAutomaticOverStale": round(automatic - stale, 4),
        "gapByHandOverAutomatic": round(by_hand_score - automatic, 4),
        "ratioAutomaticToStale": round(automatic / max(stale, 1e-9), 4),
        "ratioAutomaticToByHand": round(automatic / max(by_hand_score, 1e-9), 4),
    }


def measured(dataset: Dataset, scenario: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """One cycle's figures (or its error), also said on stderr as soon as they are known."""
    started = time.monotonic()
    try:
        run = one_cycle(dataset, scenario, seed, args)
    except Exception as exc:  # one cycle's failure is its figure; the others still run
        run = {"error": str(exc)}
    said = {
        "dataset": dataset.name,
        "scenario": scenario,
        "seed": seed,
        "seconds": round(time.monotonic() - started),
    }
    print(json.dumps(said | run), file=sys.stderr, flush=True)
    return run


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    done = [r for r in runs if "error" not in r]
    out: dict[str, Any] = summarise(done) if done else {}
    if done:
        out["ratioOfMedians"] = {
            "automaticToStale": ratio(out["accuracyAutomatic"], out["accuracyStale"]),
            "automaticToByHand": ratio(out["accuracyAutomatic"], out["accuracyByHand"]),
        }
    out["runs"] = len(done)
    out["errors"] = [r["error"] for r in runs if "error" in r]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0, 1, ...: other months drawn")
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--trials", type=int, default=2, help="tuning trials per run (the example: 4)")
    parser.add_argument(
        "--last-partitions",
        type=int,
        default=0,
        help="spec.data.lastPartitions: train on the newest N partitions only (0, the default: every one)",
    )
    parser.add_argument("--jobs", type=int, default=1, help="cycles run at the same time")
    args = parser.parse_args()
    cycles = [
        (DATASETS[name], scenario, seed)
        for name in args.datasets.split(",")
        for scenario in args.scenarios.split(",")
        for seed in range(args.seeds)
    ]
    if args.jobs > 1:
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            runs = list(pool.map(lambda c: measured(*c, args), cycles))
    else:  # in this thread, so that an interrupt stops the cycle's `--watch` on its way out
        runs = [measured(*c, args) for c in cycles]
    results: dict[str, Any] = {}
    for (dataset, scenario, _), run in zip(cycles, runs, strict=True):
        entry = results.setdefault(dataset.name, {"data": dataset.description, "scenarios": {}})
        entry["scenarios"].setdefault(scenario, []).append(run)
    for entry in results.values():
        entry["scenarios"] = {scenario: summary(runs) for scenario, runs in entry["scenarios"].items()}
    window = args.last_partitions
    print(
        json.dumps(
            {
                "benchmark": "cycle",
                "seeds": args.seeds,
                "trainedOn": f"the newest {window} partitions" if window else "every partition",
                "tuningTrials": args.trials,
                "datasets": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

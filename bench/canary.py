"""How fast a canary that goes bad is rolled back, and how many requests fail meanwhile, with the
default settings — against a baseline that analyses only once per traffic step, as Flagger does
(analysis interval = step interval), measured in the same run.

    python -m bench.canary [--rate 50] [--healthy-seconds 15] [--runs 3]

A canary is rolled out with real processes (two BentoML servers, the router, Prometheus, a load
generator at --rate requests/s); after --healthy-seconds it starts answering 10 % of its requests
with HTTP 500. --runs runs per side, interleaved (ours, baseline, ours, ...). Prints JSON: per side
the median and spread (min, max) across runs of the seconds from the breach to the rollback and of
the fraction of all requests that failed, and the ratios of the medians to the baseline's.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from mlpipeline.api.models import CanarySpec, ServeSpec
from mlpipeline.local.load import Load
from mlpipeline.local.rollout import LocalRollout
from mlpipeline.local.serve import sample_records
from mlpipeline.local.server import free_port

from bench.models import bentoml_home, trained_versions
from bench.stats import ratio, summarise


def scenario(
    spec: CanarySpec, versions: list[dict[str, Any]], rate: float, healthy_seconds: float
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        chaos = Path(tmp) / "chaos.json"
        chaos.write_text("{}")
        rollout = LocalRollout(
            versions[0]["tag"],
            versions[1]["tag"],
            ServeSpec(canary=spec),
            bentoml_home(),
            Path(tmp) / "rollout",
            port=free_port(),
            canary_env={"MLP_CHAOS_FILE": str(chaos)},
        ).start()
        breach: dict[str, float] = {}

        def go_bad() -> None:
            time.sleep(healthy_seconds)
            chaos.write_text(json.dumps({"errorRate": 0.1}))
            breach["at"] = time.monotonic()

        assert rollout.router is not None
        records = sample_records(versions[0]["ingest"], rows=30)
        load = Load(f"{rollout.router.url}/predict", records, rate=rate, max_seconds=600).start()
        threading.Thread(target=go_bad, daemon=True).start()
        try:
            state = rollout.run()
        finally:
            stats = load.stop()
            rollout.stop()
    ended = rollout.ticks[-1].at
    return {
        "outcome": state.phase,
        "message": state.message,
        "seconds_breach_to_rollback": round(ended - breach["at"], 1) if "at" in breach else None,
        "requests": stats.total,
        "failed": stats.failed,
        "failed_fraction": round(stats.failed / max(stats.total, 1), 5),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--healthy-seconds", type=float, default=15)
    parser.add_argument("--runs", type=int, default=3, help="per side, interleaved")
    args = parser.parse_args()
    versions = trained_versions(2)
    defaults = CanarySpec()
    baseline_spec = defaults.model_copy(
        update={
            "analysis": defaults.analysis.model_copy(
                update={"interval": defaults.interval, "window": defaults.interval}
            )
        }
    )
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "baseline": []}
    for _ in range(args.runs):
        runs["ours"].append(scenario(defaults, versions, args.rate, args.healthy_seconds))
        runs["baseline"].append(scenario(baseline_spec, versions, args.rate, args.healthy_seconds))
    ours, baseline = summarise(runs["ours"]), summarise(runs["baseline"])
    print(
        json.dumps(
            {
                "benchmark": "canary",
                "settings": {
                    "steps": defaults.steps,
                    "stepInterval": defaults.interval,
                    "analysis": defaults.analysis.model_dump(by_alias=True, exclude_none=True),
                },
                "load_requests_per_s": args.rate,
                "fault": "10% HTTP 500 on the canary",
                "runs_per_side": args.runs,
                "mlpipeline": ours,
                "baseline_per_step_analysis": baseline,
                "ratio_of_medians": {
                    key: ratio(ours[key], baseline[key])
                    for key in ("seconds_breach_to_rollback", "failed_fraction")
                },
                "goal": {"seconds_breach_to_rollback": 30, "failed_fraction": 0.01},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

"""Throughput and latency of the model service with adaptive batching against the same model
served unbatched, both measured in this run with the same closed-loop client.

    python -m bench.serving [--seconds 15] [--concurrency 32]

Prints JSON: requests/s, p50 and p99 latency of each, and the ratios batched / unbatched.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from mlpipeline.local.serve import sample_records
from mlpipeline.local.server import ModelServer, free_port

from bench.models import bentoml_home, trained_versions


async def closed_loop(
    url: str, records: list[dict[str, Any]], seconds: float, concurrency: int
) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds

    async def client(index: int) -> None:
        nonlocal errors
        async with httpx.AsyncClient(timeout=30) as http:
            i = index
            while time.monotonic() < deadline:
                started = time.monotonic()
                response = await http.post(url, json={"records": [records[i % len(records)]]})
                latencies.append(time.monotonic() - started)
                errors += response.status_code != 200
                i += concurrency

    started = time.monotonic()
    await asyncio.gather(*(client(i) for i in range(concurrency)))
    elapsed = time.monotonic() - started
    ordered = sorted(latencies)
    return {
        "requests": len(latencies),
        "errors": errors,
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 2),
    }


def measure(
    tag: str, records: list[dict[str, Any]], batching: bool, seconds: float, concurrency: int
) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        server = ModelServer(
            tag=tag,
            bentoml_home=bentoml_home(),
            port=free_port(),
            log=Path(tmp) / "serve.log",
            extra_env={"MLP_BATCHING": "1" if batching else "0"},
        ).start()
        try:
            server.wait_ready()
            asyncio.run(closed_loop(f"{server.url}/predict", records, 2, concurrency))  # warm-up
            return asyncio.run(closed_loop(f"{server.url}/predict", records, seconds, concurrency))
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    version = trained_versions(1)[0]
    records = sample_records(version["ingest"], rows=30)
    batched = measure(version["tag"], records, True, args.seconds, args.concurrency)
    unbatched = measure(version["tag"], records, False, args.seconds, args.concurrency)
    print(
        json.dumps(
            {
                "benchmark": "serving",
                "model": version["tag"],
                "concurrency": args.concurrency,
                "seconds": args.seconds,
                "batched": batched,
                "unbatched": unbatched,
                "ratio": {
                    "requests_per_s": round(batched["requests_per_s"] / unbatched["requests_per_s"], 3),
                    "p50": round(batched["p50_ms"] / unbatched["p50_ms"], 3),
                    "p99": round(batched["p99_ms"] / unbatched["p99_ms"], 3),
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

"""Throughput and latency of the model service with adaptive batching against the same model
served unbatched, and against the same model behind a plain Starlette app on uvicorn (what a user
would write by hand: bench/plain_server.py), all measured in this run with the same closed-loop
client.

    python -m bench.serving [--seconds 15] [--concurrency 32] [--runs 3]

The servers are started (and warmed up) first and stay up; then --runs runs of --seconds per side,
interleaved (batched, unbatched, plain, batched, ...), so that a drift of the machine (the test
suite, a thermal limit) falls on both sides alike. Only HTTP 200 answers count: requests/s is
successful answers per second and the latency percentiles are theirs; the other answers and the
transport errors are counted beside them (errors, and error_rate: their share of the requests).
Prints JSON: per side the median and spread (min, max) across runs of each figure, and the ratios
of the medians batched / unbatched and batched / plain.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
from mlpipeline.local.serve import sample_records
from mlpipeline.local.server import ModelServer, free_port, is_ready, stop_group

from bench.models import bentoml_home, trained_versions
from bench.stats import percentile, ratio, summarise

SIDES = {"batched": True, "unbatched": False}  # our model server, MLP_BATCHING on or off


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


async def closed_loop(
    url: str, records: list[dict[str, Any]], seconds: float, concurrency: int
) -> dict[str, float | None]:
    latencies: list[float] = []  # of the HTTP 200 answers only
    errors = 0  # any other status, and transport errors (refused, reset, timed out)
    deadline = time.monotonic() + seconds

    async def client(index: int) -> None:
        nonlocal errors
        async with httpx.AsyncClient(timeout=30) as http:
            i = index
            while time.monotonic() < deadline:
                started = time.monotonic()
                try:
                    response = await http.post(url, json={"records": [records[i % len(records)]]})
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append(time.monotonic() - started)
                else:
                    errors += 1
                i += concurrency

    started = time.monotonic()
    await asyncio.gather(*(client(i) for i in range(concurrency)))
    elapsed = time.monotonic() - started
    return {
        "ok": len(latencies),
        "errors": errors,
        "error_rate": round(errors / max(len(latencies) + errors, 1), 4),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": ms(percentile(latencies, 0.5)),
        "p99_ms": ms(percentile(latencies, 0.99)),
    }


@contextmanager
def plain_server(tag: str, log: Path) -> Iterator[str]:
    """bench/plain_server.py on a free port, ready; yields its /predict URL."""
    port = free_port()
    env = {**os.environ, "BENTOML_HOME": str(bentoml_home())}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.plain_server", "--tag", tag, "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 90
        while not is_ready(f"http://127.0.0.1:{port}"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the plain server did not start; see {log}")
            time.sleep(0.3)
        yield f"http://127.0.0.1:{port}/predict"
    finally:
        stop_group(process, signal.SIGTERM, 15)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--runs", type=int, default=3, help="per side, interleaved")
    args = parser.parse_args()
    version = trained_versions(1)[0]
    records = sample_records(version["ingest"], rows=30)
    runs: dict[str, list[dict[str, float | None]]] = {side: [] for side in [*SIDES, "plain"]}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as servers:
        urls = {}
        for side, batching in SIDES.items():
            server = ModelServer(
                tag=version["tag"],
                bentoml_home=bentoml_home(),
                port=free_port(),
                log=Path(tmp) / f"{side}.log",
                extra_env={"MLP_BATCHING": "1" if batching else "0"},
            ).start()
            servers.callback(server.stop)
            urls[side] = f"{server.url}/predict"
            server.wait_ready()
        urls["plain"] = servers.enter_context(plain_server(version["tag"], Path(tmp) / "plain.log"))
        for url in urls.values():
            asyncio.run(closed_loop(url, records, 2, args.concurrency))  # warm-up
        for _ in range(args.runs):
            for side, url in urls.items():
                runs[side].append(asyncio.run(closed_loop(url, records, args.seconds, args.concurrency)))
    batched, unbatched, plain = (summarise(runs[side]) for side in ("batched", "unbatched", "plain"))
    print(
        json.dumps(
            {
                "benchmark": "serving",
                "model": version["tag"],
                "concurrency": args.concurrency,
                "seconds": args.seconds,
                "runs_per_side": args.runs,
                "batched": batched,
                "unbatched": unbatched,
                "plain": plain,
                "ratio_of_medians": {
                    f"batched/{other}": {
                        "requests_per_s": ratio(batched["requests_per_s"], side["requests_per_s"]),
                        "p50": ratio(batched["p50_ms"], side["p50_ms"]),
                        "p99": ratio(batched["p99_ms"], side["p99_ms"]),
                    }
                    for other, side in (("unbatched", unbatched), ("plain", plain))
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

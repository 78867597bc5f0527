"""Serving a locally packaged model: start it, show one prediction, serve until interrupted."""

from __future__ import annotations

import json
import math
import signal
import threading
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from mlpipeline.local.server import ModelServer, free_port
from mlpipeline.steps import artifacts


def sample_records(ingest_out: str, rows: int = 2) -> list[dict[str, Any]]:
    """Records from the held-out split, label removed, missing values as null."""
    schema = artifacts.read_json(artifacts.join(ingest_out, "schema.json"))
    frame = artifacts.read_table(artifacts.join(ingest_out, "test.parquet")).head(rows)
    records = frame[list(schema["features"])].to_dict(orient="records")
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in records
    ]


def serve_until_interrupted(
    tag: str, bentoml_home: Path, ingest_out: str, port: int, log: Path, console: Console
) -> int:
    server = ModelServer(tag=tag, bentoml_home=bentoml_home, port=free_port(port), log=log)
    if server.port != port:
        console.print(f"[yellow]port {port} is busy; serving on {server.port}[/]")
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with console.status(f"starting the model server {tag}…"):
            server.start().wait_ready()
        body = {"records": sample_records(ingest_out)}
        answer = httpx.post(f"{server.url}/predict", json=body, timeout=30).json()
        console.print(f"[bold green]Serving {tag} at {server.url}[/]")
        console.print("request: " + json.dumps(body), soft_wrap=True)
        console.print("answer:  " + json.dumps(answer), soft_wrap=True)
        console.print(
            "try it:  curl -s -X POST "
            f"{server.url}/predict -H 'content-type: application/json' -d '{json.dumps(body)}'",
            soft_wrap=True,
        )
        console.print("[dim]Ctrl-C stops the server.[/]")
        while not stop.wait(0.5):
            if server.process is not None and server.process.poll() is not None:
                console.print(f"[red]the model server exited; see {log}[/]")
                return 1
        return 0
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)

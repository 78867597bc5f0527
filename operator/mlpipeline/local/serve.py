"""Serving locally packaged models: the first version directly, a newer one through a canary
rollout against the version already serving; then one sample prediction, and serve until
interrupted."""

from __future__ import annotations

import json
import math
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from mlpipeline.api.models import ServeSpec, ServingStatus
from mlpipeline.local.load import Load
from mlpipeline.local.rollout import LocalRollout, RolloutTick
from mlpipeline.local.server import ModelServer, free_port
from mlpipeline.protocol import model_of

SERVING_STATE = "serving-status.json"  # status.serving of the local executor


def sample_records(ingest_out: str, rows: int = 2) -> list[dict[str, Any]]:
    """Records from the held-out split, label removed, missing values as null."""
    from mlpipeline.steps import artifacts  # pandas: only when a sample is shown

    schema = artifacts.read_json(artifacts.join(ingest_out, "schema.json"))
    frame = artifacts.read_table(artifacts.join(ingest_out, "test.parquet")).head(rows)
    records = frame[list(schema["features"])].to_dict(orient="records")
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in records
    ]


def load_serving(root: Path) -> ServingStatus | None:
    path = root / SERVING_STATE
    return ServingStatus.model_validate_json(path.read_text()) if path.exists() else None


def save_serving(root: Path, status: ServingStatus) -> None:
    (root / SERVING_STATE).write_text(status.model_dump_json(by_alias=True, exclude_none=True, indent=2))


@contextmanager
def interruptible() -> Iterator[threading.Event]:
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def announce(url: str, tag: str, records: list[dict[str, Any]], console: Console) -> None:
    body = {"records": records}
    answer = httpx.post(f"{url}/predict", json=body, timeout=30).json()
    console.print(f"[bold green]Serving {tag} at {url}[/]")
    console.print("request: " + json.dumps(body), soft_wrap=True)
    console.print("answer:  " + json.dumps(answer), soft_wrap=True)
    console.print(
        f"try it:  curl -s -X POST {url}/predict -H 'content-type: application/json' -d '{json.dumps(body)}'",
        soft_wrap=True,
    )
    console.print("[dim]Ctrl-C stops the server.[/]")


RETRAINED = -1  # serving ended because a trigger retrained the model (mlpipeline run --watch)
Until = Callable[[str, str], bool]  # (the stable server's URL, its version): stop serving now?


def wait(stop: threading.Event, alive: Callable[[], bool], until: Callable[[], bool] | None = None) -> int:
    while not stop.wait(0.5):
        if not alive():
            return 1
        if until is not None and until():
            return RETRAINED
    return 0


def serve_until_interrupted(
    tag: str,
    bentoml_home: Path,
    ingest_out: str,
    port: int,
    log: Path,
    console: Console,
    env: dict[str, str] | None = None,
    until: Until | None = None,
) -> int:
    """``env``: the server's monitoring settings (MonitoringSpec.server_env); ``until``: asked
    while serving whether to stop (RETRAINED)."""
    server = ModelServer(
        tag=tag, bentoml_home=bentoml_home, port=free_port(port), log=log, extra_env=env or {}
    )
    if server.port != port:
        console.print(f"[yellow]port {port} is busy; serving on {server.port}[/]")
    with interruptible() as stop:
        try:
            with console.status(f"starting the model server {tag}…"):
                server.start().wait_ready()
            announce(server.url, tag, sample_records(ingest_out), console)
            version = tag.rsplit(":", 1)[-1]
            code = wait(
                stop,
                lambda: server.process is not None and server.process.poll() is None,
                (lambda: until(server.url, version)) if until else None,
            )
            if code > 0:
                console.print(f"[red]the model server exited; see {log}[/]")
            return code
        finally:
            server.stop()


def _report(console: Console) -> Callable[[RolloutTick], None]:
    def show(tick: RolloutTick) -> None:
        checks = ", ".join(
            f"{c.name}={'-' if c.value is None else format(c.value, '.3g')} {c.verdict}"
            for c in tick.status.checks
        )
        console.print(f"  canary {tick.weight:>3}%  {checks}  [dim]{tick.status.message}[/]", soft_wrap=True)

    return show


def rollout_then_serve(
    status: ServingStatus,
    candidate: str,
    spec: ServeSpec,
    bentoml_home: Path,
    ingest_out: str,
    port: int,
    directory: Path,
    load_rate: float,
    console: Console,
    env: dict[str, str] | None = None,
    until: Until | None = None,
    decided: Callable[[ServingStatus], None] | None = None,
) -> tuple[int, ServingStatus]:
    """Canary rollout of the tag ``candidate`` against the stable version in ``status``, then
    serving the winner; ``decided`` is told the outcome as soon as there is one. Returns (exit
    code, the serving status at the end)."""
    model = model_of(candidate)
    stable = f"{model}:{status.stable}"
    rollout = LocalRollout(
        stable,
        candidate,
        spec,
        bentoml_home,
        directory,
        free_port(port),
        report=_report(console),
        env=env or {},
    )
    with interruptible() as stop:
        try:
            with console.status(f"starting {stable} (stable), router and Prometheus…"):
                rollout.start()
            assert rollout.router is not None
            plan = spec.canary
            console.print(
                f"[bold]Canary rollout[/] of {candidate} against {stable} at {rollout.router.url}: steps "
                f"{plan.steps}% every {plan.interval}, checks every {plan.analysis.interval}",
                soft_wrap=True,
            )
            records = sample_records(ingest_out, rows=50)
            load = (
                Load(f"{rollout.router.url}/predict", records, rate=load_rate).start()
                if load_rate > 0
                else None
            )
            if load:
                console.print(
                    f"  sending {load_rate:g} requests/s of held-out records so the canary has traffic"
                )
            try:
                final = rollout.run(status, control=lambda: "abort" if stop.is_set() else None)
            finally:
                if load:
                    load.stop()
            if decided:
                decided(final)
            style = "green" if final.phase == "Promoted" else "red"
            console.print(f"[bold {style}]{final.phase}[/]: {final.message}", soft_wrap=True)
            if stop.is_set():
                return 130, final
            assert final.stable is not None
            announce(rollout.router.url, f"{model}:{final.stable}", records[:2], console)
            server, version = rollout.servers[final.stable], final.stable
            alive = lambda: server.process is not None and server.process.poll() is None  # noqa: E731
            return wait(stop, alive, (lambda: until(server.url, version)) if until else None), final
        finally:
            rollout.stop()

"""Serving locally packaged models behind a router on the serving port that stays up for the life of
the command: the first version, then each newer one through a canary rollout against the version
already serving; one sample prediction, and serve until interrupted (or --watch retrains)."""

from __future__ import annotations

import json
import math
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from mlpipeline.api.models import Baseline, ServeSpec, ServingStatus
from mlpipeline.local.load import Load
from mlpipeline.local.rollout import LocalRollout, RolloutTick
from mlpipeline.local.server import free_port
from mlpipeline.protocol import SYNTHETIC_HEADER, model_of, version_of

SERVING_STATE = "serving-status.json"  # status.serving of the local executor
SYNTHETIC = {SYNTHETIC_HEADER: "1"}  # on the requests mlpipeline sends itself: never captured


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
def interruptible(stop: threading.Event) -> Iterator[threading.Event]:
    """SIGINT and SIGTERM set ``stop`` instead of raising, until the block ends."""
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def announce(url: str, tag: str, records: list[dict[str, Any]], console: Console) -> None:
    body = {"records": records}
    answer = httpx.post(f"{url}/predict", json=body, headers=SYNTHETIC, timeout=30).json()
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


def _report(console: Console) -> Callable[[RolloutTick], None]:
    def show(tick: RolloutTick) -> None:
        checks = ", ".join(
            f"{c.name}={'-' if c.value is None else format(c.value, '.3g')} {c.verdict}"
            for c in tick.status.checks
        )
        console.print(f"  canary {tick.weight:>3}%  {checks}  [dim]{tick.status.message}[/]", soft_wrap=True)

    return show


@dataclass
class LocalServing:
    """What answers on the serving port for the life of one `mlpipeline run`: the weighted router,
    started with the first version and never restarted, and the model servers behind it. A new
    version is rolled out in place, as a canary: the stable version serves while the canary's
    server starts, then the router's backends and weights change. So the port answers every
    request, also while --watch retrains and rolls out. From the first version on, SIGINT and
    SIGTERM set ``stop`` (a rollout then aborts, serving ends)."""

    spec: ServeSpec
    bentoml_home: Path
    directory: Path
    port: int
    console: Console
    load_rate: float = 0.0  # requests/s of held-out records during a canary (0: only your traffic)
    env: dict[str, str] = field(default_factory=dict)  # every model server's (spec.monitoring's)
    stop: threading.Event = field(default_factory=threading.Event)
    rollout: LocalRollout | None = None  # the router and servers, once the first version serves
    _exit: ExitStack = field(default_factory=ExitStack, repr=False)

    @property
    def url(self) -> str:
        assert self.rollout is not None and self.rollout.router is not None
        return self.rollout.router.url

    def serve(self, tag: str) -> None:
        """``tag`` answering on the port; the router and its first server start on the first call."""
        if self.rollout is not None:
            self.rollout.settle(version_of(tag))
            return
        port = free_port(self.port)
        if port != self.port:
            self.console.print(f"[yellow]port {self.port} is busy; serving on {port}[/]")
        self.rollout = LocalRollout(
            tag,
            tag,
            self.spec,
            self.bentoml_home,
            self.directory,
            port,
            report=_report(self.console),
            env=self.env,
        )
        self._exit.enter_context(interruptible(self.stop))
        self._exit.callback(self.rollout.stop)
        with self.console.status(f"starting the model server {tag} and the router…"):
            self.rollout.start()

    def roll_out(
        self, status: ServingStatus, candidate: str, ingest_out: str, baseline: Baseline | None = None
    ) -> ServingStatus | None:
        """Canary rollout of the tag ``candidate`` against the stable version in ``status`` (which
        starts serving first in a new command); the winner then serves. None when the rollout could
        not go on (a server or Prometheus did not start): the stable version keeps serving alone.
        ``baseline``: what evaluate measured of the candidate beside the stable version."""
        assert status.stable is not None
        stable = f"{model_of(candidate)}:{status.stable}"
        if self.rollout is None:
            self.serve(stable)
        assert self.rollout is not None
        self.rollout.canary_tag, self.rollout.baseline = candidate, baseline
        plan = self.spec.canary
        self.console.print(
            f"[bold]Canary rollout[/] of {candidate} against {stable} at {self.url}: steps "
            f"{plan.steps}% every {plan.interval}, checks every {plan.analysis.interval}",
            soft_wrap=True,
        )
        load = None
        if self.load_rate > 0:
            records = sample_records(ingest_out, rows=50)
            load = Load(f"{self.url}/predict", records, rate=self.load_rate, headers=SYNTHETIC).start()
            self.console.print(
                f"  sending {self.load_rate:g} requests/s of held-out records so the canary has traffic"
            )
        try:
            final = self.rollout.run(status, control=lambda: "abort" if self.stop.is_set() else None)
        except (RuntimeError, TimeoutError) as exc:
            self.console.print(f"[red]the rollout of {candidate} could not go on: {exc}[/]", soft_wrap=True)
            self.rollout.settle(status.stable)
            self.console.print(f"[yellow]{stable} keeps serving[/]")
            return None
        finally:
            if load:
                load.stop()
        style = "green" if final.phase == "Promoted" else "red"
        self.console.print(f"[bold {style}]{final.phase}[/]: {final.message}", soft_wrap=True)
        return final

    def announce(self, ingest_out: str) -> None:
        assert self.rollout is not None
        announce(self.url, self.rollout.stable_tag, sample_records(ingest_out), self.console)

    def wait(self, until: Until | None = None) -> int:
        """Serves until interrupted (0), the stable server exits (1) or ``until`` says a trigger
        retrained the model (RETRAINED); the router keeps serving in every case until ``close``."""
        assert self.rollout is not None
        version = version_of(self.rollout.stable_tag)
        server = self.rollout.servers[version]
        code = wait(
            self.stop,
            lambda: server.process is not None and server.process.poll() is None,
            (lambda: until(server.url, version)) if until else None,
        )
        if code > 0:
            self.console.print(f"[red]the model server exited; see {server.log}[/]")
        return code

    def close(self) -> None:
        """Stops the router, the servers and Prometheus, and gives the signals back."""
        self._exit.close()

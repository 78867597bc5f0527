"""A canary rollout with real processes: the stable and the canary BentoML servers, the weighted
router in front of them, Prometheus scraping both, and the same engine that decides in a cluster."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlpipeline.api.models import CanarySpec, parse_duration
from mlpipeline.engine import canary
from mlpipeline.local.prometheus import LocalPrometheus
from mlpipeline.local.router import Router
from mlpipeline.local.server import ModelServer, free_port
from mlpipeline.monitoring.analysis import analyse
from mlpipeline.monitoring.prometheus import Prometheus


def version_of(tag: str) -> str:
    return tag.split(":", 1)[1]


@dataclass
class RolloutTick:
    at: float
    weight: int
    state: dict[str, Any]


@dataclass
class LocalRollout:
    """Serves ``stable`` behind a router on ``port`` and rolls ``canary`` out to it."""

    stable_tag: str
    canary_tag: str
    spec: CanarySpec
    bentoml_home: Path
    directory: Path
    port: int
    canary_env: dict[str, str] = field(default_factory=dict)
    report: Callable[[RolloutTick], None] | None = None
    servers: dict[str, ModelServer] = field(default_factory=dict)
    router: Router | None = None
    prometheus: LocalPrometheus | None = None
    ticks: list[RolloutTick] = field(default_factory=list)

    def _server(self, tag: str, env: dict[str, str] | None = None) -> ModelServer:
        return ModelServer(
            tag=tag,
            bentoml_home=self.bentoml_home,
            port=free_port(),
            log=self.directory / f"serve-{version_of(tag)}.log",
            extra_env=env or {},
        ).start()

    def start(self) -> LocalRollout:
        self.directory.mkdir(parents=True, exist_ok=True)
        stable = self._server(self.stable_tag)
        candidate = self._server(self.canary_tag, self.canary_env)
        self.servers = {self.stable_tag: stable, self.canary_tag: candidate}
        for server in self.servers.values():
            server.wait_ready()
        self.prometheus = LocalPrometheus(self.directory / "prometheus").start(
            {version_of(t): f"127.0.0.1:{s.port}" for t, s in self.servers.items()}
        )
        self.router = Router(stable=stable.url, port=self.port).start()
        return self

    def run(self, control: Callable[[], str | None] = lambda: None) -> dict[str, Any]:
        """Runs the analysis loop until the canary is promoted or rolled back; returns the state."""
        assert self.router is not None and self.prometheus is not None
        prometheus = Prometheus(self.prometheus.url)
        state = canary.start(self.stable_tag, self.canary_tag, self.spec, datetime.now(UTC))
        self.router.route(
            self.servers[self.stable_tag].url, self.servers[self.canary_tag].url, state["canaryWeight"]
        )
        every = parse_duration(self.spec.analysis.interval)
        while True:
            time.sleep(every)
            checks = analyse(
                prometheus, self.spec.analysis, version_of(self.canary_tag), version_of(self.stable_tag)
            )
            decision = canary.decide(state, self.spec, checks, datetime.now(UTC), control())
            state = decision.state
            winner = self.canary_tag if decision.outcome == "promoted" else self.stable_tag
            if decision.outcome:
                self.router.route(self.servers[winner].url, None, 0)
            else:
                self.router.route(
                    self.servers[self.stable_tag].url, self.servers[self.canary_tag].url, decision.weight
                )
            tick = RolloutTick(time.monotonic(), decision.weight, state)
            self.ticks.append(tick)
            if self.report:
                self.report(tick)
            if decision.outcome:
                loser = self.stable_tag if winner == self.canary_tag else self.canary_tag
                self.servers.pop(loser).stop()
                assert self.prometheus is not None
                self.prometheus.set_targets({version_of(winner): f"127.0.0.1:{self.servers[winner].port}"})
                return state

    def stop(self) -> None:
        if self.router:
            self.router.stop()
        for server in self.servers.values():
            server.stop()
        if self.prometheus:
            self.prometheus.stop()

"""A canary rollout with real processes, decided by the same serving engine as in a cluster: the
engine's plan is applied as BentoML servers (one per version), the weighted router in front of them
and Prometheus scraping them. One LocalRollout can serve for the life of a command and roll out one
version after another (a new ``canary_tag``, then ``run``): its router is never restarted, so the
port never refuses a connection."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from mlpipeline.api.models import Baseline, ServeSpec, ServingPhase, ServingStatus
from mlpipeline.engine import serving
from mlpipeline.engine.serving import CANARY, ROUTER, ServingPlan
from mlpipeline.local.prometheus import LocalPrometheus
from mlpipeline.local.router import Router
from mlpipeline.local.server import ModelServer, free_port
from mlpipeline.monitoring.analysis import analyse
from mlpipeline.monitoring.prometheus import Prometheus
from mlpipeline.protocol import model_of, version_of


@dataclass
class RolloutTick:
    at: float
    weight: int
    status: ServingStatus


@dataclass
class LocalRollout:
    """Serves ``stable_tag`` behind a router on ``port`` and rolls ``canary_tag`` out to it; the
    winner becomes ``stable_tag``. Prometheus starts with the first rollout (not to serve alone)."""

    stable_tag: str
    canary_tag: str
    spec: ServeSpec
    bentoml_home: Path
    directory: Path
    port: int
    canary_env: dict[str, str] = field(default_factory=dict)  # on top of env, for the canary only
    env: dict[str, str] = field(default_factory=dict)  # every server's
    baseline: Baseline | None = None  # what evaluate measured of the canary beside the stable version
    report: Callable[[RolloutTick], None] | None = None
    servers: dict[str, ModelServer] = field(default_factory=dict)  # by version
    router: Router | None = None
    prometheus: LocalPrometheus | None = None
    ticks: list[RolloutTick] = field(default_factory=list)

    @property
    def model(self) -> str:
        return model_of(self.stable_tag)

    def tag(self, version: str) -> str:
        return f"{self.model}:{version}"

    def _server(self, version: str) -> ModelServer:
        env = {**self.env, **(self.canary_env if version == version_of(self.canary_tag) else {})}
        server = ModelServer(
            tag=self.tag(version),
            bentoml_home=self.bentoml_home,
            port=free_port(),
            log=self.directory / f"serve-{version}.log",
            extra_env=env,
        ).start()
        try:
            server.wait_ready()
        except BaseException:
            server.stop()
            raise
        return server

    def start(self) -> LocalRollout:
        """The stable version serving behind the router."""
        self.directory.mkdir(parents=True, exist_ok=True)
        stable = version_of(self.stable_tag)
        self.servers = {stable: self._server(stable)}
        self.router = Router(stable=self.servers[stable].url, port=self.port).start()
        return self

    def settle(self, version: str) -> None:
        """All traffic to ``version`` (its server started first when it is not running), then the
        other servers stopped; e.g. after a rollout that could not go on."""
        assert self.router is not None
        if version not in self.servers:
            self.servers[version] = self._server(version)
        self.router.route(self.servers[version].url, None, 0)
        for other in [v for v in self.servers if v != version]:
            self.servers.pop(other).stop()
        self.stable_tag = self.tag(version)
        if self.prometheus:
            self.prometheus.set_targets(self._targets())

    def _targets(self) -> dict[str, str]:
        return {version: f"127.0.0.1:{server.port}" for version, server in self.servers.items()}

    def apply(self, plan: ServingPlan) -> None:
        """Makes what runs match the plan: new servers started, the router's weights set, then the
        servers of removed versions stopped (no request is sent to a stopped server)."""
        assert self.router is not None and self.prometheus is not None
        top = plan.topology
        if top is not None:
            for version in top.replicas:
                if version not in self.servers:
                    self.servers[version] = self._server(version)
            candidate = self.servers[top.canary].url if top.canary else None
            self.router.route(self.servers[top.stable].url, candidate, top.weight)
        for version in plan.remove:
            gone = self.servers.pop(version, None)
            if gone:
                gone.stop()
        if top is not None or plan.remove:
            self.prometheus.set_targets(self._targets())

    def run(
        self, status: ServingStatus | None = None, control: Callable[[], str | None] = lambda: None
    ) -> ServingStatus:
        """Decides and applies until the canary is promoted or rolled back; returns the status.
        Raises when a server or Prometheus cannot start (``settle`` then restores the stable one)."""
        if self.prometheus is None:
            self.prometheus = LocalPrometheus(self.directory / "prometheus").start(self._targets())
        prometheus = Prometheus(self.prometheus.url)
        status = status or ServingStatus(
            stable=version_of(self.stable_tag), phase=ServingPhase.stable, provider=ROUTER
        )
        candidate = version_of(self.canary_tag)
        while True:
            now = datetime.now(UTC)
            checks = None
            if serving.analysis_due(self.spec, status, now):
                assert status.canary is not None and status.stable is not None
                analysis = self.spec.canary.analysis
                checks = analyse(prometheus, analysis, status.canary, status.stable, baseline=self.baseline)
            plan = serving.decide(self.spec, status, candidate, ROUTER, control(), checks, now)
            self.apply(plan)
            status = plan.status
            if checks is not None or plan.phase != CANARY or plan.topology is not None:
                tick = RolloutTick(time.monotonic(), status.canary_weight, status)
                self.ticks.append(tick)
                if self.report:
                    self.report(tick)
            if plan.phase != CANARY:
                assert status.stable is not None
                self.stable_tag = self.tag(status.stable)
                return status
            time.sleep(min(max(plan.requeue_after or 0.5, 0.05), 0.5))

    def stop(self) -> None:
        if self.router:
            self.router.stop()
        for server in self.servers.values():
            server.stop()
        if self.prometheus:
            self.prometheus.stop()

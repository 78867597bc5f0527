"""The canary rollout's state machine: from the analysis of one tick, the time and the manual
controls, decide the canary's traffic weight, a promotion or a rollback. Pure, shared by the local
runner and the operator; the state lives in ``status.serving``."""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from mlpipeline.api.models import CanarySpec, parse_duration

Verdict = Literal["pass", "fail", "nodata"]
PAUSE, PROMOTE, ABORT = "pause", "promote", "abort"
CONTROL_ANNOTATION = "mlpipeline.dev/canary"  # value: pause | promote | abort


@dataclass(frozen=True)
class CheckResult:
    name: str
    query: str
    value: float | None
    threshold: float
    verdict: Verdict
    stable: float | None = None  # the same measure on the stable version, for comparison

    def describe(self) -> str:
        value = "no data" if self.value is None else f"{self.value:.4g}"
        return f"{self.name}={value} (threshold {self.threshold:g}): {self.verdict}"


@dataclass
class CanaryDecision:
    state: dict[str, Any]
    weight: int
    outcome: Literal["promoted", "rolledBack"] | None = None
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)


def _stamp(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def start(stable: str, canary: str, spec: CanarySpec, now: datetime) -> dict[str, Any]:
    return {
        "stable": stable,
        "canary": canary,
        "canaryWeight": spec.steps[0],
        "step": 0,
        "stepStartedAt": _stamp(now),
        "failures": 0,
        "phase": "Progressing",
        "checks": [],
        "message": f"canary {canary} at {spec.steps[0]}%",
    }


def _finish(
    state: dict[str, Any], outcome: Literal["promoted", "rolledBack"], message: str
) -> CanaryDecision:
    state["phase"] = "Promoted" if outcome == "promoted" else "RolledBack"
    state["message"] = message
    if outcome == "promoted":
        state["stable"], state["canary"], weight = state["canary"], None, 0
        event = ("Normal", "CanaryPromoted", message)
    else:
        weight = 0
        event = ("Warning", "CanaryRolledBack", message)
    state["canaryWeight"] = 0
    return CanaryDecision(state, weight, outcome, [event])


def decide(
    state: dict[str, Any],
    spec: CanarySpec,
    checks: list[CheckResult],
    now: datetime,
    control: str | None = None,
) -> CanaryDecision:
    """One analysis tick of a canary in progress."""
    new = copy.deepcopy(state)
    new["checks"] = [asdict(c) for c in checks]
    canary = new["canary"]
    if control == ABORT:
        return _finish(new, "rolledBack", f"canary {canary} aborted by the {CONTROL_ANNOTATION} annotation")
    if control == PROMOTE:
        return _finish(new, "promoted", f"canary {canary} promoted by the {CONTROL_ANNOTATION} annotation")
    if control == PAUSE:
        new["phase"] = "Paused"
        new["message"] = f"paused at {new['canaryWeight']}% by the {CONTROL_ANNOTATION} annotation"
        return CanaryDecision(new, new["canaryWeight"])
    new["phase"] = "Progressing"
    analysis = spec.analysis
    failed = [c for c in checks if c.verdict == "fail"]
    no_data = [c for c in checks if c.verdict == "nodata"]
    if no_data and not failed:
        if analysis.no_data == "fail":
            failed = no_data
        elif analysis.no_data == "hold":
            since = new.get("noDataSince") or _stamp(now)
            new["noDataSince"] = since
            waited = (now - _parse(since)).total_seconds()
            if waited >= parse_duration(analysis.no_data_deadline):
                return _finish(
                    new,
                    "rolledBack",
                    f"canary {canary} rolled back: no data for {waited:.0f}s "
                    f"(noData=hold, noDataDeadline={analysis.no_data_deadline}): "
                    + "; ".join(c.describe() for c in no_data),
                )
            new["message"] = f"holding at {new['canaryWeight']}%: no data for {waited:.0f}s"
            return CanaryDecision(new, new["canaryWeight"], events=[("Normal", "CanaryHeld", new["message"])])
    new.pop("noDataSince", None)
    if failed:
        new["failures"] = new.get("failures", 0) + 1
        detail = "; ".join(c.describe() for c in failed)
        if new["failures"] >= analysis.failure_threshold:
            return _finish(
                new,
                "rolledBack",
                f"canary {canary} rolled back after {new['failures']} failed analyses: {detail}",
            )
        new["message"] = f"analysis failed ({new['failures']}/{analysis.failure_threshold}): {detail}"
        return CanaryDecision(
            new, new["canaryWeight"], events=[("Warning", "CanaryCheckFailed", new["message"])]
        )
    new["failures"] = 0
    step_age = (now - _parse(new["stepStartedAt"])).total_seconds()
    if step_age < parse_duration(spec.interval):
        new["message"] = f"canary {canary} at {new['canaryWeight']}%: checks pass"
        return CanaryDecision(new, new["canaryWeight"])
    if new["step"] + 1 >= len(spec.steps):
        return _finish(new, "promoted", f"canary {canary} promoted after passing every step ({spec.steps})")
    new["step"] += 1
    new["canaryWeight"] = spec.steps[new["step"]]
    new["stepStartedAt"] = _stamp(now)
    new["message"] = f"canary {canary} advanced to {new['canaryWeight']}%"
    return CanaryDecision(new, new["canaryWeight"], events=[("Normal", "CanaryAdvanced", new["message"])])

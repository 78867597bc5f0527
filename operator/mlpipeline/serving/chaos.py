"""Fault injection for rehearsing rollbacks (game days, the canary tests and benchmark): a model
server started with MLP_CHAOS_FILE reads faults from that JSON file, at most twice a second:
``{"errorRate": 0.1, "latencyMs": 300, "shift": true}``. Without the variable nothing is injected."""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass
from typing import Any


class InjectedFault(RuntimeError):
    """Raised on purpose: BentoML answers HTTP 500 and counts it like any server error."""


@dataclass
class Chaos:
    path: str | None = os.environ.get("MLP_CHAOS_FILE")
    checked: float = 0.0
    faults: dict[str, Any] | None = None

    def current(self) -> dict[str, Any]:
        if not self.path:
            return {}
        now = time.monotonic()
        if self.faults is None or now - self.checked > 0.5:
            self.checked = now
            try:
                with open(self.path) as handle:
                    self.faults = json.load(handle)
            except (OSError, ValueError):
                self.faults = {}
        return self.faults or {}

    def before(self) -> None:
        faults = self.current()
        if faults.get("latencyMs"):
            time.sleep(float(faults["latencyMs"]) / 1000)
        if random.random() < float(faults.get("errorRate", 0)):
            raise InjectedFault("injected fault (MLP_CHAOS_FILE)")

    def after(self, answers: list[dict[str, Any]], classes: list[Any]) -> list[dict[str, Any]]:
        """With ``shift``, every classification answer becomes the first class."""
        if not self.current().get("shift") or not classes:
            return answers
        return [{**a, "label": classes[0]} if "label" in a else a for a in answers]

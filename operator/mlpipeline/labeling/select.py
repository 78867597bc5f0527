"""Which records of a round the model labels itself, which go to people, and which automatic labels
people audit. Pure: the predicted probabilities and spec.labeling in, the picks out."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import numpy as np

from mlpipeline.api.models import LabelingSpec, Uncertainty

AUTO, HUMAN, AUDIT = "auto", "human", "audit"


@dataclass(frozen=True)
class Pick:
    row: int
    label: str  # the model's prediction
    confidence: float  # its probability


@dataclass
class Selection:
    auto: list[Pick] = field(default_factory=list)  # labeled by the model
    human: list[Pick] = field(default_factory=list)  # the most uncertain, for people
    audit: list[Pick] = field(default_factory=list)  # a sample of ``auto`` people label too
    capped: int = 0  # confident records left unlabeled by the class cap

    def counts(self) -> dict[str, int]:
        return {"autoLabeled": len(self.auto), "sentToPeople": len(self.human), "audited": len(self.audit)}


def uncertainty(probabilities: np.ndarray, measure: Uncertainty) -> np.ndarray:
    """Higher is less sure: one minus the margin between the two likeliest classes, or the entropy."""
    if measure == Uncertainty.entropy:
        p = np.clip(probabilities, 1e-12, 1.0)
        return np.asarray(-(p * np.log(p)).sum(axis=1))
    top = np.sort(probabilities, axis=1)[:, ::-1]
    second = top[:, 1] if top.shape[1] > 1 else np.zeros(len(top))
    return np.asarray(1.0 - (top[:, 0] - second))


def class_caps(counts: dict[str, int], share: float) -> dict[str, int]:
    """How many automatic labels each class keeps so that none holds more than ``share`` of them."""
    keep = dict(counts)
    if share >= 1:
        return keep
    while True:
        limit = math.floor(share * sum(keep.values()))
        over = [c for c, k in keep.items() if k > limit]
        if not over:
            return keep
        for c in over:
            keep[c] = limit


def select(probabilities: np.ndarray, classes: list[str], spec: LabelingSpec, seed: int = 0) -> Selection:
    """``probabilities``: one row per record, one column per class of ``classes``."""
    if len(probabilities) == 0:
        return Selection()
    best = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    picks = [Pick(i, str(classes[best[i]]), float(confidence[i])) for i in range(len(probabilities))]
    confident = [p for p in picks if p.confidence >= spec.min_confidence]
    by_class: dict[str, list[Pick]] = {}
    for pick in sorted(confident, key=lambda p: (-p.confidence, p.row)):
        by_class.setdefault(pick.label, []).append(pick)
    caps = class_caps({c: len(v) for c, v in by_class.items()}, spec.max_class_share)
    auto = sorted((p for c, v in by_class.items() for p in v[: caps[c]]), key=lambda p: p.row)
    unsure = uncertainty(probabilities, spec.uncertainty)
    rest = [p for p in picks if p.confidence < spec.min_confidence]
    human = sorted(rest, key=lambda p: (-unsure[p.row], p.row))[: spec.budget]
    audit_size = math.ceil(spec.audit.fraction * len(auto)) if auto else 0
    audit = sorted(random.Random(seed).sample(auto, audit_size), key=lambda p: p.row)
    return Selection(auto, sorted(human, key=lambda p: p.row), audit, len(confident) - len(auto))

"""Which records of a round the model labels itself, which go to people, and which automatic labels
people audit. Pure: the predicted probabilities (and the records in the model's feature space) and
spec.labeling in, the picks out."""

from __future__ import annotations

import math
import random
import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning

from mlpipeline.api.models import LabelingSpec, PeopleSelection, Uncertainty

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


MAX_CLUSTERED = 20_000  # records clustered at most (a seeded sample of larger rounds): seconds, not minutes
WEIGHT_FLOOR = 1e-3  # a record the model is sure of still pulls a little: dense regions are not ignored


def diverse(space: np.ndarray, unsure: np.ndarray, count: int, seed: int) -> list[int]:
    """``count`` rows of ``space`` spread over the data and drawn to the uncertain: k-means with
    ``count`` clusters, each record weighted by its uncertainty, and the record nearest each centre
    (the diverse mini-batch of Zhdanov, 2019, over the whole round rather than its most uncertain)."""
    if count <= 0:
        return []
    if count >= len(space):
        return list(range(len(space)))
    rows = np.arange(len(space))
    if len(rows) > MAX_CLUSTERED:
        rows = np.sort(np.random.default_rng(seed).choice(len(space), MAX_CLUSTERED, replace=False))
    points = np.asarray(space[rows], dtype=float)
    weights = unsure[rows] + WEIGHT_FLOOR
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # fewer distinct records than clusters
        fitted = KMeans(n_clusters=count, n_init=1, random_state=seed).fit(points, sample_weight=weights)
    chosen: list[int] = []
    for cluster, centre in enumerate(fitted.cluster_centers_):
        members = np.flatnonzero(fitted.labels_ == cluster)
        if len(members):
            nearest = members[((points[members] - centre) ** 2).sum(axis=1).argmin()]
            chosen.append(int(rows[nearest]))
    chosen = list(dict.fromkeys(chosen))  # identical records make identical centres
    if len(chosen) < count:
        taken = set(chosen)
        rest = [int(r) for r in np.argsort(-unsure, kind="stable") if int(r) not in taken]
        chosen += rest[: count - len(chosen)]
    return chosen


def for_people(
    probabilities: np.ndarray, spec: LabelingSpec, space: np.ndarray | None, seed: int
) -> list[int]:
    """The rows people label: spec.labeling.selection's ``budget`` records."""
    unsure = uncertainty(probabilities, spec.uncertainty)
    if spec.selection == PeopleSelection.diverse:
        return diverse(probabilities if space is None else space, unsure, spec.budget, seed)
    unconfident = np.flatnonzero(probabilities.max(axis=1) < spec.min_confidence)
    return [int(r) for r in unconfident[np.argsort(-unsure[unconfident], kind="stable")][: spec.budget]]


def select(
    probabilities: np.ndarray,
    classes: list[str],
    spec: LabelingSpec,
    seed: int = 0,
    space: np.ndarray | None = None,
) -> Selection:
    """``probabilities``: one row per record, one column per class of ``classes``; ``space``: the
    same records as the model reads them (its preprocessed features), where diverse selection
    clusters them (without it, in the space of the predicted probabilities)."""
    if len(probabilities) == 0:
        return Selection()
    best = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    picks = [Pick(i, str(classes[best[i]]), float(confidence[i])) for i in range(len(probabilities))]
    human = sorted(for_people(probabilities, spec, space, seed))
    asked = set(human)
    confident = [p for p in picks if p.confidence >= spec.min_confidence and p.row not in asked]
    by_class: dict[str, list[Pick]] = {}
    for pick in sorted(confident, key=lambda p: (-p.confidence, p.row)):
        by_class.setdefault(pick.label, []).append(pick)
    caps = class_caps({c: len(v) for c, v in by_class.items()}, spec.max_class_share)
    auto = sorted((p for c, v in by_class.items() for p in v[: caps[c]]), key=lambda p: p.row)
    audit_size = math.ceil(spec.audit.fraction * len(auto)) if auto and spec.use_auto_labels else 0
    audit = sorted(random.Random(seed).sample(auto, audit_size), key=lambda p: p.row)
    return Selection(auto, [picks[r] for r in human], audit, len(confident) - len(auto))

"""The labeled partition of a round: people's labels override the model's, automatic labels are
kept unless the audit found them wrong too often (or spec.labeling.useAutoLabels is false), and
every row says where its label came from. Pure."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from mlpipeline.api.models import LabelingSpec
from mlpipeline.labeling.select import AUDIT, AUTO, HUMAN, Selection


@dataclass
class Merged:
    frame: pd.DataFrame  # the pool's features and the label column, one row per labeled record
    provenance: list[str]  # auto, human or audit, per row of ``frame``
    labeled_by_people: int
    audit_disagreement: float | None  # None: no audit task was answered
    auto_labels_used: bool
    reason: str | None = None  # why automatic labels were left out


def disagreement(selection: Selection, answers: dict[int, str]) -> float | None:
    answered = [p for p in selection.audit if p.row in answers]
    if not answered:
        return None
    return sum(answers[p.row] != p.label for p in answered) / len(answered)


def merge(
    pool: pd.DataFrame, selection: Selection, answers: dict[int, str], label: str, spec: LabelingSpec
) -> Merged:
    """``answers``: people's label per row of ``pool``."""
    measured = disagreement(selection, answers)
    reason = None
    if not spec.use_auto_labels:
        reason = "spec.labeling.useAutoLabels is false"
    elif measured is not None and measured > spec.audit.max_disagreement:
        reason = (
            f"people changed {measured:.0%} of the audited automatic labels "
            f"(above audit.maxDisagreement {spec.audit.max_disagreement:.0%})"
        )
    labels: dict[int, tuple[str, str]] = {}
    for pick in selection.auto:
        if pick.row in answers:
            labels[pick.row] = (answers[pick.row], AUDIT)
        elif reason is None:
            labels[pick.row] = (pick.label, AUTO)
    for pick in selection.human:
        if pick.row in answers:
            labels[pick.row] = (answers[pick.row], HUMAN)
    rows = sorted(labels)
    frame = pool.iloc[rows].copy() if rows else pool.iloc[:0].copy()
    frame[label] = [labels[r][0] for r in rows]
    human = sum(1 for r in rows if labels[r][1] != AUTO)
    return Merged(
        frame.reset_index(drop=True), [labels[r][1] for r in rows], human, measured, reason is None, reason
    )

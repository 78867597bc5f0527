"""Label Studio's task format, the one place that knows it: the labeling interface of a pipeline's
classes, tasks with the model's guess as a pre-annotation, and people's answers read back from
tasks (as the API lists them, or as a JSON export file)."""

from __future__ import annotations

import math
from typing import Any
from xml.sax.saxutils import quoteattr

from mlpipeline.labeling.select import AUDIT, HUMAN, Pick

FROM_NAME, TO_NAME = "label", "record"  # the Choices and the Text of the labeling interface


def label_config(classes: list[str]) -> str:
    choices = "".join(f"<Choice value={quoteattr(str(c))}/>" for c in classes)
    return (
        f'<View><Header value="Which class is this record?"/><Text name="{TO_NAME}" value="$text"/>'
        f'<Choices name="{FROM_NAME}" toName="{TO_NAME}" choice="single" showInline="true">{choices}'
        "</Choices></View>"
    )


def show(record: dict[str, Any]) -> str:
    """A record as the labeler reads it: one ``feature: value`` per line."""

    def value(v: Any) -> str:
        if isinstance(v, float):
            return "(missing)" if math.isnan(v) else f"{v:.4g}"
        return "(missing)" if v is None else str(v)

    return "\n".join(f"{k}: {value(v)}" for k, v in record.items())


def task(record: dict[str, Any], pick: Pick, kind: str, round_id: str, model: str) -> dict[str, Any]:
    """One task. People see the model's guess (version and probability) on uncertain records; audit
    tasks come without it, so that their answers measure the automatic labels unanchored."""
    out: dict[str, Any] = {
        "data": {"text": show(record), "mlp_row": pick.row, "mlp_round": round_id, "mlp_kind": kind}
    }
    if kind == HUMAN:
        out["predictions"] = [
            {
                "model_version": model,
                "score": round(pick.confidence, 4),
                "result": [choice(pick.label)],
            }
        ]
    return out


def choice(label: str) -> dict[str, Any]:
    return {"from_name": FROM_NAME, "to_name": TO_NAME, "type": "choices", "value": {"choices": [label]}}


def tasks(
    records: list[dict[str, Any]], human: list[Pick], audit: list[Pick], round_id: str, model: str
) -> list[dict[str, Any]]:
    return [task(records[p.row], p, HUMAN, round_id, model) for p in human] + [
        task(records[p.row], p, AUDIT, round_id, model) for p in audit
    ]


def answer(annotation: dict[str, Any]) -> str | None:
    if annotation.get("was_cancelled"):
        return None
    for item in annotation.get("result") or []:
        if item.get("from_name") == FROM_NAME and item.get("type") == "choices":
            chosen = (item.get("value") or {}).get("choices") or []
            if chosen:
                return str(chosen[0])
    return None


def answers(listed: list[dict[str, Any]], round_id: str) -> dict[int, str]:
    """People's label per row of the round, from tasks with their annotations (the latest answer
    counts; skipped tasks and cancelled annotations count as unanswered)."""
    out: dict[int, str] = {}
    for item in listed:
        data = item.get("data") or {}
        if data.get("mlp_round") != round_id:
            continue
        annotations = sorted(
            item.get("annotations") or [],
            key=lambda a: (str(a.get("updated_at") or ""), int(a.get("id") or 0)),
        )
        for annotation in annotations:
            label = answer(annotation)
            if label is not None:
                out[int(data["mlp_row"])] = label
    return out

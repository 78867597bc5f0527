"""The two steps of a labeling round.

``label``: the serving model predicts every record of the round's source files; the confident ones
get automatic labels, the most uncertain ones (and an audit sample) become Label Studio tasks.
``merge``: waits for people until every task is answered or the deadline passes, then writes the
labeled partition into spec.labeling.into, where the next run finds it, with each row's provenance
in the column ``mlp_provenance`` (auto, human, audit): the next run trains on the model's own labels
but never scores a model on them (steps/split.py).

Both are idempotent: a restarted pod finds the tasks it posted (by round) and the files it wrote.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from mlpipeline import store
from mlpipeline.api.models import DeadlinePolicy, LabelingSpec, MLPipelineSpec, parse_duration
from mlpipeline.labeling import tasks
from mlpipeline.labeling.desk import desk_for
from mlpipeline.labeling.merge import merge as merge_labels
from mlpipeline.labeling.select import Pick, Selection, select
from mlpipeline.protocol import is_pattern, parse_stamp
from mlpipeline.serving.validation import clean_records
from mlpipeline.steps import artifacts
from mlpipeline.steps.artifacts import StepError
from mlpipeline.steps.ingest import data_format, read_data
from mlpipeline.steps.split import PROVENANCE as PROVENANCE_COLUMN

POOL = "pool.parquet"  # the round's records, row = position
PROPOSAL = "proposal.json"  # what the model picked
PROVENANCE = "provenance.json"  # where each label of the partition came from


def labeling_of(spec: MLPipelineSpec) -> LabelingSpec:
    if spec.labeling is None:
        raise StepError("spec.labeling is not set")
    return spec.labeling


def read_source(uri: str, served: tuple[str, str] | None = None) -> pd.DataFrame:
    """One source file: CSV or Parquet, or JSON Lines whose objects are records or captures
    (``{"features": {...}, "at": ...}``, as the model servers write them); ``served``: only the
    captures made from and to these times (RFC 3339)."""
    if uri.lower().endswith((".jsonl", ".ndjson", ".json")):
        try:
            lines = [json.loads(line) for line in artifacts.read_bytes(uri).splitlines() if line.strip()]
        except ValueError as exc:
            raise StepError(f"{uri}: not JSON Lines: {exc}") from None
        if served:
            start, end = (parse_stamp(t) for t in served)
            lines = [line for line in lines if "at" in line and start <= parse_stamp(line["at"]) <= end]
        return pd.DataFrame.from_records([line.get("features", line) for line in lines])
    return read_data(uri, data_format(uri, None))


def expand(sources: list[str]) -> list[str]:
    """The files of the sources: a pattern (a drift round's capture hours) stands for the files it
    matches, none for an hour nothing was captured in."""
    files: list[str] = []
    for uri in sources:
        files += [p.uri for p in store.partitions(uri)] if is_pattern(uri) else [uri]
    return files


def read_pool(sources: list[str], features: list[str], served: tuple[str, str] | None = None) -> pd.DataFrame:
    files = expand(sources)
    frames = [frame for uri in files if not (frame := read_source(uri, served)).empty]
    if served and not frames:
        raise StepError(
            f"no served record was captured from {served[0]} to {served[1]} in {', '.join(sources)} "
            f"(spec.monitoring.capture.sampleRate)"
        )
    pool = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=features)
    missing = [f for f in features if f not in pool.columns]
    if missing:
        raise StepError(f"the unlabeled records lack the model's features: {', '.join(missing)}")
    return pool[features].reset_index(drop=True)


def _picks(items: list[Pick]) -> list[dict[str, Any]]:
    return [{"row": p.row, "label": p.label, "confidence": round(p.confidence, 6)} for p in items]


def _unpicks(items: list[dict[str, Any]]) -> list[Pick]:
    return [Pick(int(i["row"]), str(i["label"]), float(i["confidence"])) for i in items]


def propose(
    spec: MLPipelineSpec,
    pipeline: str,
    model_tag: str,
    model_uri: str | None,
    sources: list[str],
    round_id: str,
    out: str,
    served: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """``served``: a drift round's window (only the captures made from and to these times)."""
    from mlpipeline.serving.bundle import load_bundle

    labeling = labeling_of(spec)
    version, bundle = load_bundle(model_tag, model_uri)
    pool = read_pool(sources, list(bundle.features), served)
    records = pool.to_dict("records")
    rows = clean_records(bundle.features, records)
    answers = bundle.predict_rows(rows)
    classes = [str(c) for c in bundle.classes]
    probabilities = np.array([[a["probabilities"].get(c, 0.0) for c in classes] for a in answers])
    space = bundle.transform(rows) if rows else None  # where diverse selection spreads people's records
    selection = select(
        probabilities.reshape(len(records), len(classes)), classes, labeling, spec.data.seed, space
    )
    desk = desk_for(labeling, pipeline, out)
    desk.post(tasks.tasks(records, selection.human, selection.audit, round_id, version), classes, version)
    artifacts.write_table(artifacts.join(out, POOL), pool)
    proposal = {
        "round": round_id,
        "model": version,
        "classes": classes,
        "sources": sources,
        "auto": _picks(selection.auto),
        "human": _picks(selection.human),
        "audit": _picks(selection.audit),
        "capped": selection.capped,
        "project": desk.where,
    }
    artifacts.write_json(artifacts.join(out, PROPOSAL), proposal)
    counts = {"records": len(records), **selection.counts(), "project": desk.where}
    summary = (
        f"{len(records)} records: {len(selection.auto)} labeled by model {version}, "
        f"{len(selection.human)} sent to people, {len(selection.audit)} to audit ({desk.where})"
    )
    return {"summary": summary, "labeling": counts}


def merge(
    spec: MLPipelineSpec,
    pipeline: str,
    proposal_uri: str,
    out: str,
    started: str,
    poll: float = 5.0,
    now: Any = lambda: datetime.now(UTC),
) -> dict[str, Any]:
    labeling = labeling_of(spec)
    proposal = artifacts.read_json(artifacts.join(proposal_uri, PROPOSAL))
    selection = Selection(
        _unpicks(proposal["auto"]),
        _unpicks(proposal["human"]),
        _unpicks(proposal["audit"]),
        proposal["capped"],
    )
    wanted = {p.row for p in selection.human} | {p.row for p in selection.audit}
    deadline = parse_stamp(started).timestamp() + parse_duration(labeling.deadline)
    desk = desk_for(labeling, pipeline, proposal_uri)
    while True:
        classes = set(proposal["classes"])
        answers = {row: label for row, label in desk.collect(proposal["round"]).items() if label in classes}
        if wanted <= set(answers):
            late = False
            break
        if now().timestamp() >= deadline:
            late = True
            break
        time.sleep(poll)
    if late and labeling.on_deadline == DeadlinePolicy.discard:
        raise StepError(
            f"the deadline ({labeling.deadline}) passed with {len(wanted - set(answers))} of {len(wanted)} "
            "tasks unanswered; spec.labeling.onDeadline is discard: no partition written"
        )
    pool = artifacts.read_table(artifacts.join(proposal_uri, POOL))
    merged = merge_labels(pool, selection, answers, spec.data.label, labeling)
    partition = labeling.partition_name(started, proposal["round"])
    labeled = merged.frame.assign(**{PROVENANCE_COLUMN: merged.provenance})
    store.write_bytes(partition, labeled.to_csv(index=False).encode())
    artifacts.write_json(artifacts.join(out, PROVENANCE), {"partition": partition, "rows": merged.provenance})
    counts = {
        "labeledByPeople": merged.labeled_by_people,
        "auditDisagreement": merged.audit_disagreement,
        "autoLabelsUsed": merged.auto_labels_used,
        "partition": partition,
        "rows": len(merged.frame),
    }
    summary = f"{len(merged.frame)} labeled rows in {partition} ({merged.labeled_by_people} by people"
    summary += ")" if merged.reason is None else f"; automatic labels left out: {merged.reason})"
    if late:
        summary += f"; the deadline passed with {len(wanted - set(answers))} tasks unanswered"
    return {"summary": summary, "labeling": counts}

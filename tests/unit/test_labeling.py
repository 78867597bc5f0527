"""Automated labeling, the pure parts: which records the model labels and which go to people, the
class cap, the audit, how people's answers are read and merged, the round's life in the engine and
its Jobs, and the manifest rules."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlpipeline.api.manifest import ManifestError, parse_manifest
from mlpipeline.api.models import LabelingSpec, LabelingStatus, LabelRoundPhase, MLPipelineSpec
from mlpipeline.engine import labeling
from mlpipeline.engine.reconcile import JobObservation
from mlpipeline.engine.triggers import PENDING_SHOWN, DriftLabels, Listing
from mlpipeline.kube.jobs import OperatorSettings, build_labeling_job
from mlpipeline.labeling import tasks
from mlpipeline.labeling.merge import merge
from mlpipeline.labeling.select import Pick, Selection, class_caps, select, uncertainty
from mlpipeline.protocol import stamp
from mlpipeline.steps.artifacts import StepError
from mlpipeline.steps.label import read_pool

from tests.conftest import example

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
CLASSES = ["no", "yes"]


def spec(**fields: Any) -> LabelingSpec:
    return LabelingSpec.model_validate(
        {"source": "s3://b/unlabeled/*.csv", "into": "s3://b/labeled", **fields}
    )


def probabilities(*yes: float) -> np.ndarray:
    return np.array([[1 - p, p] for p in yes])


def test_confident_records_are_labeled_by_the_model_and_the_least_sure_go_to_people() -> None:
    chosen = select(
        probabilities(0.99, 0.02, 0.5, 0.6, 0.97, 0.8),
        CLASSES,
        spec(budget=2, maxClassShare=1, selection="uncertain"),
    )
    assert [(p.row, p.label) for p in chosen.auto] == [(0, "yes"), (1, "no"), (4, "yes")]
    assert [p.row for p in chosen.human] == [2, 3]  # margins 0 and 0.2; row 5's is 0.6
    assert not {p.row for p in chosen.human} & {p.row for p in chosen.auto}


def test_the_budget_bounds_what_people_get_and_zero_sends_nothing() -> None:
    unsure = probabilities(*np.linspace(0.3, 0.7, 20))
    assert len(select(unsure, CLASSES, spec(budget=5)).human) == 5
    assert select(unsure, CLASSES, spec(budget=0)).human == []


def test_entropy_ranks_the_flattest_distribution_first() -> None:
    three = np.array([[0.5, 0.5, 0.0], [0.4, 0.3, 0.3], [0.9, 0.05, 0.05]])
    assert np.argsort(-uncertainty(three, "entropy"))[0] == 1  # type: ignore[arg-type]
    assert np.argsort(-uncertainty(three, "margin"))[0] == 0  # type: ignore[arg-type]
    chosen = select(three, ["a", "b", "c"], spec(budget=1, uncertainty="entropy", selection="uncertain"))
    assert [p.row for p in chosen.human] == [1]


def test_a_confident_majority_class_is_capped_keeping_its_most_confident_records() -> None:
    yes = [0.999 - i * 0.001 for i in range(30)]  # 30 confident "yes"
    no = [0.01] * 5  # 5 confident "no"
    chosen = select(probabilities(*yes, *no), CLASSES, spec(maxClassShare=0.8, budget=0))
    labels = [p.label for p in chosen.auto]
    assert labels.count("no") == 5 and labels.count("yes") == 20  # 20 / 25 = 0.8
    kept_yes = [p.confidence for p in chosen.auto if p.label == "yes"]
    assert min(kept_yes) > max(p.confidence for p in chosen.auto if p.label == "yes") - 0.02
    assert chosen.capped == 10


def test_class_caps_hold_the_share_and_a_lone_confident_class_gets_nothing() -> None:
    caps = class_caps({"a": 100, "b": 10}, 0.8)
    assert caps["a"] / sum(caps.values()) <= 0.8 and caps["b"] == 10
    assert class_caps({"a": 50}, 0.9) == {"a": 0}
    assert class_caps({"a": 50, "b": 1}, 1.0) == {"a": 50, "b": 1}


def test_the_audit_samples_the_automatic_labels_reproducibly() -> None:
    confident = probabilities(*([0.99] * 20 + [0.01] * 20))
    first = select(confident, CLASSES, spec(audit={"fraction": 0.1}, maxClassShare=1, budget=0), seed=3)
    again = select(confident, CLASSES, spec(audit={"fraction": 0.1}, maxClassShare=1, budget=0), seed=3)
    assert len(first.audit) == 4 and first.audit == again.audit
    assert {p.row for p in first.audit} <= {p.row for p in first.auto}
    assert select(confident, CLASSES, spec(audit={"fraction": 0})).audit == []


def test_people_get_records_spread_over_the_data_not_a_clump_of_one_confusion() -> None:
    rng = np.random.default_rng(0)
    clump = rng.normal([0.0, 0.0], 0.01, size=(50, 2))  # 50 near-copies the model is least sure of
    elsewhere = rng.normal([5.0, 5.0], 0.5, size=(10, 2))  # 10 it is a little surer of, far away
    confident = rng.normal([-5.0, 5.0], 0.5, size=(40, 2))
    space = np.vstack([clump, elsewhere, confident])
    yes = [0.5] * 50 + [0.65] * 10 + [0.999] * 40
    by_uncertainty = select(probabilities(*yes), CLASSES, spec(budget=3, selection="uncertain"), 0, space)
    assert all(p.row < 50 for p in by_uncertainty.human)
    diverse = select(probabilities(*yes), CLASSES, spec(budget=3), 0, space)
    regions = [p.row // 50 + (p.row >= 60) for p in diverse.human]  # 0 clump, 1 elsewhere, 2 confident
    assert sorted(regions) == [0, 1, 2]
    more = select(probabilities(*yes), CLASSES, spec(budget=6, maxClassShare=1), 0, space)
    assert sum(p.row < 50 for p in more.human) == 1  # one record of the clump is enough
    assert sum(p.row >= 60 for p in more.human) == 1  # the confident region pulls little
    asked = {p.row for p in more.human}
    assert {p.row for p in more.auto} == set(range(60, 100)) - asked  # people's are not auto-labeled
    assert select(probabilities(*yes), CLASSES, spec(budget=6, maxClassShare=1), 0, space) == more


def test_diverse_selection_favours_uncertain_records_and_sends_everything_within_the_budget() -> None:
    rng = np.random.default_rng(1)
    space = rng.normal(size=(400, 3))
    yes = 1 / (1 + np.exp(-3 * space[:, 0]))  # the model is unsure near the plane x = 0
    chosen = select(probabilities(*yes), CLASSES, spec(budget=20), 0, space)
    picked = [abs(space[p.row, 0]) for p in chosen.human]
    assert len(picked) == 20 and np.mean(picked) < 0.5 * np.mean(np.abs(space[:, 0]))
    everything = select(probabilities(*yes[:15]), CLASSES, spec(budget=20), 0, space[:15])
    assert [p.row for p in everything.human] == list(range(15)) and everything.auto == []


def test_no_audit_is_asked_for_when_automatic_labels_are_not_used() -> None:
    confident = probabilities(*([0.99] * 20 + [0.01] * 20))
    chosen = select(confident, CLASSES, spec(useAutoLabels=False, budget=0, maxClassShare=1))
    assert chosen.audit == [] and len(chosen.auto) == 40


def pool(n: int) -> pd.DataFrame:
    return pd.DataFrame({"load": np.arange(n, dtype=float), "temperature": np.zeros(n)})


SELECTION = Selection(
    auto=[Pick(0, "yes", 0.99), Pick(1, "no", 0.98), Pick(2, "yes", 0.97)],
    human=[Pick(3, "no", 0.55), Pick(4, "yes", 0.5)],
    audit=[Pick(2, "yes", 0.97)],
)


def test_people_override_the_model_and_every_row_says_where_its_label_came_from() -> None:
    merged = merge(pool(5), SELECTION, {2: "no", 3: "yes"}, "failed", spec(audit={"maxDisagreement": 1}))
    assert merged.frame["load"].tolist() == [0, 1, 2, 3]  # row 4 was not answered: left out
    assert merged.frame["failed"].tolist() == ["yes", "no", "no", "yes"]
    assert merged.provenance == ["auto", "auto", "audit", "human"]
    assert merged.labeled_by_people == 2 and merged.audit_disagreement == 1.0 and merged.auto_labels_used


def test_by_default_one_automatic_label_people_changed_in_a_small_audit_drops_the_rest() -> None:
    auto = [Pick(i, "yes", 0.99) for i in range(40)]
    audited = Selection(auto=auto, human=[], audit=auto[:10])
    agreed = merge(pool(40), audited, {i: "yes" for i in range(10)}, "failed", spec())
    assert agreed.auto_labels_used and agreed.provenance.count("auto") == 30
    one_changed = merge(pool(40), audited, {0: "no", **{i: "yes" for i in range(1, 10)}}, "failed", spec())
    assert not one_changed.auto_labels_used and one_changed.provenance == ["audit"] * 10
    assert one_changed.frame["failed"].tolist()[0] == "no" and "10%" in (one_changed.reason or "")


def test_too_much_audit_disagreement_leaves_the_automatic_labels_out() -> None:
    merged = merge(pool(5), SELECTION, {2: "no", 3: "yes"}, "failed", spec(audit={"maxDisagreement": 0.5}))
    assert merged.frame["load"].tolist() == [2, 3] and merged.provenance == ["audit", "human"]
    assert not merged.auto_labels_used and merged.reason and "100%" in merged.reason


def test_automatic_labels_can_be_excluded_by_the_spec() -> None:
    merged = merge(pool(5), SELECTION, {2: "yes", 4: "no"}, "failed", spec(useAutoLabels=False))
    assert merged.provenance == ["audit", "human"] and merged.audit_disagreement == 0.0


def test_answers_are_read_from_label_studio_tasks_skipping_cancelled_and_other_rounds() -> None:
    def annotated(
        row: int, label: str, round_id: str = "r1", cancelled: bool = False, at: str = "1"
    ) -> dict[str, Any]:
        result = [tasks.choice(label)] if label else []
        return {
            "data": {"mlp_row": row, "mlp_round": round_id},
            "annotations": [{"id": 1, "updated_at": at, "was_cancelled": cancelled, "result": result}],
        }

    relabeled = annotated(2, "no", at="2026-01-01")
    relabeled["annotations"].append({"id": 2, "updated_at": "2026-01-02", "result": [tasks.choice("yes")]})
    listed = [annotated(0, "yes"), annotated(1, "no", cancelled=True), annotated(5, "yes", "r0"), relabeled]
    assert tasks.answers([*listed, {"data": {"mlp_row": 3, "mlp_round": "r1"}}], "r1") == {0: "yes", 2: "yes"}


def test_tasks_carry_the_guess_for_people_but_not_for_the_audit() -> None:
    records = [{"load": 0.5, "temperature": float("nan")}, {"load": 2.0, "temperature": 1.0}]
    made = tasks.tasks(records, [Pick(0, "no", 0.55)], [Pick(1, "yes", 0.99)], "r1", "v7")
    assert made[0]["data"]["text"] == "load: 0.5\ntemperature: (missing)"
    assert made[0]["predictions"][0] == {"model_version": "v7", "score": 0.55, "result": [tasks.choice("no")]}
    assert "predictions" not in made[1] and made[1]["data"]["mlp_kind"] == "audit"
    assert '<Choice value="a &amp; b"/>' in tasks.label_config(["a & b"])


def listing(*names: str, age: float = 120) -> Listing:
    return Listing([(n, T0.timestamp() - age) for n in names])


def test_a_round_starts_on_settled_source_files_once_a_model_serves() -> None:
    waiting = labeling.decide(spec(), None, None, listing("s3://b/unlabeled/1.csv"), {}, T0)
    assert (
        not waiting.create and waiting.status and "wait for a serving model" in (waiting.status.message or "")
    )
    settling = labeling.decide(spec(), None, "v1", listing("s3://b/unlabeled/1.csv", age=5), {}, T0)
    assert (
        not settling.create and settling.status and settling.status.message == "new source files are settling"
    )
    plan = labeling.decide(
        spec(), None, "v1", listing("s3://b/unlabeled/1.csv", "s3://b/unlabeled/2.csv"), {}, T0
    )
    assert plan.create == ["label"] and plan.status and plan.status.round
    started = plan.status.round
    assert started.sources == ["s3://b/unlabeled/1.csv", "s3://b/unlabeled/2.csv"] and started.model == "v1"
    assert started.deadline == "2026-11-26T12:00:00Z" and plan.status.processed == "s3://b/unlabeled/2.csv"
    assert started.id == labeling.round_id(started.sources, "v1")


def test_a_round_moves_from_proposing_to_people_to_merged_and_no_file_is_labeled_twice() -> None:
    first = labeling.decide(spec(), None, "v1", listing("s3://b/unlabeled/1.csv"), {}, T0).status
    assert first and first.round
    rid = first.round.id
    job = JobObservation("x", rid, active=1)
    assert labeling.decide(spec(), first, "v1", None, {"label": job}, T0).create == []
    reported = {
        "labeling": {
            "records": 100,
            "autoLabeled": 60,
            "sentToPeople": 20,
            "audited": 3,
            "project": "http://ls/projects/4",
        }
    }
    done = JobObservation("x", rid, succeeded=1, complete=True, result=reported)
    waiting = labeling.decide(spec(), first, "v1", None, {"label": done}, T0)
    assert waiting.create == ["merge"] and waiting.status and waiting.status.round
    assert waiting.status.round.phase == LabelRoundPhase.awaiting and waiting.status.round.auto_labeled == 60
    assert (
        waiting.events[0].reason == "LabelsRequested" and "http://ls/projects/4" in waiting.events[0].message
    )
    merged_result = {"labeling": {"labeledByPeople": 23, "partition": "s3://b/labeled/x.csv", "rows": 83}}
    merged = labeling.decide(
        spec(),
        waiting.status,
        "v1",
        None,
        {"merge": JobObservation("m", rid, complete=True, result=merged_result)},
        T0,
    )
    assert merged.status and merged.status.round and merged.status.round.phase == LabelRoundPhase.merged
    assert merged.status.round.rows == 83 and merged.events[0].reason == "LabelsMerged"
    again = labeling.decide(
        spec(), merged.status, "v2", listing("s3://b/unlabeled/1.csv"), {}, T0 + timedelta(hours=1)
    )
    assert again.create == [] and again.status and again.status.round and again.status.round.id == rid


def test_a_failed_step_fails_the_round_with_its_message() -> None:
    first = labeling.decide(spec(), None, "v1", listing("s3://b/unlabeled/1.csv"), {}, T0).status
    assert first and first.round
    failed = JobObservation(
        "x",
        first.round.id,
        failed=1,
        failed_reason="PodFailurePolicy",
        termination_message="Label Studio at http://ls answered 401: bad token",
    )
    plan = labeling.decide(spec(), first, "v1", None, {"label": failed}, T0)
    assert plan.status and plan.status.round and plan.status.round.phase == LabelRoundPhase.failed
    assert "answered 401" in (plan.status.round.message or "") and plan.events[0].type == "Warning"


def cycle_with_labeling(**labeling_fields: Any) -> dict[str, Any]:
    document = example("cycle")
    document["spec"]["labeling"] = {
        "source": "data/sensors/unlabeled/*.csv",
        "into": "data/sensors",
        **labeling_fields,
    }
    return document


def test_labels_must_land_where_the_data_is_read_and_only_for_classification() -> None:
    with pytest.raises(
        ManifestError, match=r"spec: labeling.into: the partitions it receives \(data/sensors/labels-\*"
    ):
        parse_manifest(cycle_with_labeling())  # data.uri is data/sensors/month=*.csv
    document = cycle_with_labeling()
    document["spec"]["data"]["uri"] = "data/sensors/*.csv"
    assert parse_manifest(document).spec.labeling is not None
    regression = example("diabetes")
    regression["spec"]["labeling"] = {"source": "u/*.csv", "into": "d"}
    regression["spec"]["data"]["uri"] = "d/*.csv"
    with pytest.raises(ManifestError, match="labeling applies to classification only"):
        parse_manifest(regression)
    with pytest.raises(ManifestError, match=r"spec.labeling.minConfidence"):
        parse_manifest(cycle_with_labeling(minConfidence=0.3))


def test_the_round_jobs_name_the_model_sources_token_and_deadline() -> None:
    document = cycle_with_labeling(
        deadline="2h", labelStudio={"url": "http://ls:8080", "tokenSecretRef": {"name": "ls"}}
    )
    document["spec"]["data"]["uri"] = "data/sensors/*.csv"
    parsed: MLPipelineSpec = parse_manifest(document).spec
    first = labeling.decide(parsed.labeling, None, "v1", listing("a.csv", "b.csv"), {}, T0).status
    assert first and first.round
    settings = OperatorSettings(image="img:1", artifacts_uri="s3://bucket/mlp")
    built = {
        step: build_labeling_job(
            pipeline="sensors",
            namespace="team",
            uid="u",
            spec=parsed,
            current=first.round,
            step=step,
            settings=settings,
            model_uri="s3://bucket/mlp/team/sensors/v1/package/model.bentomodel",
        )
        for step in ("label", "merge")
    }
    label_args = built["label"]["spec"]["template"]["spec"]["containers"][0]["args"]
    rid = first.round.id
    assert label_args[:5] == [
        "label",
        "--out",
        f"s3://bucket/mlp/team/sensors/labeling/{rid}/label",
        "--pipeline",
        "sensors",
    ]
    assert "mlp-sensors:v1" in label_args and label_args[-4:] == ["--source", "a.csv", "--source", "b.csv"]
    merge_job = built["merge"]
    assert merge_job["metadata"]["name"] == f"sensors-{rid}-merge"
    assert merge_job["spec"]["activeDeadlineSeconds"] == 2 * 3600 + 600
    env = {e["name"]: e for e in merge_job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["LABEL_STUDIO_API_KEY"]["valueFrom"] == {"secretKeyRef": {"name": "ls", "key": "token"}}
    assert json.loads(env["MLPIPELINE_SPEC"]["value"])["labeling"]["deadline"] == "2h"


def test_a_failed_round_is_tried_again_over_the_same_files_with_backoff_then_given_up() -> None:
    labeling_spec = spec(interval="5m")
    status = labeling.decide(labeling_spec, None, "v1", listing("s3://b/unlabeled/1.csv"), {}, T0).status
    now = T0
    ids = []
    for attempt in (1, 2, 3):
        assert status and status.round and status.round.attempt == attempt
        ids.append(status.round.id)
        down = JobObservation(
            "x", status.round.id, failed=1, failed_reason="Failed", termination_message="down"
        )
        failed = labeling.decide(labeling_spec, status, "v1", None, {"label": down}, now)
        status = failed.status
        assert status and status.round and status.round.phase == LabelRoundPhase.failed
        if attempt == 3:
            assert status.round.retry_at is None and "given up after 3 attempts" in (
                status.round.message or ""
            )
            assert (
                labeling.decide(labeling_spec, status, "v1", None, {}, now + timedelta(days=1)).create == []
            )
            break
        backoff = timedelta(minutes=5 * 2 ** (attempt - 1))  # 5 min, then 10
        assert status.round.retry_at == stamp(now + backoff)
        early = labeling.decide(labeling_spec, status, "v1", None, {}, now + backoff / 2)
        assert early.create == [] and early.wake_after == backoff.total_seconds() / 2
        now += backoff
        retried = labeling.decide(labeling_spec, status, "v1", None, {}, now)
        assert retried.create == ["label"] and retried.events[0].reason == "LabelingRetried"
        status = retried.status
        assert status and status.round and status.round.sources == ["s3://b/unlabeled/1.csv"]
    assert len(set(ids)) == 3  # new Jobs for each attempt


def test_a_person_may_retry_a_failed_round_at_once() -> None:
    status = labeling.decide(spec(), None, "v1", listing("s3://b/unlabeled/1.csv"), {}, T0).status
    assert status and status.round
    down = JobObservation("x", status.round.id, failed=1, failed_reason="Failed", termination_message="down")
    status = labeling.decide(spec(), status, "v1", None, {"label": down}, T0).status
    assert labeling.decide(spec(), status, "v1", None, {}, T0, retry_now=True).create == ["label"]


DRIFTED = DriftLabels("v1", "2026-11-25T10:30:00Z", "2026-11-25T12:00:00Z", "load=0.412 above 0.2")
CAPTURE = "s3://bucket/mlp/team/sensors/capture"


def test_drift_starts_a_round_over_the_capture_of_the_drifting_window() -> None:
    plan = labeling.decide(spec(), None, "v1", None, {}, T0, drift=DRIFTED, capture=CAPTURE)
    assert plan.create == ["label"] and plan.status and plan.status.round
    current = plan.status.round
    hours = [
        "09",
        "10",
        "11",
        "12",
    ]  # from the hour before the window's start: a file is named after its first record
    assert current.sources == [f"{CAPTURE}/version=v1/hour=2026-11-25T{h}/*.jsonl" for h in hours]
    assert (current.served_from, current.served_to, current.model) == (DRIFTED.since, DRIFTED.until, "v1")
    assert plan.status.processed is None  # the source files of spec.labeling stay as they were
    assert "load=0.412" in plan.events[0].message and plan.events[0].reason == "LabelingStarted"
    args = labeling.step_args(
        "label", {"label": "out/l", "merge": "out/m"}, "sensors", current, "mlp-sensors:v1"
    )
    assert args[-4:] == ["--served-from", DRIFTED.since, "--served-to", DRIFTED.until]
    other = labeling.decide(
        spec(),
        None,
        "v1",
        None,
        {},
        T0,
        drift=replace(DRIFTED, until="2026-11-25T12:30:00Z"),
        capture=CAPTURE,
    )
    assert other.status and other.status.round and other.status.round.id != current.id


def test_a_drift_round_waits_for_the_round_under_way_and_is_retried_over_the_same_window() -> None:
    listed = labeling.decide(spec(), None, "v1", listing("s3://b/unlabeled/1.csv"), {}, T0).status
    assert listed and listed.round
    held = labeling.decide(spec(), listed, "v1", None, {}, T0, drift=DRIFTED, capture=CAPTURE)
    assert (
        held.status and held.status.round and held.status.round.id == listed.round.id
    )  # its own steps go on
    assert held.status.round.served_from is None and not any(
        e.reason == "LabelingStarted" for e in held.events
    )
    started = labeling.decide(spec(), None, "v1", None, {}, T0, drift=DRIFTED, capture=CAPTURE).status
    assert started and started.round
    down = JobObservation("x", started.round.id, failed=1, failed_reason="Failed", termination_message="down")
    failed = labeling.decide(spec(), started, "v1", None, {"label": down}, T0).status
    retried = labeling.decide(spec(), failed, "v1", None, {}, T0, retry_now=True).status
    assert retried and retried.round and retried.round.attempt == 2
    assert (retried.round.served_from, retried.round.served_to) == (DRIFTED.since, DRIFTED.until)
    assert retried.round.sources == started.round.sources


def captured(at: str, load: float) -> str:
    return json.dumps(
        {"at": at, "version": "v1", "features": {"load": load, "temp": 20.0}, "prediction": "no"}
    )


def test_a_drift_round_reads_only_the_records_served_in_its_window(tmp_path: Path) -> None:
    hour = tmp_path / "capture" / "version=v1" / "hour=2026-11-25T11"
    hour.mkdir(parents=True)
    lines = [
        captured("2026-11-25T10:59:59Z", 1.0),
        captured("2026-11-25T11:10:00Z", 2.0),
        captured("2026-11-25T12:00:01Z", 3.0),
    ]
    (hour / "server-1.jsonl").write_text("\n".join(lines) + "\n")
    sources = labeling.capture_sources(
        str(tmp_path / "capture"), "v1", "2026-11-25T11:00:00Z", "2026-11-25T12:00:00Z"
    )
    pool = read_pool(sources, ["load", "temp"], ("2026-11-25T11:00:00Z", "2026-11-25T12:00:00Z"))
    assert pool["load"].tolist() == [2.0]
    with pytest.raises(StepError, match="no served record was captured from 2026-11-25T13:00:00Z"):
        read_pool(sources, ["load", "temp"], ("2026-11-25T13:00:00Z", "2026-11-25T14:00:00Z"))


def test_many_source_files_are_paged_over_rounds_and_keep_the_status_and_job_small() -> None:
    """A listing of 10,000 files (the operator's listing cap) used to go whole into one round: its
    status and its Job's arguments grow past etcd's object limit and the kernel's E2BIG."""
    names = [
        f"s3://datasets/team-a/sensors/unlabeled/day={i // 100:04d}/part-{i:05d}.csv" for i in range(10_000)
    ]
    everything = listing(*names)
    document = cycle_with_labeling()
    document["spec"]["data"]["uri"] = "data/sensors/*.csv"
    parsed: MLPipelineSpec = parse_manifest(document).spec
    settings = OperatorSettings(image="img:1", artifacts_uri="s3://bucket/mlp")
    status: LabelingStatus | None = None
    taken: list[str] = []
    rounds = 0
    while True:
        plan = labeling.decide(parsed.labeling, status, "v1", everything, {}, T0)
        status = plan.status
        assert status is not None
        if not plan.create:
            break
        assert status.round is not None
        rounds += 1
        if rounds == 1:
            assert "100 file(s) for model v1, 9900 more for the next rounds" in plan.events[0].message
        assert len(status.model_dump_json(by_alias=True, exclude_none=True)) < 16_000  # in the status
        job = build_labeling_job(
            pipeline="sensors",
            namespace="team",
            uid="u",
            spec=parsed,
            current=status.round,
            step="label",
            settings=settings,
            model_uri="s3://bucket/mlp/team/sensors/v1/package/model.bentomodel",
        )
        assert len(json.dumps(job)) < 32_000  # in etcd and in the pod's arguments
        assert status.pending_count == len(names) - len(taken) - len(status.round.sources) or (
            status.pending_count is None and len(taken) + len(status.round.sources) == len(names)
        )
        assert status.pending == names[len(taken) + len(status.round.sources) :][:PENDING_SHOWN]
        taken += status.round.sources
        status.round.phase = LabelRoundPhase.merged  # people answered, the partition is written
    assert taken == names and rounds == len(names) // labeling.ROUND_FILES  # each file once, in order

"""The retraining trigger engine: when a schedule fires, what it records, and what it refuses to do
(catch up, fire twice, fire during a run it must not replace, fire within the cooldown)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from mlpipeline.api.manifest import ManifestError, parse_manifest
from mlpipeline.api.models import (
    FeatureDriftStatus,
    MLPipelineStatus,
    MonitoringStatus,
    RetrainSpec,
    RetrainStatus,
    RunStatus,
)
from mlpipeline.controller.reconciler import trigger_of
from mlpipeline.engine.triggers import (
    PENDING_SHOWN,
    DriftContext,
    DriftLabels,
    Firing,
    Listing,
    TriggerPlan,
    data_changed_since,
    decide,
    drift_due,
    new_partitions,
)

from tests.conftest import example

T0 = datetime(2026, 11, 25, 1, 30, tzinfo=UTC)  # 02:30 in Berlin


def nightly(**extra: str) -> RetrainSpec:
    return RetrainSpec.model_validate({"schedule": "0 3 * * *", "timeZone": "Europe/Berlin", **extra})


def settle(
    spec: RetrainSpec, status: RetrainStatus | None, now: datetime, busy: bool = False
) -> RetrainStatus:
    plan = decide(spec, status, busy, now)
    assert plan.status is not None
    return plan.status


def test_a_new_schedule_fires_nothing_for_times_before_it_and_wakes_at_the_next() -> None:
    plan = decide(nightly(), None, False, T0)
    assert plan.fired is None and not plan.events
    assert plan.wake_after == 30 * 60  # 03:00 Berlin is 02:00 UTC
    assert plan.status is not None and plan.status.next_at == "2026-11-25T02:00:00Z"


def test_a_due_time_fires_once_and_is_recorded() -> None:
    status = settle(nightly(), None, T0)
    fired = decide(nightly(), status, False, T0 + timedelta(minutes=31))
    assert fired.fired is not None and fired.fired.kind == "schedule"
    assert "2026-11-25T03:00:00+01:00" in fired.fired.value and "Europe/Berlin" in fired.fired.value
    assert fired.status is not None and fired.status.token == "schedule@2026-11-25T02:00:00Z"
    assert fired.status.last is not None and fired.status.last.action == "started"
    assert [e.reason for e in fired.events] == ["RetrainTriggered"]
    again = decide(nightly(), fired.status, False, T0 + timedelta(minutes=40))  # e.g. after a restart
    assert again.fired is None and again.status == fired.status.model_copy(
        update={"next_at": again.status.next_at}
    )  # type: ignore[union-attr]


def test_downtime_fires_only_the_latest_missed_time() -> None:
    status = settle(nightly(), None, T0)
    week_later = T0 + timedelta(days=7, hours=1)
    plan = decide(nightly(), status, False, week_later)
    assert plan.fired is not None and "2026-12-02T03:00:00+01:00" in plan.fired.value
    follow = decide(nightly(), plan.status, False, week_later + timedelta(seconds=5))
    assert follow.fired is None


def test_forbid_skips_a_time_that_comes_during_a_run_and_records_why() -> None:
    status = settle(nightly(), None, T0)
    plan = decide(nightly(), status, True, T0 + timedelta(minutes=31))
    assert plan.fired is None
    assert plan.status is not None and plan.status.last is not None
    assert plan.status.last.action == "skipped" and "Forbid" in (plan.status.last.reason or "")
    assert [e.reason for e in plan.events] == ["RetrainSkipped"]
    after = decide(nightly(), plan.status, False, T0 + timedelta(hours=2))  # the run ended: no late fire
    assert after.fired is None


def test_replace_fires_during_a_run() -> None:
    spec = nightly(concurrencyPolicy="Replace")
    status = settle(spec, None, T0)
    assert decide(spec, status, True, T0 + timedelta(minutes=31)).fired is not None


def test_the_cooldown_skips_a_time_too_close_to_the_last_triggered_run() -> None:
    spec = RetrainSpec.model_validate({"schedule": "*/10 * * * *", "cooldown": "25m"})
    status = settle(spec, None, T0)
    first = decide(spec, status, False, T0 + timedelta(minutes=10))
    assert first.fired is not None
    second = decide(spec, first.status, False, T0 + timedelta(minutes=20))
    assert second.fired is None and "cooldown" in (second.status.last.reason or "")  # type: ignore[union-attr]
    third = decide(spec, second.status, False, T0 + timedelta(minutes=40))
    assert third.fired is not None


def test_editing_the_schedule_restarts_its_count() -> None:
    status = settle(nightly(), None, T0)
    hourly = RetrainSpec.model_validate({"schedule": "@hourly"})
    plan = decide(hourly, status, False, T0 + timedelta(hours=5))
    assert plan.fired is None and plan.status is not None and plan.status.schedule == "0 * * * * (UTC)"


def test_removing_the_schedule_keeps_the_record_but_fires_nothing() -> None:
    status = settle(nightly(), None, T0)
    plan = decide(RetrainSpec(), status, False, T0 + timedelta(days=1))
    assert plan.fired is None and plan.wake_after is None
    assert plan.status is not None and plan.status.schedule is None


@pytest.mark.parametrize(
    ("retrain", "expected"),
    [
        ({"schedule": "0 3 * * *", "timeZone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"schedule": "0 25 * * *"}, "invalid cron schedule '0 25 * * *'"),
        ({"cooldown": "soon"}, "spec.retrain.cooldown"),
        ({"concurrencyPolicy": "Queue"}, "spec.retrain.concurrencyPolicy"),
    ],
)
def test_a_bad_retrain_section_is_refused_with_its_field(retrain: dict[str, str], expected: str) -> None:
    document = {
        "apiVersion": "mlpipeline.dev/v1alpha1",
        "kind": "MLPipeline",
        "metadata": {"name": "p"},
        "spec": {
            "data": {"uri": "d.csv", "label": "y"},
            "train": {"model": "random_forest"},
            "retrain": retrain,
        },
    }
    with pytest.raises(ManifestError) as error:
        parse_manifest(document)
    assert "spec.retrain" in str(error.value) and expected in str(error.value)


def reading(**values: float | None) -> MonitoringStatus:
    features = [
        FeatureDriftStatus(name=name, value=value, drifted=value is not None and value > 0.2)
        for name, value in values.items()
    ]
    return MonitoringStatus(model_version="v1", threshold=0.2, samples=500, features=features)


ON_DRIFT = RetrainSpec.model_validate({"onDrift": {"sustained": "10m"}})


def test_drift_fires_only_once_sustained_and_names_what_drifted() -> None:
    first = decide(ON_DRIFT, None, False, T0, reading(x=0.5, y=0.05))
    assert first.fired is None and first.wake_after == 600
    assert first.status is not None and first.status.drift_since == "2026-11-25T01:30:00Z"
    later = decide(ON_DRIFT, first.status, False, T0 + timedelta(minutes=10), reading(x=0.45, y=0.05))
    assert later.fired is not None and later.fired.kind == "drift"
    assert (
        "x=0.450" in later.fired.value and "y=" not in later.fired.value and "above 0.2" in later.fired.value
    )
    assert later.status is not None and later.status.token == "drift@2026-11-25T01:30:00Z"
    assert later.status.drift_since is None  # sustained again before another firing


def test_drift_that_goes_away_or_has_too_few_samples_resets_the_clock() -> None:
    first = decide(ON_DRIFT, None, False, T0, reading(x=0.5))
    calm = decide(ON_DRIFT, first.status, False, T0 + timedelta(minutes=5), reading(x=0.1))
    assert calm.status is not None and calm.status.drift_since is None
    unknown = decide(ON_DRIFT, first.status, False, T0 + timedelta(minutes=5), reading(x=None))
    assert unknown.status is not None and unknown.status.drift_since is None
    again = decide(ON_DRIFT, calm.status, False, T0 + timedelta(minutes=11), reading(x=0.5))
    assert again.fired is None  # the clock restarted at minute 11


def test_only_the_listed_features_count() -> None:
    spec = RetrainSpec.model_validate({"onDrift": {"sustained": "0s", "features": ["prediction"]}})
    assert decide(spec, None, False, T0, reading(x=0.9, prediction=0.1)).fired is None
    assert decide(spec, None, False, T0, reading(x=0.1, prediction=0.3)).fired is not None


def test_drift_during_a_run_is_skipped_under_forbid() -> None:
    spec = RetrainSpec.model_validate({"onDrift": {"sustained": "0s"}})
    plan = decide(spec, None, True, T0, reading(x=0.9))
    assert plan.fired is None and plan.status is not None and plan.status.last is not None
    assert plan.status.last.kind == "drift" and plan.status.last.action == "skipped"


NEW_DATA = RetrainSpec.model_validate({"onNewData": {"interval": "1m", "settle": "2m", "minNewRows": 100}})
EPOCH = T0.timestamp()


def listed(*names: str, age: float = 600, rows: int = 80, fresh: tuple[str, ...] = ()) -> Listing:
    partitions = [(n, EPOCH - (10 if n in fresh else age)) for n in names]
    return Listing(partitions, {n: rows for n in names})


def test_the_first_listing_is_the_baseline_the_current_run_read() -> None:
    plan = decide(NEW_DATA, None, False, T0, listing=listed("m=01", "m=02"))
    assert plan.fired is None and plan.status is not None and plan.status.data is not None
    assert plan.status.data.processed == "m=02" and plan.status.data.partitions == 2


def test_new_settled_partitions_with_enough_rows_fire_once_and_are_recorded() -> None:
    base = decide(NEW_DATA, None, False, T0, listing=listed("m=01")).status
    few = decide(NEW_DATA, base, False, T0, listing=listed("m=01", "m=02"))
    assert few.fired is None and few.status is not None and few.status.data is not None
    assert few.status.data.pending == ["m=02"] and "minNewRows=100" in (few.status.data.message or "")
    enough = decide(NEW_DATA, few.status, False, T0, listing=listed("m=01", "m=02", "m=03"))
    assert enough.fired is not None and enough.fired.kind == "data"
    assert enough.fired.value == "2 new partition(s), 160 rows, newest m=03"
    assert enough.status is not None and enough.status.data is not None
    assert enough.status.data.processed == "m=03" and enough.status.data.pending == []
    again = decide(NEW_DATA, enough.status, False, T0, listing=listed("m=01", "m=02", "m=03"))
    assert again.fired is None


def test_a_partition_still_being_written_holds_back_the_ones_after_it() -> None:
    base = decide(NEW_DATA, None, False, T0, listing=listed("m=01")).status
    assert base is not None
    listing = listed("m=01", "m=02", "m=03", rows=200, fresh=("m=02",))
    assert new_partitions(NEW_DATA, base, listing, T0) == []
    plan = decide(NEW_DATA, base, False, T0, listing=listing)
    assert plan.fired is None and plan.status is not None and plan.status.data is not None
    assert plan.status.data.message == "new partitions are settling"


def test_new_data_during_a_run_waits_instead_of_being_dropped() -> None:
    base = decide(NEW_DATA, None, False, T0, listing=listed("m=01")).status
    busy = decide(NEW_DATA, base, True, T0, listing=listed("m=01", "m=02", rows=500))
    assert busy.fired is None and busy.status is not None and busy.status.data is not None
    assert busy.status.data.pending == ["m=02"] and "waiting" in (busy.status.data.message or "")
    free = decide(NEW_DATA, busy.status, False, T0, listing=listed("m=01", "m=02", rows=500))
    assert free.fired is not None


def test_thousands_of_waiting_partitions_are_counted_not_all_listed_in_the_status() -> None:
    base = decide(NEW_DATA, None, True, T0, listing=listed("m=0000")).status
    names = [f"s3://datasets/team-a/sensors/day={i:04d}/part.parquet" for i in range(5000)]
    busy = decide(NEW_DATA, base, True, T0, listing=listed("m=0000", *names))
    assert busy.status is not None and busy.status.data is not None
    assert busy.status.data.pending == names[:PENDING_SHOWN] and busy.status.data.pending_count == 5000
    free = decide(NEW_DATA, busy.status, False, T0, listing=listed("m=0000", *names))
    assert free.fired is not None and free.fired.value.startswith("5000 new partition(s)")
    assert free.status is not None and free.status.data is not None
    assert free.status.data.pending == [] and free.status.data.pending_count is None


def test_on_new_data_needs_a_pattern_uri() -> None:
    document = example("iris")
    document["spec"]["retrain"] = {"onNewData": {}}
    with pytest.raises(ManifestError, match=r"retrain\.onNewData needs data\.uri to name partitions"):
        parse_manifest(document)


def test_a_run_is_named_after_the_trigger_that_fired_even_after_a_spec_edit() -> None:
    status = MLPipelineStatus(run=RunStatus(id="r1", trigger="create", generation=1))
    assert trigger_of(status, 2, Firing("drift", "x=0.5")) == "drift"
    assert trigger_of(status, 2, None) == "spec"
    assert trigger_of(status, 1, None) == "rerun"
    assert trigger_of(MLPipelineStatus(), 1, None) == "create"


# Drift with no new data since the latest run: a labeling round or one skip, never a futile run.

DRIFTING = RetrainSpec.model_validate({"onDrift": {"sustained": "2m"}, "cooldown": "1m"})
NO_DATA = DriftContext(latest_run="r1", new_data=False)
LABELING = DriftContext(latest_run="r1", new_data=False, labeling=True, window=3600)


def looks(
    spec: RetrainSpec,
    context: DriftContext,
    minutes: int,
    status: RetrainStatus | None = None,
    drift: MonitoringStatus | None = None,
    start: datetime = T0,
) -> tuple[RetrainStatus | None, list[TriggerPlan]]:
    """The trigger engine looked at every minute for ``minutes`` minutes of drift from ``start``."""
    plans = []
    for minute in range(minutes):
        plan = decide(
            spec, status, False, start + timedelta(minutes=minute), drift or reading(x=0.5), None, context
        )
        plans.append(plan)
        status = plan.status
    return status, plans


def test_drift_without_new_data_and_without_labeling_is_reported_once_and_starts_no_run() -> None:
    status, plans = looks(DRIFTING, NO_DATA, 30)  # fifteen sustained periods, thirty cooldowns
    assert not any(p.fired for p in plans)
    events = [e for p in plans for e in p.events]
    assert [e.reason for e in events] == ["RetrainSkipped"]
    message = events[0].message
    assert "x=0.500" in message and "persists with no new data since run r1" in message
    assert "spec.labeling" in message and "onDrift" in message
    assert status is not None and status.drift_without_new_data is not None
    assert (
        status.drift_without_new_data.message == message and status.drift_without_new_data.action == "skipped"
    )
    assert status.last is not None and status.last.action == "skipped" and status.last.reason == message
    assert plans[2].events and not plans[1].events  # once sustained (2 minutes), not before


def test_the_skip_is_said_again_only_after_drift_clears_and_comes_back() -> None:
    status, _ = looks(DRIFTING, NO_DATA, 5)
    calm = decide(DRIFTING, status, False, T0 + timedelta(minutes=6), reading(x=0.1), None, NO_DATA)
    assert calm.status is not None and calm.status.drift_without_new_data is None
    back, plans = looks(DRIFTING, NO_DATA, 5, calm.status, start=T0 + timedelta(minutes=7))
    assert [e.reason for p in plans for e in p.events] == ["RetrainSkipped"]
    assert back is not None and back.drift_without_new_data is not None


def test_new_data_or_another_serving_version_makes_sustained_drift_count_again() -> None:
    status, _ = looks(DRIFTING, NO_DATA, 5)
    fresh = DriftContext(latest_run="r1", new_data=True)
    later = T0 + timedelta(minutes=10)
    run = decide(DRIFTING, status, False, later, reading(x=0.5), None, fresh)
    assert run.fired is not None and run.fired.kind == "drift"  # drift has lasted: it fires at once
    assert run.status is not None and run.status.drift_without_new_data is None
    other = reading(x=0.5).model_copy(update={"model_version": "v2"})
    again = DriftContext(latest_run="r1", new_data=False)
    _, plans = looks(DRIFTING, again, 5, status, other, start=later)
    assert [e.reason for p in plans for e in p.events] == ["RetrainSkipped"]


def test_drift_with_new_data_or_unknown_data_runs_as_before() -> None:
    for context in (DriftContext(latest_run="r1", new_data=True), DriftContext(latest_run="r1"), None):
        first = decide(DRIFTING, None, False, T0, reading(x=0.5), None, context)
        plan = decide(DRIFTING, first.status, False, T0 + timedelta(minutes=2), reading(x=0.5), None, context)
        assert plan.fired is not None and plan.label is None, context
        assert [e.reason for e in plan.events] == ["RetrainTriggered"]


def test_with_labeling_drift_without_new_data_starts_one_round_over_the_drifted_window() -> None:
    status, plans = looks(DRIFTING, LABELING, 30)
    asked = [p.label for p in plans if p.label]
    assert not any(p.fired for p in plans) and len(asked) == 1
    # drift counted from minute 0, acted on at minute 2; the first drifted reading covered the hour before
    assert asked[0] == DriftLabels("v1", "2026-11-25T00:30:00Z", "2026-11-25T01:32:00Z", asked[0].value)
    assert "x=0.500" in asked[0].value
    assert [e.reason for p in plans for e in p.events] == ["DriftLabeling"]
    assert status is not None and status.last is not None and status.last.action == "labeling"
    assert "asks people to label what changed" in (status.last.reason or "")


def test_a_labeling_round_under_way_is_waited_for_instead_of_starting_another() -> None:
    busy = DriftContext(latest_run="r1", new_data=False, labeling=True, round_under_way="abc", window=60)
    status, plans = looks(DRIFTING, busy, 10)
    assert not any(p.label or p.fired for p in plans)
    events = [e for p in plans for e in p.events]
    assert len(events) == 1 and "labeling round abc is under way" in events[0].message
    assert status is not None and status.drift_without_new_data is not None


def test_labeling_without_captured_records_falls_back_to_the_skip() -> None:
    uncaptured = DriftContext(latest_run="r1", new_data=False, labeling=True, captured=False)
    _, plans = looks(DRIFTING, uncaptured, 5)
    events = [e for p in plans for e in p.events]
    assert [e.reason for e in events] == ["RetrainSkipped"] and "sampleRate is 0" in events[0].message


def test_with_on_new_data_the_listing_tells_whether_there_is_new_data() -> None:
    spec = RetrainSpec.model_validate(
        {"onDrift": {"sustained": "0s"}, "onNewData": {"interval": "1m", "settle": "2m", "minNewRows": 100}}
    )
    base = decide(spec, None, False, T0, None, listed("m=01")).status
    skipped = decide(spec, base, False, T0, reading(x=0.5), None, DriftContext(new_data=True))
    assert skipped.fired is None and [e.reason for e in skipped.events] == ["RetrainSkipped"]
    few = decide(spec, base, False, T0, reading(x=0.5), listed("m=01", "m=02"))  # 80 < minNewRows
    assert few.fired is not None and few.fired.kind == "drift"  # reads the new partition


def test_a_drift_held_back_by_a_run_in_progress_is_skipped_as_before() -> None:
    spec = RetrainSpec.model_validate({"onDrift": {"sustained": "0s"}})
    plan = decide(spec, None, True, T0, reading(x=0.9), None, LABELING)
    assert plan.label is None and plan.status is not None and plan.status.last is not None
    assert "Forbid" in (plan.status.last.reason or "")


def test_data_changed_since_the_latest_run_is_told_by_modification_times() -> None:
    started = "2026-11-25T01:30:00Z"
    assert data_changed_since(Listing([("a", EPOCH - 60)]), started) is False
    assert data_changed_since(Listing([("a", EPOCH - 60), ("b", EPOCH + 5)]), started) is True
    assert data_changed_since(Listing([], error="cannot list"), started) is None
    assert data_changed_since(Listing([("a", EPOCH - 60)]), None) is None
    assert data_changed_since(None, started) is None


def test_drift_due_says_when_an_executor_must_look_at_the_data() -> None:
    assert not drift_due(DRIFTING, None, reading(x=0.5), T0)
    first = decide(DRIFTING, None, False, T0, reading(x=0.5)).status
    assert not drift_due(DRIFTING, first, reading(x=0.5), T0 + timedelta(minutes=1))
    assert drift_due(DRIFTING, first, reading(x=0.5), T0 + timedelta(minutes=2))
    assert not drift_due(DRIFTING, first, reading(x=0.1), T0 + timedelta(minutes=2))

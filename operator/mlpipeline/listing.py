"""Files listed in the artifact store at most once per interval: the partitions of spec.data.uri for
the new-data trigger (with the rows of the new settled ones counted), and the unlabeled source files
of spec.labeling. The operator lists with its own credentials (its environment: the chart's
storeSecret), the local runner with the user's."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from mlpipeline import store
from mlpipeline.api.models import LabelingStatus, MLPipelineSpec, RetrainStatus, parse_duration
from mlpipeline.engine.triggers import Listing, new_partitions
from mlpipeline.protocol import parse_stamp


def _due(listed_at: str | None, interval: float, now: datetime) -> float | None:
    """Seconds until the next listing is due, or None when it is due now."""
    if not listed_at:
        return None
    elapsed = (now - parse_stamp(listed_at)).total_seconds()
    return interval - elapsed if elapsed < interval else None


def list_files(uri: str, what: str, count: Callable[[Listing], list[str]] | None = None) -> Listing:
    try:
        listing = Listing([(p.uri, p.modified) for p in store.partitions(uri)])
        rows = {name: store.count_rows(name) for name in count(listing)} if count else {}
    except store.StepError as exc:
        return Listing([], error=f"cannot list {what}: {exc}")
    return Listing(listing.partitions, rows)


def list_if_due(
    spec: MLPipelineSpec, recorded: RetrainStatus | None, now: datetime
) -> tuple[Listing | None, float | None]:
    """The listing when one is due, and the seconds until the next (None: no new-data trigger)."""
    trigger = spec.retrain.on_new_data
    if trigger is None:
        return None, None
    interval = parse_duration(trigger.interval)
    wait = _due(recorded.data.listed_at if recorded and recorded.data else None, interval, now)
    if wait is not None:
        return None, wait
    listing = list_files(
        spec.data.uri, "spec.data.uri", lambda found: new_partitions(spec.retrain, recorded, found, now)
    )
    return listing, interval


def list_sources_if_due(
    spec: MLPipelineSpec, recorded: LabelingStatus | None, now: datetime
) -> tuple[Listing | None, float | None]:
    """The unlabeled source files when a listing is due, and the seconds until the next."""
    if spec.labeling is None:
        return None, None
    interval = parse_duration(spec.labeling.interval)
    wait = _due(recorded.listed_at if recorded else None, interval, now)
    if wait is not None:
        return None, wait
    return list_files(spec.labeling.source, "spec.labeling.source"), interval

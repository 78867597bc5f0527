"""New data: the partitions of spec.data.uri listed once per onNewData.interval, and the rows of the
new settled ones counted, for the trigger engine. The operator lists with its own credentials (its
environment: the chart's storeSecret), the local runner with the user's."""

from __future__ import annotations

from datetime import datetime

from mlpipeline import store
from mlpipeline.api.models import MLPipelineSpec, RetrainStatus, parse_duration
from mlpipeline.engine.triggers import Listing, new_partitions
from mlpipeline.protocol import parse_stamp


def list_if_due(
    spec: MLPipelineSpec, recorded: RetrainStatus | None, now: datetime
) -> tuple[Listing | None, float | None]:
    """The listing when one is due, and the seconds until the next (None: no new-data trigger)."""
    trigger = spec.retrain.on_new_data
    if trigger is None:
        return None, None
    interval = parse_duration(trigger.interval)
    listed_at = recorded.data.listed_at if recorded and recorded.data else None
    if listed_at:
        elapsed = (now - parse_stamp(listed_at)).total_seconds()
        if elapsed < interval:
            return None, interval - elapsed
    try:
        found = store.partitions(spec.data.uri)
        listing = Listing([(p.uri, p.modified) for p in found])
        rows = {name: store.count_rows(name) for name in new_partitions(spec.retrain, recorded, listing, now)}
    except store.StepError as exc:
        return Listing([], error=f"cannot list spec.data.uri: {exc}"), interval
    return Listing(listing.partitions, rows), interval

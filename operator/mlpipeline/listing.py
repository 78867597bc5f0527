"""Files listed in the artifact store at most once per interval: the partitions of spec.data.uri for
the new-data trigger (with the rows of the new settled ones counted), and the unlabeled source files
of spec.labeling. The local runner lists with the user's credentials, anything the user can reach.
The operator lists with its own (its environment: the chart's storeSecret), so it lists within a
``Scope``: only s3:// URIs (file:// where the platform allows a file prefix) under the namespace's
data prefixes (policy.py), at most ``max_entries`` files kept (the newest by name, the truncation
said in the status) and ``timeout`` seconds per listing, in a thread of its own so that a slow
store holds no reconciliation longer than that."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from mlpipeline import policy, store
from mlpipeline.api.models import LabelingStatus, MLPipelineSpec, RetrainStatus, parse_duration
from mlpipeline.engine.triggers import Listing, new_partitions
from mlpipeline.protocol import parse_stamp


@dataclass(frozen=True)
class Scope:
    """What the operator may list for one namespace."""

    prefixes: tuple[str, ...]  # each ends with "/" (policy.data_prefixes)
    max_entries: int = 10_000
    timeout: float = 10.0


_running: set[str] = set()  # URIs whose listing has not returned yet (one at a time per URI)
_running_lock = threading.Lock()


def _due(listed_at: str | None, interval: float, now: datetime) -> float | None:
    """Seconds until the next listing is due, or None when it is due now."""
    if not listed_at:
        return None
    elapsed = (now - parse_stamp(listed_at)).total_seconds()
    return interval - elapsed if elapsed < interval else None


def list_files(
    uri: str,
    what: str,
    count: Callable[[Listing], list[str]] | None = None,
    scope: Scope | None = None,
) -> Listing:
    """The files of ``uri``; with a ``scope`` (the operator), only within it."""
    if scope is not None:
        refusal = policy.listing_refusal(uri, what, list(scope.prefixes))
        if refusal:
            return Listing([], error=refusal)
        return _bounded(uri, what, count, scope)
    try:
        listing = Listing([(p.uri, p.modified) for p in store.partitions(uri)])
        rows = {name: store.count_rows(name) for name in count(listing)} if count else {}
    except store.StepError as exc:
        return Listing([], error=f"cannot list {what}: {exc}")
    return Listing(listing.partitions, rows)


def _within(uri: str, what: str, count: Callable[[Listing], list[str]] | None, scope: Scope) -> Listing:
    deadline = time.monotonic() + scope.timeout
    try:
        found, matched = store.bounded_partitions(uri, scope.max_entries, scope.timeout)
        kept = [p for p in found if p.uri.startswith(scope.prefixes)]  # the pattern started with one
        listing = Listing([(p.uri, p.modified) for p in kept])
        rows = {name: store.count_rows(name, deadline) for name in count(listing)} if count else {}
    except store.StepError as exc:
        return Listing([], error=f"cannot list {what}: {exc}")
    note = None
    if matched > len(found):
        note = (
            f"{what} matches {matched} files: only the newest {len(found)} by name were considered "
            f"(the operator keeps at most {scope.max_entries} of a listing)"
        )
    return Listing(listing.partitions, rows, note=note)


def _bounded(uri: str, what: str, count: Callable[[Listing], list[str]] | None, scope: Scope) -> Listing:
    """Lists in a thread of its own and waits for it at most ``scope.timeout`` (plus a second): the
    listing stops itself at its deadline between pages or files, and a single request that hangs
    beyond it keeps only its own thread, not a reconciliation — nor a second listing of the same URI,
    refused until it returns."""
    with _running_lock:
        if uri in _running:
            return Listing([], error=f"cannot list {what}: its previous listing has not finished yet")
        _running.add(uri)
    result: list[Listing] = []

    def work() -> None:
        try:
            result.append(_within(uri, what, count, scope))
        except Exception as exc:  # an unexpected failure is the listing's error, not the operator's
            result.append(Listing([], error=f"cannot list {what}: {type(exc).__name__}"))
        finally:
            with _running_lock:
                _running.discard(uri)

    thread = threading.Thread(target=work, name="listing", daemon=True)
    thread.start()
    thread.join(scope.timeout + 1.0)
    if not result:
        return Listing([], error=f"cannot list {what}: no answer from the store within {scope.timeout:g}s")
    return result[0]


def list_if_due(
    spec: MLPipelineSpec, recorded: RetrainStatus | None, now: datetime, scope: Scope | None = None
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
        spec.data.uri,
        "spec.data.uri",
        lambda found: new_partitions(spec.retrain, recorded, found, now),
        scope,
    )
    return listing, interval


def list_sources_if_due(
    spec: MLPipelineSpec, recorded: LabelingStatus | None, now: datetime, scope: Scope | None = None
) -> tuple[Listing | None, float | None]:
    """The unlabeled source files when a listing is due, and the seconds until the next."""
    if spec.labeling is None:
        return None, None
    interval = parse_duration(spec.labeling.interval)
    wait = _due(recorded.listed_at if recorded else None, interval, now)
    if wait is not None:
        return None, wait
    return list_files(spec.labeling.source, "spec.labeling.source", scope=scope), interval

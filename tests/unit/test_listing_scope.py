"""The operator lists data with its own credentials only under the namespace's prefixes (the chart's
dataPrefixes, by default <artifactsUri>/<namespace>/), only s3:// (file:// where the platform names a
file prefix), and within bounds: at most N files kept, the newest by name, the truncation said in
the status, and a time limit (security review, issue 25.2)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fsspec.asyn
import kopf
import pytest
from mlpipeline import listing, policy, store
from mlpipeline.api.manifest import parse_spec
from mlpipeline.api.models import FeatureDriftStatus, MLPipelineStatus, MonitoringStatus, RunStatus
from mlpipeline.controller.cache import ClusterCache
from mlpipeline.controller.reconciler import Reconciler
from mlpipeline.engine import triggers
from mlpipeline.kube.client import Kube
from mlpipeline.kube.jobs import OperatorSettings
from mlpipeline.listing import Scope, list_files, list_if_due
from mlpipeline.protocol import stamp

from tests.conftest import example

TEAM_A = policy.data_prefixes("team-a", [], "s3://mlp-artifacts/pipelines")


def test_the_default_prefix_is_the_namespaces_folder_of_the_charts_store() -> None:
    assert TEAM_A == ["s3://mlp-artifacts/pipelines/team-a/"]
    assert policy.data_prefixes("team-a", ["s3://datasets/{namespace}", "s3://shared/public/"], None) == [
        "s3://datasets/team-a/",
        "s3://shared/public/",
    ]
    assert policy.data_prefixes("team-a", [], None) == []  # no s3 store: nothing may be listed
    assert policy.data_prefixes("team-a", [], "file:///artifacts") == []


@pytest.mark.parametrize(
    "uri",
    [
        "s3://mlp-artifacts/pipelines/team-a/data/month=*/*.csv",
        "s3://mlp-artifacts/pipelines/team-a/labeling/unlabeled/*.csv",
        "s3://mlp-artifacts/pipelines/team-a/data/my file.csv",
    ],
)
def test_uris_under_the_namespaces_prefix_may_be_listed(uri: str) -> None:
    assert policy.listing_refusal(uri, "spec.data.uri", TEAM_A) is None


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("s3://mlp-artifacts/pipelines/team-b/data/*.csv", "not under this namespace's data prefixes"),
        ("s3://mlp-artifacts/pipelines/team-ab/*.csv", "not under this namespace's data prefixes"),
        ("s3://mlp-artifacts/pipelines/*/data/*.csv", "not under this namespace's data prefixes"),
        ("s3://other-teams-bucket/*.csv", "not under this namespace's data prefixes"),
        ("s3://mlp-artifacts/pipelines/team-a/../team-b/*.csv", ". or .. path segments"),
        ("s3://mlp-artifacts/pipelines/team-a/x::http://169.254.169.254/", "chain"),
        ("http://internal-index.corp/files/", "does not list http:// URIs"),
        ("gcs://bucket/team-a/*.csv", "does not list gcs:// URIs"),
        ("file:///var/run/secrets/*", "does not list file:// URIs"),
        ("/artifacts/data/*.csv", "a PersistentVolumeClaim's files are not visible to the operator"),
    ],
)
def test_other_prefixes_and_schemes_are_refused_naming_the_chart_value(uri: str, why: str) -> None:
    refusal = policy.listing_refusal(uri, "spec.data.uri", TEAM_A)
    assert refusal is not None and refusal.startswith("spec.data.uri: ") and why in refusal, refusal
    assert "dataPrefixes" in refusal or "path segments" in refusal or "chain" in refusal


def test_a_pipeline_listing_outside_its_prefix_is_refused_at_reconcile() -> None:
    def refusal(**uris: str | None) -> tuple[str, str] | None:
        return policy.pipeline_refusal(
            prometheus_url=None,
            retrain_data_uri=uris.get("data"),
            labeling_source=uris.get("source"),
            default_prometheus=None,
            allowed_prometheus=[],
            prefixes=TEAM_A,
        )

    assert refusal(data="s3://mlp-artifacts/pipelines/team-a/d/*.csv") is None
    assert refusal() is None  # no onNewData, no labeling: nothing is listed by the operator
    message, reason = refusal(source="s3://mlp-artifacts/pipelines/team-b/unlabeled/*.csv") or ("", "")
    assert reason == "ListingNotAllowed" and message.startswith("spec.labeling.source: ")


def test_a_file_prefix_is_only_what_the_platform_names() -> None:
    local = policy.data_prefixes("ns", ["file:///srv/shared/{namespace}/"], None)
    assert policy.listing_refusal("file:///srv/shared/ns/*.csv", "spec.data.uri", local) is None
    assert policy.listing_refusal("file:///srv/shared/other/*.csv", "spec.data.uri", local)
    with pytest.raises(ValueError, match="dataPrefixes: 'http://x/' must start with s3:// or file://"):
        policy.check_prefix_template("http://x/")
    with pytest.raises(ValueError, match="glob characters"):
        policy.check_prefix_template("s3://bucket/*/")


def files(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    old = time.time() - 3600
    for i in range(count):
        path = folder / f"month={i:03d}.csv"
        path.write_text("a,b\n1,2\n")
        os.utime(path, (old, old))


def test_the_operators_listing_outside_its_scope_touches_nothing(tmp_path: Path) -> None:
    files(tmp_path / "team-b", 3)
    scope = Scope((f"file://{tmp_path}/team-a/",))
    found = list_files(f"file://{tmp_path}/team-b/*.csv", "spec.data.uri", scope=scope)
    assert (
        found.partitions == [] and found.error and "not under this namespace's data prefixes" in found.error
    )
    assert list_files(f"file://{tmp_path}/team-b/*.csv", "spec.data.uri").partitions  # the local runner


def test_a_large_listing_keeps_the_newest_entries_and_says_so_in_the_status(tmp_path: Path) -> None:
    files(tmp_path / "team-a" / "data", 12)
    (tmp_path / "team-a" / "data" / "notes.txt").write_text("not a partition")
    scope = Scope((f"file://{tmp_path}/team-a/",), max_entries=5)
    uri = f"file://{tmp_path}/team-a/data/month=*.csv"
    found = list_files(uri, "spec.data.uri", scope=scope)
    assert [Path(name).name for name, _ in found.partitions] == [f"month={i:03d}.csv" for i in range(7, 12)]
    assert found.partitions[0][0] == f"file://{tmp_path}/team-a/data/month=007.csv"
    assert found.note == (
        "spec.data.uri matches 12 files: only the newest 5 by name were considered "
        "(the operator keeps at most 5 of a listing)"
    )
    spec = example("iris")["spec"]
    spec["data"]["uri"] = uri
    spec["retrain"] = {"onNewData": {"interval": "1m", "settle": "1s", "minNewRows": 1}}
    pipeline = parse_spec(spec)
    now = datetime.now(UTC)
    fetched, _ = list_if_due(pipeline, None, now, scope)
    assert fetched is not None
    plan = triggers.decide(pipeline.retrain, None, False, now, None, fetched)
    assert plan.status is not None and plan.status.data is not None
    assert plan.status.data.processed and plan.status.data.processed.endswith("month=011.csv")
    assert plan.status.data.message and "only the newest 5 by name" in plan.status.data.message


def test_an_s3_listing_is_streamed_and_never_holds_more_than_it_keeps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """25,000 objects under the prefix, 10 kept: the pattern's files, newest by name, one level deep."""
    held: list[int] = []

    class Store:
        loop = fsspec.asyn.get_loop()

        async def _iterdir(self, bucket: str, prefix: str, delimiter: str) -> AsyncIterator[dict[str, Any]]:
            assert (bucket, prefix, delimiter) == ("data", "team-a/month=", "")
            for i in range(25_000):
                deeper = "/nested" if i % 2 else ""
                yield {"name": f"data/team-a/month={i:05d}{deeper}/part.csv", "type": "file", "ETag": str(i)}
            held.append(1)

    monkeypatch.setattr(store, "filesystem", lambda uri: (Store(), uri.removeprefix("s3://")))
    found, matched = store.bounded_partitions("s3://data/team-a/month=*/part.csv", 10, 30.0)
    assert held and matched == 12_500
    assert [p.uri for p in found] == [
        f"s3://data/team-a/month={i:05d}/part.csv" for i in range(24_980, 25_000, 2)
    ]
    assert found[-1].version == "24998"


def test_a_slow_listing_gives_up_in_time_and_is_not_started_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    def stuck(uri: str, keep: int, seconds: float) -> tuple[list[store.Partition], int]:
        release.wait(10)
        return [], 0

    monkeypatch.setattr(store, "bounded_partitions", stuck)
    scope = Scope(("s3://data/team-a/",), timeout=0.2)
    started = time.monotonic()
    first = list_files("s3://data/team-a/*.csv", "spec.data.uri", scope=scope)
    assert first.error == "cannot list spec.data.uri: no answer from the store within 0.2s"
    assert time.monotonic() - started < 2
    again = list_files("s3://data/team-a/*.csv", "spec.data.uri", scope=scope)
    assert again.error == "cannot list spec.data.uri: its previous listing has not finished yet"
    release.set()
    deadline = time.monotonic() + 5
    while "s3://data/team-a/*.csv" in listing._running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert list_files("s3://data/team-a/*.csv", "spec.data.uri", scope=scope).error is None


def test_a_listing_stops_at_its_deadline(tmp_path: Path) -> None:
    files(tmp_path / "team-a", 3)
    with pytest.raises(store.StepError, match=r"took longer than 0s"):
        store.bounded_partitions(f"file://{tmp_path}/team-a/*.csv", 10, 0.0)


def test_the_operator_tells_new_data_for_due_drift_from_a_listing_within_its_scope(tmp_path: Path) -> None:
    """Without onNewData, drift about to be acted on makes the operator list data.uri: a file
    written since the latest run started is new data; data it may not list is not known."""
    files(tmp_path / "team-a" / "data", 2)  # written an hour ago
    spec = example("iris")["spec"]
    spec["data"]["uri"] = f"file://{tmp_path}/team-a/data/month=*.csv"
    spec["retrain"] = {"onDrift": {"sustained": "0s"}}
    pipeline = parse_spec(spec)
    settings = OperatorSettings(data_prefixes=(f"file://{tmp_path}/{{namespace}}/",))
    operator = Reconciler(Kube(kopf.ConnectionInfo(server="http://127.0.0.1:9")), settings, ClusterCache())
    now = datetime.now(UTC)
    drifted = MonitoringStatus(
        model_version="r1", threshold=0.2, features=[FeatureDriftStatus(name="x", value=0.5, drifted=True)]
    )
    status = MLPipelineStatus(
        run=RunStatus(id="r1", trigger="create", started_at=stamp(now - timedelta(minutes=5))),
        monitoring=drifted,
    )
    assert operator._new_data(pipeline, status, "team-a", now) is False
    assert operator._new_data(pipeline, status, "team-b", now) is None  # outside team-b's prefix
    calm = status.model_copy(update={"monitoring": MonitoringStatus(model_version="r1", threshold=0.2)})
    assert operator._new_data(pipeline, calm, "team-a", now) is None  # no drift: nothing listed
    (tmp_path / "team-a" / "data" / "month=002.csv").write_text("a,b\n3,4\n")
    assert operator._new_data(pipeline, status, "team-a", now) is True

"""Ingestion validates real files and fails with one clear message naming the field or the file."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mlpipeline import store
from mlpipeline.api.models import MLPipelineSpec
from mlpipeline.steps import artifacts, ingest
from mlpipeline.steps.artifacts import StepError

from tests.conftest import EXAMPLES, example, mlpipeline, write_manifest

IRIS = EXAMPLES / "data" / "iris.csv"


def spec_for(uri: str, **data: Any) -> MLPipelineSpec:
    document = example("iris")["spec"]
    document["data"] = {**document["data"], "uri": uri, **data}
    return MLPipelineSpec.model_validate(document)


def write_csv(path: Path, frame: pd.DataFrame) -> str:
    frame.to_csv(path, index=False)
    return str(path)


def test_split_is_stratified_and_profile_written(tmp_path: Path) -> None:
    result = ingest.run(spec_for(str(IRIS)), str(tmp_path))
    train = artifacts.read_table(str(tmp_path / "train.parquet"))
    test = artifacts.read_table(str(tmp_path / "test.parquet"))
    assert (result["train"], result["test"]) == (120, 30)
    assert test["species"].value_counts().tolist() == [10, 10, 10]
    original = pd.read_csv(IRIS)
    together = pd.concat([train, test])[list(original.columns)]
    assert len(together) == 150
    assert sorted(map(tuple, together.to_numpy().tolist())) == sorted(
        map(tuple, original.to_numpy().tolist())
    )
    profile = json.loads((tmp_path / "profile.json").read_text())
    assert set(profile["columns"]) == {"sepal_length", "sepal_width", "petal_length", "petal_width"}
    schema = json.loads((tmp_path / "schema.json").read_text())
    assert schema["classes"] == ["setosa", "versicolor", "virginica"]


@contextlib.contextmanager
def http_server(directory: Path) -> Iterator[str]:
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def http_data() -> Iterator[str]:
    with http_server(IRIS.parent) as url:
        yield url


def test_reads_over_http(tmp_path: Path, http_data: str) -> None:
    assert ingest.run(spec_for(f"{http_data}/iris.csv"), str(tmp_path))["rows"] == 150


def test_a_file_served_without_etag_or_date_is_told_apart_by_its_bytes(tmp_path: Path) -> None:
    # Python's HTTP server sends neither an ETag nor a date fsspec keeps: a listing shows the size only.
    served = tmp_path / "iris.csv"
    served.write_bytes(IRIS.read_bytes())
    with http_server(tmp_path) as url:
        before = store.fingerprint(f"{url}/iris.csv", read=False)
        served.write_bytes(IRIS.read_bytes().replace(b"setosa", b"SETOSA"))  # the same size
        assert store.fingerprint(f"{url}/iris.csv", read=False) != before


def test_parquet(tmp_path: Path) -> None:
    pd.read_csv(IRIS).to_parquet(tmp_path / "iris.parquet")
    assert ingest.run(spec_for(str(tmp_path / "iris.parquet")), str(tmp_path / "out"))["rows"] == 150


def bad(tmp_path: Path, name: str) -> tuple[str, dict[str, Any]]:
    frame = pd.read_csv(IRIS)
    if name == "no-label":
        return write_csv(tmp_path / "d.csv", frame.drop(columns=["species"])), {}
    if name == "malformed":
        path = tmp_path / "d.csv"
        path.write_text('a,b,species\n1,2,x\n3,"4,y\n5,6,7,8,9\n')
        return str(path), {}
    if name == "missing-file":
        return str(tmp_path / "nope.csv"), {}
    if name == "few-rows":
        return write_csv(tmp_path / "d.csv", frame.head(10)), {}
    if name == "nulls":
        frame.loc[frame.index[:100], "sepal_width"] = None
        return write_csv(tmp_path / "d.csv", frame), {}
    if name == "one-class":
        return write_csv(tmp_path / "d.csv", frame[frame.species == "setosa"]), {}
    if name == "rare-class":
        return write_csv(tmp_path / "d.csv", frame.iloc[:101]), {"minClassCount": 5}
    if name == "wrong-type":
        frame["sepal_width"] = frame["sepal_width"].astype(str)
        frame.loc[3, "sepal_width"] = "wide"
        return write_csv(tmp_path / "d.csv", frame), {"columns": {"sepal_width": "numeric"}}
    raise AssertionError(name)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("no-label", "label column 'species' (spec.data.label) is not in the data"),
        ("malformed", "malformed CSV"),
        ("missing-file", "nope.csv: no such file"),
        ("few-rows", "spec.data.minRows"),
        ("nulls", "sepal_width (67%)"),
        ("one-class", "single class"),
        ("rare-class", "'virginica': 1"),
        ("wrong-type", "declared numeric (spec.data.columns) but holds 1 non-numeric values, e.g. 'wide'"),
    ],
)
def test_bad_data_is_one_clear_message(tmp_path: Path, case: str, expected: str) -> None:
    uri, data = bad(tmp_path, case)
    with pytest.raises(StepError) as caught:
        ingest.run(spec_for(uri, **data), str(tmp_path / "out"))
    assert expected in str(caught.value)


def test_the_runner_reports_bad_data_and_exits_non_zero(tmp_path: Path) -> None:
    uri, _ = bad(tmp_path, "no-label")
    document = example("iris")
    document["spec"]["data"]["uri"] = uri
    result = mlpipeline(
        "run", "-f", str(write_manifest(tmp_path / "m.yaml", document)), "--workdir", str(tmp_path / "w")
    )
    assert result.returncode == 2
    assert "ingest failed" in result.stdout and "'species' (spec.data.label)" in result.stdout
    assert "tune" not in result.stdout


def test_the_runner_reports_an_unreadable_uri(tmp_path: Path) -> None:
    document = example("iris")
    document["spec"]["data"]["uri"] = "http://127.0.0.1:9/absent.csv"
    result = mlpipeline(
        "run", "-f", str(write_manifest(tmp_path / "m.yaml", document)), "--workdir", str(tmp_path / "w")
    )
    assert result.returncode == 2
    assert "spec.data.uri" in result.stdout and "absent.csv" in result.stdout


def test_ingest_in_a_cluster_reuses_its_output_until_a_listing_shows_the_data_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the ingest Job runs it (``--keyed``): the data's fingerprint comes from a listing (size and
    modification time), never from reading; the operator reads the result as the termination message."""
    from mlpipeline.engine.plan import fingerprints, ingest_spec_key
    from mlpipeline.steps.__main__ import main

    data = tmp_path / "iris.csv"
    original = IRIS.read_bytes()
    data.write_bytes(original)
    spec = spec_for(f"file://{data}")
    monkeypatch.setenv("MLPIPELINE_SPEC", spec.model_dump_json(by_alias=True))
    message = tmp_path / "termination-log"
    monkeypatch.setenv("MLP_TERMINATION_LOG", str(message))
    root = tmp_path / "steps"

    def ingest_job(*flags: str) -> tuple[int, dict[str, Any]]:
        code = main(["ingest", "--out", str(root / "ingest"), "--keyed", ingest_spec_key(spec), *flags])
        return code, json.loads(message.read_text() or "{}") if code == 0 else {"error": message.read_text()}

    code, first = ingest_job()
    assert code == 0 and not first["cached"] and first["summary"].startswith("150 rows")
    key = fingerprints(spec, first["data"], "iris")["ingest"]  # what the operator computes from it
    [made] = list(root.iterdir())
    assert made.name == f"ingest-{key[:12]}" and (made / "train.parquet").exists()

    # Bytes the step could not ingest, with the size and modification time of the data: a listing
    # sees the same data, so the output already made is reused and the file is not read.
    stat = data.stat()
    data.write_bytes(b"\0" * len(original))
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    code, again = ingest_job()
    assert code == 0 and again["cached"] and again["data"] == first["data"]
    assert again["summary"] == first["summary"] and list(root.iterdir()) == [made]
    # Told to reuse nothing (a forced rerun), it reads the file: and fails on those bytes.
    code, forced = ingest_job("--no-cache")
    assert code == 2 and "label column 'species'" in forced["error"]

    # A new modification time is new data to the listing: a new key, a new output, read afresh.
    data.write_bytes(original)
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    code, changed = ingest_job()
    assert code == 0 and not changed["cached"] and changed["data"] != first["data"]
    assert len(list(root.iterdir())) == 2  # a failed ingest left no output

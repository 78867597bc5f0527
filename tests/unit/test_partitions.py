"""Data as partitions: a pattern in spec.data.uri, read together or as a window of the newest."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from mlpipeline import store
from mlpipeline.api.manifest import parse_spec
from mlpipeline.api.models import MLPipelineSpec
from mlpipeline.steps.artifacts import StepError
from mlpipeline.steps.ingest import read_partitions

from tests.conftest import example


def month(root: Path, name: str, rows: int, **extra: list[object]) -> None:
    (root / f"month={name}").mkdir(parents=True)
    frame = pd.DataFrame({"x": range(rows), "y": ["a", "b"] * (rows // 2), **extra})
    frame.to_csv(root / f"month={name}" / "part.csv", index=False)


def spec_for(uri: str, **data: object) -> MLPipelineSpec:
    document = example("iris")["spec"]
    document["data"] = {"uri": uri, "label": "y", **data}
    return parse_spec(document)


def test_a_pattern_reads_every_partition_or_the_newest_n(tmp_path: Path) -> None:
    for name, rows in (("2026-03", 6), ("2026-01", 2), ("2026-02", 4)):
        month(tmp_path, name, rows)
    pattern = f"{tmp_path}/month=*/part.csv"
    frame, read, _ = read_partitions(spec_for(pattern))
    assert len(frame) == 12 and [Path(p).parent.name for p in read] == [
        "month=2026-01",
        "month=2026-02",
        "month=2026-03",
    ]
    frame, read, _ = read_partitions(spec_for(pattern, lastPartitions=2))
    assert len(frame) == 10 and Path(read[0]).parent.name == "month=2026-02"


def test_partitions_change_the_fingerprint_when_one_lands(tmp_path: Path) -> None:
    month(tmp_path, "2026-01", 2)
    pattern = f"{tmp_path}/month=*/part.csv"
    before = store.fingerprint(pattern)
    month(tmp_path, "2026-02", 2)
    assert store.fingerprint(pattern) != before


def test_a_partition_with_other_columns_or_no_match_fails_with_its_name(tmp_path: Path) -> None:
    month(tmp_path, "2026-01", 2)
    month(tmp_path, "2026-02", 2, z=[1, 2])
    with pytest.raises(StepError, match=r"month=2026-02/part.csv: columns .* differ"):
        read_partitions(spec_for(f"{tmp_path}/month=*/part.csv"))
    with pytest.raises(StepError, match="no partition matches"):
        read_partitions(spec_for(f"{tmp_path}/year=*/part.csv"))

"""The operator counts a Parquet partition's rows from its footer without pyarrow (issue 26.4):
checked against the files pyarrow and pandas write, of several shapes, and against broken files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mlpipeline import store
from mlpipeline.parquet_footer import FooterError, row_count


@pytest.mark.parametrize(
    ("rows", "row_group_size", "compression"),
    [(0, None, "snappy"), (1, None, "none"), (1234, 100, "zstd"), (70_000, 8192, "snappy")],
)
def test_the_footer_says_how_many_rows_pyarrow_wrote(
    tmp_path: Path, rows: int, row_group_size: int | None, compression: str
) -> None:
    rng = np.random.default_rng(rows)
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=rows),
            "n": rng.integers(0, 9, rows),
            "flag": rng.random(rows) > 0.5,
            "city": rng.choice(["a", "bb", None], rows),
            "tags": [[1, 2]] * rows,
            "when": pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 9, rows), "D"),
        }
    )
    path = tmp_path / "part.parquet"
    table = pa.Table.from_pandas(frame)
    pq.write_table(table, path, row_group_size=row_group_size, compression=compression)
    with path.open("rb") as handle:
        assert row_count(handle) == rows == pq.ParquetFile(path).metadata.num_rows
    assert store.count_rows(str(path)) == rows


def test_pandas_written_parquet_with_metadata_counts_too(tmp_path: Path) -> None:
    path = tmp_path / "labeled.parquet"
    pd.DataFrame({"a": range(57), "mlp_provenance": ["human"] * 57}).to_parquet(path)
    assert store.count_rows(str(path)) == 57


@pytest.mark.parametrize("data", [b"", b"PAR1", b"a,b\n1,2\n", b"PAR1" + b"\x00" * 4 + b"PAR1"])
def test_what_is_not_parquet_is_said_so(data: bytes) -> None:
    with pytest.raises((FooterError, OSError)):
        row_count(io.BytesIO(data))


def test_a_truncated_footer_is_an_error_not_a_wrong_count(tmp_path: Path) -> None:
    path = tmp_path / "part.parquet"
    pd.DataFrame({"a": range(10)}).to_parquet(path)
    data = path.read_bytes()
    length = int.from_bytes(data[-8:-4], "little")
    broken = data[: -8 - length] + data[-8 - length : -8 - length // 2] + data[-8:]
    with pytest.raises((FooterError, OSError)):
        row_count(io.BytesIO(broken))

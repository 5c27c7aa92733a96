"""The archive's checksums and plans, without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradedb.archive import files
from tradedb.errors import ArchiveCorrupt, ConfigError

T0 = datetime(2019, 1, 2, tzinfo=UTC)


def quotes(n: int) -> pa.Table:
    return pa.table(
        {
            "security_id": pa.array([1 + i // 3 for i in range(n)], pa.int64()),
            "ts": pa.array([T0 + timedelta(seconds=i) for i in range(n)], files.TS),
            "bid": pa.array([None if i % 5 == 0 else 10.0 + i for i in range(n)], pa.float64()),
            "ask": pa.array([10.5 + i for i in range(n)], pa.float64()),
            "bid_size": pa.array([100.0] * n, pa.float64()),
            "ask_size": pa.array([None] * n, pa.float64()),
            "source": pa.array(["v"] * n, pa.string()),
            "contributor": pa.array([None if i % 2 else f"bank{i}" for i in range(n)], pa.string()),
        }
    )


@settings(deadline=None)  # the first example pays for pyarrow's kernels
@given(st.integers(min_value=0, max_value=40), st.lists(st.integers(min_value=1, max_value=10), max_size=6))
def test_rows_checksum_ignores_chunking(n: int, cuts: list[int]) -> None:
    table = quotes(n)
    pieces, offset = [], 0
    for cut in cuts:
        pieces.append(table.slice(offset, cut))
        offset += cut
    pieces.append(table.slice(offset))
    assert files.rows_checksum(pa.concat_tables(pieces)) == files.rows_checksum(table)


def test_rows_checksum_sees_every_change() -> None:
    table = quotes(12)
    digest = files.rows_checksum(table)
    changed = {
        "a value": table.set_column(3, "ask", pa.array([10.5 + i + (i == 7) for i in range(12)], pa.float64())),
        "a null for a value": table.set_column(
            4, "bid_size", pa.array([None if i == 3 else 100.0 for i in range(12)], pa.float64())
        ),
        "a null for an empty text": table.set_column(
            7, "contributor", pa.array(["" if i % 2 else f"bank{i}" for i in range(12)], pa.string())
        ),
        "text moved between rows": table.set_column(
            7, "contributor", pa.array([None if i % 2 else f"bank{i}"[::-1] for i in range(12)], pa.string())
        ),
        "two rows swapped": table.take([1, 0, *range(2, 12)]),
        "a row deleted": table.slice(1),
    }
    for what, other in changed.items():
        assert files.rows_checksum(other) != digest, what


def test_a_file_is_written_verified_and_read_back(tmp_path: Path) -> None:
    table = quotes(30)
    fs = pafs.LocalFileSystem()
    written = files.write(fs, str(tmp_path), "quotes/p/part-0000.parquet", table)
    assert written.row_count == 30 and written.rows_sha256 == files.rows_checksum(table)
    record = files.ArchivedFile(
        "quotes", "p", T0, T0 + timedelta(hours=1), 0, 1, 10, str(tmp_path), written.path, 30,
        written.file_bytes, written.file_sha256, written.rows_sha256,
    )  # fmt: skip
    assert files.read_all(record).equals(table)
    some = files.read_rows(record, security_ids=[2, 3], lo=T0, hi=T0 + timedelta(seconds=8), equal={"source": "v"})
    assert some["ts"].to_pylist() == [T0 + timedelta(seconds=s) for s in range(3, 8)]
    assert (
        files.read_rows(record, security_ids=[2], lo=T0, hi=T0 + timedelta(hours=1), equal={"source": "x"}).num_rows
        == 0
    )
    with pytest.raises(ArchiveCorrupt, match="rows checksum"):
        files.read_all(files.ArchivedFile(**{**record.__dict__, "rows_sha256": files.rows_checksum(table.slice(1))}))


def test_segments_cut_a_range_into_archived_and_live_parts() -> None:
    def file(start_h: int, end_h: int, seq: int = 0) -> files.ArchivedFile:
        return files.ArchivedFile(
            "quotes", f"p{start_h}", T0 + timedelta(hours=start_h), T0 + timedelta(hours=end_h), seq, 1, 1, "/a",
            f"p{start_h}-{seq}", 1, 1, "", "",
        )  # fmt: skip

    h = [T0 + timedelta(hours=i) for i in range(8)]
    a, b, b2, c = file(1, 2), file(2, 3), file(2, 3, 1), file(5, 6)
    parts = files.segments(h[0] + timedelta(minutes=30), h[7], [c, b2, a, b])
    assert [(lo, hi, [f.path for f in held]) for lo, hi, held in parts] == [
        (h[0] + timedelta(minutes=30), h[1], []),
        (h[1], h[3], ["p1-0", "p2-0", "p2-1"]),  # adjacent partitions: one archived range
        (h[3], h[5], []),
        (h[5], h[6], ["p5-0"]),
        (h[6], h[7], []),
    ]
    assert files.segments(h[0], h[1], []) == [(h[0], h[1], [])]
    inside = files.segments(h[1] + timedelta(minutes=10), h[1] + timedelta(minutes=20), [a])
    assert [(lo, hi) for lo, hi, _ in inside] == [(h[1] + timedelta(minutes=10), h[1] + timedelta(minutes=20))]


def test_locations() -> None:
    assert files.check_location("/srv/archive/") == "/srv/archive"
    assert files.file_path("bars", "bars_p201901", 3) == "bars/bars_p201901/part-0003.parquet"
    for bad, needle in (
        ("", "TRADEDB_ARCHIVE_URL"),
        (None, "TRADEDB_ARCHIVE_URL"),
        ("s3://key:hunter2@bucket/x", "credential"),
        ("s3://bucket/x?access_key=a&secret_key=hunter2", "credential"),
        ("gs://bucket/x", "scheme 'gs'"),
    ):
        with pytest.raises(ConfigError, match=needle) as caught:
            files.check_location(bad)
        assert "hunter2" not in str(caught.value)

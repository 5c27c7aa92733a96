"""Benchmark: cold partitions archived to Parquet, against the same rows in PostgreSQL, in the same run.

1. Size: the quotes of market_data.py (1M, 500 symbols, 5 days) written by tradedb into hourly partitions (the
   default) and into daily ones, then archived; the files' bytes against the partitions' heap (and heap with
   indexes). Goal (issue 19): at least 5x smaller than the heap. TimescaleDB's compression of the same quotes is
   measured by timescale.py (it needs its own server).
2. Reads: 1M quotes of one symbol over one day read as Arrow (``md.quotes(..., as_="arrow")``, a binary COPY
   decoded into Arrow) from PostgreSQL, then archived and read again from the files (each verified by its SHA-256
   on every read). Medians of 3. Goal: at least as fast as PostgreSQL.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pyarrow as pa

import tradedb
from _server import bench_database, bench_server
from market_data import ROUNDS, sample
from tradedb.ops import archive

DAY = datetime(2026, 3, 2, tzinfo=UTC)


def one_symbol(rows: int) -> pa.Table:
    """``rows`` quotes of one symbol spread over one day, a random walk of cents."""
    rng = np.random.default_rng(3)
    offsets = np.sort(rng.integers(0, 86_400 * 1_000_000, rows))
    ts = np.datetime64(DAY.replace(tzinfo=None), "us") + offsets.astype("timedelta64[us]")
    bid = np.round(100 + np.cumsum(rng.integers(-1, 2, rows)) / 100, 2)
    return pa.table(
        {
            "ts": pa.array(ts, pa.timestamp("us")).cast(pa.timestamp("us", tz="UTC")),
            "symbol": pa.array(["ONE"] * rows, pa.string()),
            "bid": bid,
            "ask": bid + 0.01,
            "bid_size": rng.integers(1, 50, rows) * 100.0,
            "ask_size": rng.integers(1, 50, rows) * 100.0,
        }
    )


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="tradedb-bench-archive-", dir="/tmp"))
    try:
        with bench_server() as admin_url:
            sizes(admin_url, folder)
            reads(admin_url, folder / "reads")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def sizes(admin_url: str, folder: Path) -> None:
    data = sample([])
    print(f"\n{data.num_rows:,} quotes, 500 symbols, 5 days; archived with zstd (ids and times delta-encoded)")
    print(f"{'partitions':10} {'files':>6} {'heap MB':>8} {'+indexes MB':>12} {'Parquet MB':>11} {'heap/Parquet':>13}")
    for width in (timedelta(hours=1), timedelta(days=1)):
        with bench_database(admin_url, "tdbbench_arc") as (url, defaults):
            settings = defaults.model_copy(update={"tick_partition_interval": width})
            with tradedb.connect(url, settings=settings) as db:
                db.market_data.write_quotes(data, source="b", create_securities=True)
            report = archive.archive(
                settings=settings,
                url=url,
                location=str(folder / f"sizes-{width.total_seconds():.0f}"),
                after="quotes=1d",
                now=datetime(2027, 1, 1, tzinfo=UTC),
            )
            heap = sum(a.heap_bytes for a in report.archived)
            total = sum(a.total_bytes for a in report.archived)
            parquet = sum(a.file_bytes for a in report.archived)
            files = sum(a.files for a in report.archived)
            label = "hourly" if width < timedelta(days=1) else "daily"
            print(
                f"{label:10} {files:6d} {heap / 1e6:8.1f} {total / 1e6:12.1f} {parquet / 1e6:11.1f} "
                f"{heap / parquet:12.1f}x"
            )
    print("  (goal: Parquet at least 5x smaller than the heap; the files hold every column, verified)")


def reads(admin_url: str, location: Path) -> None:
    data = one_symbol(1_000_000)
    end = DAY + timedelta(days=1)
    with bench_database(admin_url, "tdbbench_arc") as (url, settings), tradedb.connect(url, settings=settings) as db:
        md = db.market_data
        md.write_quotes(data, source="b", create_securities=True)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE data_ingestion.quotes")

        def timed() -> float:
            times = []
            for _ in range(ROUNDS):
                started = time.perf_counter()
                table = md.quotes("ONE", DAY, end, as_="arrow")
                times.append(time.perf_counter() - started)
                assert table.num_rows == data.num_rows
            return statistics.median(times)

        md.quotes("ONE", DAY, DAY + timedelta(hours=1), as_="arrow")  # warm-up
        from_pg = timed()
        started = time.perf_counter()
        report = archive.archive(
            settings=settings, url=url, location=str(location), after="quotes=1d", now=datetime(2027, 1, 1, tzinfo=UTC)
        )
        archive_seconds = time.perf_counter() - started
        from_files = timed()
    n = data.num_rows
    print(f"\nread {n:,} quotes of one symbol (one day, {len(report.archived)} hourly partitions) as Arrow; medians")
    print(f"  from PostgreSQL (binary COPY into Arrow): {from_pg:6.3f} s  {n / from_pg / 1e6:5.2f} M rows/s")
    print(f"  from the Parquet archive (checked):       {from_files:6.3f} s  {n / from_files / 1e6:5.2f} M rows/s")
    print(f"  archive / PostgreSQL: {from_pg / from_files:.2f}x  (goal: at least 1.00x)")
    rate = n / archive_seconds / 1e6
    print(f"  archiving them took {archive_seconds:.2f} s ({rate:.2f} M rows/s, written, read back and checked)")


if __name__ == "__main__":
    main()

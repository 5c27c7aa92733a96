"""Benchmark: the market-data tables as TimescaleDB hypertables against native partitions, in the same run.

A PostgreSQL 15 server of the benchmark's own with TimescaleDB preloaded (`make test-timescale` builds it) holds two
trading databases set up alike, the second converted by ``convert_to_hypertables``. Each gets the quotes of
market_data.py (1M, 500 symbols, 5 days) by server-side binary COPY and by tradedb ``append``, ROUNDS rounds,
medians (chunks and partitions exist before each timed round); then ``latest_quotes`` for 500 symbols. Goals
(issue 19): ingest into hypertables within 10 % of native partitions (server COPY into each as the baseline),
``latest_quotes(500)`` on hypertables within 1.5x native. Last, what the quotes take: TimescaleDB's compression of
every chunk against tradedb's Parquet archive of the native partitions (goal: at least 5x smaller than the heap).
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa

import tradedb
from _server import bench_database
from market_data import BASELINE_COLUMNS, COLUMNS, SYMBOLS, median_seconds, sample, timed_calls
from tradedb.columnar.binary_encode import encode_copy
from tradedb.db.embedded import EmbeddedServer
from tradedb.ops import archive, maintenance
from tradedb.settings import Settings

PG15 = Path("/usr/lib/postgresql/15/bin")


def main() -> None:
    if not list(Path("/usr/lib/postgresql/15/lib").glob("timescaledb-*.so")):
        print("skipped: TimescaleDB is not built for PostgreSQL 15 (make test-timescale builds it)")
        return
    home = Path(tempfile.mkdtemp(prefix="tradedb-bench-ts-", dir="/tmp"))
    home.chmod(0o755)
    server = EmbeddedServer(Settings(_env_file=None, home=home, pg_bindir=PG15))
    server.start()
    try:
        server.configure(maintenance.TIMESCALEDB_SERVER_SETTINGS)
        server.stop()
        server.start()
        run(server.url("postgres"), home)
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


def run(admin_url: str, folder: Path) -> None:
    data = sample([])
    results: dict[str, dict[str, float]] = {}
    latest: dict[str, float] = {}
    sizes: dict[str, tuple[int, int]] = {}
    for kind in ("native", "hypertable"):
        with bench_database(admin_url, f"tdbbench_ts_{kind[:5]}") as (url, settings):
            if kind == "hypertable":
                maintenance.convert_to_hypertables(settings=settings, url=admin_url)
            with tradedb.connect(url, settings=settings) as db:
                md = db.market_data
                md.write_quotes(data, source="warmup", create_securities=True)  # securities and partitions
                ids = md.security_ids([f"B{i:03d}" for i in range(SYMBOLS)])
                id_column = pa.array([ids[s] for s in data["symbol"].to_pylist()], pa.int64())
                by_id = data.drop_columns(["symbol"]).add_column(1, "security_id", id_column)
                binary = folder / f"quotes-{kind}.bin"
                binary.write_bytes(b"".join(bytes(b) for b in encode_copy(by_id, BASELINE_COLUMNS, {"source": "b"})))
                binary.chmod(0o644)
                with psycopg.connect(url, autocommit=True) as conn:

                    def empty(hyper: bool = kind == "hypertable") -> None:
                        # Both keep their containers between rounds, as a live table does: TRUNCATE keeps the
                        # partitions but would drop every chunk, so the hypertable is emptied by DELETE + VACUUM.
                        if hyper:
                            conn.execute("DELETE FROM data_ingestion.quotes")
                            conn.execute("VACUUM data_ingestion.quotes")
                            conn.execute("TRUNCATE data_ingestion.coverage, data_ingestion.last_quotes")
                        else:
                            conn.execute(
                                "TRUNCATE data_ingestion.quotes, data_ingestion.coverage, data_ingestion.last_quotes"
                            )

                    def server_copy(path: Path = binary) -> None:
                        conn.execute(f"COPY data_ingestion.quotes ({COLUMNS}) FROM '{path}' (FORMAT binary)")

                    def append(writers: int = 2) -> None:
                        with tradedb.connect(url, settings=settings) as fresh:
                            fresh.market_data.write_quotes(data, source="b", writers=writers)

                    results[kind] = {
                        "server COPY FROM file (binary)": median_seconds(empty, server_copy),
                        "tradedb append (2 writers)": median_seconds(empty, append),
                        "tradedb append (1 writer)": median_seconds(empty, lambda: append(1)),
                    }
                    times = timed_calls(partial(md.latest_quotes, [f"B{i:03d}" for i in range(SYMBOLS)]))
                    latest[kind] = statistics.median(times)
                    sizes[kind] = stored_size(conn, kind, url, settings, folder)
    n = data.num_rows
    print(f"\n{n:,} quotes, {SYMBOLS} symbols; medians of 3 rounds; PostgreSQL 15 + TimescaleDB, the same server")
    print(f"{'method':32} {'native s':>9} {'hypertable s':>13} {'hypertable/native':>18}")
    for method in results["native"]:
        a, b = results["native"][method], results["hypertable"][method]
        print(f"{method:32} {a:9.2f} {b:13.2f} {a / b:17.2f}x")
    print("  (throughput ratio: above 0.90x meets the goal 'within 10 %'; chunks and partitions exist before timing)")
    (heap, parquet), (before, compressed) = sizes["native"], sizes["hypertable"]
    print(
        f"the same {n:,} quotes stored: heap {heap / 1e6:.1f} MB; TimescaleDB compressed {compressed / 1e6:.1f} MB "
        f"({before / compressed:.1f}x smaller than its {before / 1e6:.1f} MB heap); tradedb's Parquet archive "
        f"{parquet / 1e6:.1f} MB ({heap / parquet:.1f}x smaller than the heap; goal at least 5x)"
    )
    ratio = latest["hypertable"] / latest["native"]
    print(
        f"latest_quotes({SYMBOLS}): native median {latest['native'] * 1000:.2f} ms, hypertables "
        f"{latest['hypertable'] * 1000:.2f} ms ({ratio:.2f}x; goal <= 1.5x)"
    )


def stored_size(
    conn: psycopg.Connection[Any], kind: str, url: str, settings: Settings, folder: Path
) -> tuple[int, int]:
    """Native: (heap bytes, Parquet bytes once archived); hypertable: (heap bytes, bytes once every chunk is
    compressed). The quotes of the last timed round are what is stored."""
    if kind == "hypertable":
        conn.execute("SELECT compress_chunk(c, true) FROM show_chunks('data_ingestion.quotes') c")
        row = conn.execute(
            "SELECT sum(before_compression_table_bytes), sum(after_compression_total_bytes) "
            "FROM chunk_compression_stats('data_ingestion.quotes')"
        ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])
    report = archive.archive(
        settings=settings,
        url=url,
        location=str(folder / "archive"),
        after="quotes=1d",
        now=datetime(2027, 1, 1, tzinfo=UTC),
    )
    return sum(a.heap_bytes for a in report.archived), sum(a.file_bytes for a in report.archived)


if __name__ == "__main__":
    main()

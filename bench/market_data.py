"""Benchmark: 1M quotes (500 symbols, 5 days, hourly partitions) into an empty partitioned table, each method in
the same run, ROUNDS rounds, medians; then latest_quotes for 500 symbols and reading 1M rows.

Writes: server-side ``COPY ... FROM file (FORMAT binary)`` (the limit), raw psycopg binary COPY (write_row),
tradedb ``append``, tradedb ``skip`` (into the empty table, and again when every row is stored), tradedb
``replace`` of stored rows, pandas ``to_sql``. Goals: append >= 90 % of the server-side limit, skip >= 60 %,
append >= 8x pandas. latest_quotes: median <= 1 ms (the kept last quotes) against index probes and DISTINCT ON.
Reads: 1M rows of one symbol into Arrow against ``pandas.read_sql``, goal >= 3x, and against ADBC's PostgreSQL
driver, goal >= 1x. Bars: appends against server COPY of the same bars,
goal >= 0.9x, and the same appends with the foreign key bars had before migration 0006.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import sqlalchemy as sa
from adbc_driver_postgresql import dbapi as adbc

import tradedb
from _server import bench_database, bench_server
from tradedb.columnar.binary_encode import encode_copy
from tradedb.marketdata._reading import id_array
from tradedb.marketdata._sql import LAST_QUOTES, LATEST_QUOTES_DISTINCT_ON

ROWS = int(os.environ.get("TRADEDB_BENCH_QUOTES", "1000000"))
SYMBOLS = 500
DAYS = 5
ROUNDS = 3
START = datetime(2026, 3, 2, tzinfo=UTC)
DBNAME = "tdbbench_md"
COLUMNS = "ts, security_id, bid, ask, bid_size, ask_size, source"
#: The baselines send the columns the generated quotes have (tradedb also sends contributor, NULL here).
BASELINE_COLUMNS = ("ts", "security_id", "bid", "ask", "bid_size", "ask_size")
BARS_COLUMNS = ("ts", "security_id", "timeframe", "open", "high", "low", "close", "volume", "trade_count", "vwap")
BAR_MINUTES = int(os.environ.get("TRADEDB_BENCH_BAR_MINUTES", "600"))


def sample(ids: list[int]) -> pa.Table:
    """ROWS quotes spread over DAYS days and SYMBOLS symbols, in time order."""
    rng = np.random.default_rng(7)
    span = DAYS * 86_400 * 1_000_000
    offsets = np.sort(rng.integers(0, span, ROWS))
    ts = np.datetime64(START.replace(tzinfo=None), "us") + offsets.astype("timedelta64[us]")
    bid = np.round(100 + rng.normal(0, 1, ROWS), 2)
    return pa.table(
        {
            "ts": pa.array(ts, pa.timestamp("us")).cast(pa.timestamp("us", tz="UTC")),
            "symbol": pa.array([f"B{i:03d}" for i in range(SYMBOLS)])
            .take(pa.array(rng.integers(0, SYMBOLS, ROWS)))
            .cast(pa.string()),
            "bid": bid,
            "ask": bid + 0.01,
            "bid_size": rng.integers(1, 50, ROWS) * 100.0,
            "ask_size": rng.integers(1, 50, ROWS) * 100.0,
        }
    )


def bars_sample(ids: dict[str, int]) -> pa.Table:
    """One-minute bars of every symbol over BAR_MINUTES minutes, by security id, consistent OHLC."""
    rng = np.random.default_rng(11)
    minutes = np.arange(BAR_MINUTES)
    security = np.repeat(np.array(list(ids.values()), dtype=np.int64), BAR_MINUTES)
    ts = np.datetime64(START.replace(tzinfo=None), "us") + np.tile(minutes, len(ids)).astype("timedelta64[m]")
    n = len(security)
    open_ = np.round(100 + rng.normal(0, 1, n), 2)
    close = np.round(open_ + rng.normal(0, 0.1, n), 2)
    return pa.table(
        {
            "ts": pa.array(ts.astype("datetime64[us]"), pa.timestamp("us")).cast(pa.timestamp("us", tz="UTC")),
            "security_id": security,
            "timeframe": pa.array(["1m"] * n),
            "open": open_,
            "high": np.maximum(open_, close) + 0.05,
            "low": np.minimum(open_, close) - 0.05,
            "close": close,
            "volume": rng.integers(1, 100, n) * 100.0,
            "trade_count": pa.nulls(n, pa.int64()),
            "vwap": pa.nulls(n, pa.float64()),
        }
    )


def bars_append(conn: psycopg.Connection[Any], md: Any, ids: dict[str, int], folder: Path) -> None:
    """Bar appends against server COPY of the same rows (bars has no foreign key since migration 0006)."""
    bars = bars_sample(ids)
    path = folder / "bars.bin"
    path.write_bytes(b"".join(bytes(b) for b in encode_copy(bars, BARS_COLUMNS, {"source": "b"})))
    path.chmod(0o644)

    def empty() -> None:
        conn.execute("TRUNCATE data_ingestion.bars, data_ingestion.coverage")

    def server_copy() -> None:
        conn.execute(f"COPY data_ingestion.bars ({', '.join(BARS_COLUMNS)}, source) FROM '{path}' (FORMAT binary)")

    md.write_bars(bars.slice(0, 1), source="warmup")  # the month's partition exists before anything is timed
    server = median_seconds(empty, server_copy)

    def tradedb_append() -> None:
        md.write_bars(bars, source="b")

    ours = median_seconds(empty, tradedb_append)
    # The same appends with the foreign key bars had before migration 0006 (a check per row).
    fk = (
        "ALTER TABLE data_ingestion.bars ADD CONSTRAINT bench_fk FOREIGN KEY (security_id) REFERENCES shared.securities"
    )
    conn.execute(fk)
    with_fk = median_seconds(empty, tradedb_append)
    conn.execute("ALTER TABLE data_ingestion.bars DROP CONSTRAINT bench_fk")
    n = bars.num_rows
    print(f"\n{n:,} one-minute bars, {len(ids)} symbols; median of {ROUNDS} rounds")
    print(f"  server COPY FROM file (binary) {server:6.2f} s  {n / server:11,.0f} rows/s  100%")
    print(f"  tradedb append (write_bars)    {ours:6.2f} s  {n / ours:11,.0f} rows/s  {server / ours:4.0%}")
    print(f"  same, with a foreign key       {with_fk:6.2f} s  {n / with_fk:11,.0f} rows/s  {server / with_fk:4.0%}")


def timed_calls(call: Callable[[], object]) -> list[float]:
    """100 timed calls after a warm-up one, sorted."""
    call()
    times = []
    for _ in range(100):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return sorted(times)


def median_seconds(setup: Callable[[], None], run: Callable[[], None]) -> float:
    times = []
    for _ in range(ROUNDS):
        setup()
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    with bench_server() as admin_url, bench_database(admin_url, DBNAME) as (url, settings):
        db = tradedb.connect(url, settings=settings)
        md = db.market_data
        data = sample([])
        # Securities and partitions first (every method then writes into the same, empty, partitioned table).
        md.write_quotes(data, source="warmup", create_securities=True)
        ids = md.security_ids([f"B{i:03d}" for i in range(SYMBOLS)])
        id_column = pa.array([ids[s] for s in data["symbol"].to_pylist()], pa.int64())
        by_id = data.drop_columns(["symbol"]).add_column(1, "security_id", id_column)
        conn = psycopg.connect(url, autocommit=True)

        def empty() -> None:
            conn.execute("TRUNCATE data_ingestion.quotes, data_ingestion.coverage, data_ingestion.last_quotes")

        folder = Path(tempfile.mkdtemp(prefix="tradedb-bench-", dir="/tmp"))
        folder.chmod(0o755)
        binary = folder / "quotes.bin"
        binary.write_bytes(b"".join(bytes(b) for b in encode_copy(by_id, BASELINE_COLUMNS, {"source": "b"})))
        binary.chmod(0o644)
        results: dict[str, float] = {}

        def server_copy() -> None:
            conn.execute(f"COPY data_ingestion.quotes ({COLUMNS}) FROM '{binary}' (FORMAT binary)")

        results["server COPY FROM file (binary)"] = median_seconds(empty, server_copy)
        rows = [
            (*r, "b")
            for r in zip(
                by_id["ts"].to_pylist(),
                by_id["security_id"].to_pylist(),
                *(by_id[c].to_pylist() for c in ("bid", "ask", "bid_size", "ask_size")),
                strict=True,
            )
        ]

        def raw_copy() -> None:
            statement = f"COPY data_ingestion.quotes ({COLUMNS}) FROM STDIN (FORMAT binary)"
            with conn.transaction(), conn.cursor() as cur, cur.copy(statement) as copy:
                copy.set_types(["timestamptz", "int8", "float8", "float8", "float8", "float8", "text"])
                for row in rows:
                    copy.write_row(row)

        results["psycopg binary COPY (write_row)"] = median_seconds(empty, raw_copy)

        def tradedb_write(mode: tradedb.OnConflict) -> Callable[[], None]:
            def run() -> None:
                with tradedb.connect(url, settings=settings) as fresh:  # symbols resolved within the timing
                    fresh.market_data.write_quotes(data, source="b", on_conflict=mode)

            return run

        results["tradedb append"] = median_seconds(empty, tradedb_write("append"))
        results["tradedb skip"] = median_seconds(empty, tradedb_write("skip"))
        # The same calls again on a table that holds every row: the staging path (COPY to a temp table, one
        # INSERT ... WHERE NOT EXISTS / DELETE + INSERT per batch).
        results["tradedb skip, all stored"] = median_seconds(lambda: None, tradedb_write("skip"))
        results["tradedb replace, all stored"] = median_seconds(lambda: None, tradedb_write("replace"))
        engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
        frame = by_id.append_column("source", pa.array(["b"] * ROWS)).to_pandas()

        def pandas_to_sql() -> None:
            frame.to_sql("quotes", engine, schema="data_ingestion", if_exists="append", index=False, chunksize=10_000)

        results["pandas to_sql"] = median_seconds(empty, pandas_to_sql)

        limit = results["server COPY FROM file (binary)"]
        print(f"\n{ROWS:,} quotes, {SYMBOLS} symbols, {DAYS} days, hourly partitions; median of {ROUNDS} rounds")
        print(f"{'method':34} {'seconds':>8} {'rows/s':>11} {'vs server':>10} {'vs pandas':>10}")
        for name, seconds in results.items():
            rate = ROWS / seconds
            print(
                f"{name:34} {seconds:8.2f} {rate:11,.0f} {limit / seconds:9.0%} "
                f"{results['pandas to_sql'] / seconds:9.1f}x"
            )

        # latest_quotes on the loaded table (tradedb wrote it last... reload once with tradedb).
        empty()
        md.write_quotes(data, source="b")
        # Steady state: vacuumed and analyzed, so autovacuum does not compete with the timed reads.
        conn.execute("VACUUM ANALYZE data_ingestion.quotes")
        conn.execute("VACUUM ANALYZE data_ingestion.coverage")
        symbols = [f"B{i:03d}" for i in range(SYMBOLS)]
        id_list = list(ids.values())
        lateral = timed_calls(lambda: md.latest_quotes(symbols))
        # The floor under it on this machine: one round trip, and psycopg running the same statement (the kept
        # last quotes of the 500, 500 rows back) on a connection it holds.
        ping = timed_calls(lambda: conn.execute("SELECT 1").fetchall())
        kept_rows = {"ids": id_array(id_list), "source": None}
        wire = timed_calls(lambda: conn.execute(LAST_QUOTES, kept_rows).fetchall())
        distinct = []
        for _ in range(5):
            started = time.perf_counter()
            db.fetch_all(LATEST_QUOTES_DISTINCT_ON, {"ids": id_list})
            distinct.append(time.perf_counter() - started)
        # The same calls without the kept last quotes: one index probe per symbol (latest_quotes before them).
        conn.execute("TRUNCATE data_ingestion.last_quotes")
        probes = timed_calls(lambda: md.latest_quotes(symbols))
        kept_ms, probes_ms = statistics.median(lateral) * 1000, statistics.median(probes) * 1000
        print(
            f"\nlatest_quotes({SYMBOLS} symbols): median {kept_ms:.2f} ms, p99 {lateral[98] * 1000:.2f} ms from the "
            f"kept last quotes; {probes_ms:.2f} ms by index probes ({probes_ms / kept_ms:.1f}x slower); DISTINCT ON "
            f"median {statistics.median(distinct) * 1000:.0f} ms ({statistics.median(distinct) * 1000 / kept_ms:.0f}x)"
        )
        wire_ms, ping_ms = statistics.median(wire) * 1000, statistics.median(ping) * 1000
        print(
            f"  floor on this machine: psycopg running the kept-quotes statement {wire_ms:.2f} ms (tradedb "
            f"{kept_ms / wire_ms:.2f}x that), one round trip (SELECT 1) {ping_ms:.2f} ms"
        )

        # Reading 1M rows of one symbol.
        one = by_id.set_column(1, "security_id", pa.array(np.full(ROWS, ids["B000"]), pa.int64()))
        md.write_quotes(one, source="read")
        start, end = START, START + timedelta(days=DAYS)
        query = (
            "SELECT ts, bid, ask, bid_size, ask_size, source FROM data_ingestion.quotes "
            "WHERE security_id = %(id)s AND source = 'read' ORDER BY ts"
        )
        # ADBC reads the same columns tradedb returns, in the same order (contributor included).
        adbc_query = (
            "SELECT ts, bid, ask, bid_size, ask_size, contributor, source FROM data_ingestion.quotes "  # noqa: S608
            f"WHERE security_id = {ids['B000']} AND source = 'read' ORDER BY ts"
        )
        reads: dict[str, list[float]] = {"arrow": [], "pandas": [], "adbc": [], "read_sql": []}
        with adbc.connect(url) as adbc_conn:
            for _ in range(ROUNDS):
                for kind in ("arrow", "pandas"):
                    started = time.perf_counter()
                    got: Any = md.quotes("B000", start, end, source="read", as_=kind)
                    reads[kind].append(time.perf_counter() - started)
                    assert len(got) == ROWS
                started = time.perf_counter()
                with adbc_conn.cursor() as cursor:
                    cursor.execute(adbc_query)
                    assert cursor.fetch_arrow_table().num_rows == ROWS
                reads["adbc"].append(time.perf_counter() - started)
                started = time.perf_counter()
                frame_back = pd.read_sql(query, engine, params={"id": ids["B000"]})
                reads["read_sql"].append(time.perf_counter() - started)
                assert len(frame_back) == ROWS
        baseline = statistics.median(reads["read_sql"])
        adbc_seconds = statistics.median(reads["adbc"])
        print(f"\nreading {ROWS:,} rows of one symbol (median of {ROUNDS}):")
        for kind, label in (
            ("arrow", "tradedb as_='arrow'"),
            ("pandas", "tradedb as_='pandas'"),
            ("adbc", "ADBC fetch_arrow_table"),
            ("read_sql", "pandas.read_sql"),
        ):
            seconds = statistics.median(reads[kind])
            print(
                f"  {label:22} {seconds:6.2f} s  {ROWS / seconds:11,.0f} rows/s  {baseline / seconds:5.1f}x read_sql"
                f"  {adbc_seconds / seconds:5.2f}x ADBC"
            )
        bars_append(conn, md, ids, folder)
        conn.close()
        db.close()
        engine.dispose()


if __name__ == "__main__":
    main()

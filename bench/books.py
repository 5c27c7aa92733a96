"""Benchmark: order books and replays, every figure against a baseline measured in the same run.

1. Chronological replay of 1M stored events into Arrow (``db.replay.chronological``) against a raw
   ``COPY (the same query) TO STDOUT`` whose bytes are only read (CSV and binary; the faster is the baseline).
   Goal: >= 0.8x.
2. Rebuilding the book over the whole Databento ESM4 and LOBSTER AMZN files (in memory): the compiled engine against
   the plain-Python per-event reference book of the tests (``tests/reference_book.py``). Goal: >= 10x.
3. ``book_at`` at random instants of a 1M-event day with snapshots every minute: median latency, against the same
   instants without snapshots. Goal: median under 10 ms.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pyarrow as pa

import tradedb
from _server import bench_database, bench_server
from tradedb.books import _engine as engine
from tradedb.marketdata import files

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.reference_book import ReferenceBook, apply_rows  # noqa: E402 - the repository root is on the path now

EVENTS = int(os.environ.get("TRADEDB_BENCH_BOOK_EVENTS", "1000000"))
ROUNDS = 3
DBNAME = "tdbbench_books"
DAY = datetime(2026, 3, 3, 14, 30, tzinfo=UTC)
SPAN = timedelta(hours=6, minutes=30)
DATA = Path(os.environ.get("TRADEDB_SHARED_DATA", ROOT.parent / "shared" / "data"))


def day_of_events(n: int) -> pa.Table:
    """A trading day of one symbol: orders added around a drifting mid, cancelled, executed, a book of ~2,000."""
    rng = np.random.default_rng(3)
    times = np.sort(rng.integers(0, int(SPAN / timedelta(microseconds=1)), n))
    kinds, refs, sides, prices, sizes = [], [], [], [], []
    live: list[tuple[str, str, float, float]] = []
    mid = 100.0
    draws = rng.random((n, 4))
    for i in range(n):
        mid += (draws[i, 3] - 0.5) * 0.002
        if not live or (draws[i, 0] < 0.52 and len(live) < 4_000):
            side = "buy" if draws[i, 1] < 0.5 else "sell"
            ticks = 1 + int(draws[i, 2] * 40)
            price = round(round(mid * 100) / 100 + (-ticks if side == "buy" else ticks) * 0.01, 2)
            order = (f"o{i}", side, price, float(1 + int(draws[i, 2] * 1000) % 9) * 100)
            live.append(order)
            kinds.append("new")
        else:
            j = int(draws[i, 2] * len(live))
            order = live[j]
            live[j] = live[-1]
            live.pop()
            kinds.append("cancel" if draws[i, 1] < 0.85 else "execute")
        refs.append(order[0])
        sides.append(order[1])
        prices.append(order[2])
        sizes.append(order[3])
    stamps = np.datetime64(DAY.replace(tzinfo=None), "us") + times.astype("timedelta64[us]")
    return pa.table(
        {
            "ts": pa.array(stamps).cast(pa.timestamp("us", tz="UTC")),
            "event_type": kinds,
            "order_ref": refs,
            "side": sides,
            "price": prices,
            "size": sizes,
            "sequence": np.arange(n, dtype=np.int64),
        }
    )


def best(values: list[float]) -> float:
    return statistics.median(values)


def replay_vs_copy(db: tradedb.Database, url: str) -> None:
    ids = db.market_data.security_ids(["BOOK"])
    # The very query the replay sends, as a raw COPY (literals: COPY takes no parameters).
    query = (
        "SELECT ts, security_id, source, event_type, order_ref, side, price, size, sequence "  # noqa: S608
        f"FROM data_ingestion.order_book_events WHERE security_id = ANY('{{{ids['BOOK']}}}'::bigint[]) "
        f"AND ts >= '{DAY.isoformat()}' AND ts < '{(DAY + SPAN).isoformat()}' "
        "ORDER BY ts, security_id, source, sequence"
    )
    timings: dict[str, list[float]] = {"COPY csv": [], "COPY binary": [], "replay": []}
    with psycopg.connect(url) as conn:
        for _ in range(ROUNDS):
            for fmt in ("csv", "binary"):
                started = time.perf_counter()
                with conn.cursor().copy(f"COPY ({query}) TO STDOUT (FORMAT {fmt})") as copy:
                    for _data in copy:
                        pass
                timings[f"COPY {fmt}"].append(time.perf_counter() - started)
            started = time.perf_counter()
            rows = sum(b.num_rows for b in db.replay.chronological(["BOOK"], DAY, DAY + SPAN))
            timings["replay"].append(time.perf_counter() - started)
    baseline = min(best(timings["COPY csv"]), best(timings["COPY binary"]))
    print(f"\nchronological replay of {rows:,} events, medians of {ROUNDS}:")
    for name, values in timings.items():
        seconds = best(values)
        print(f"  {name:<14} {seconds:6.3f} s  {rows / seconds:>11,.0f} events/s  {baseline / seconds:5.2f}x")
    print(f"  replay into Arrow: {baseline / best(timings['replay']):.2f}x the faster raw COPY (goal >= 0.8x)")


def rebuild_vs_python() -> None:
    tables = []
    mbo = DATA / "02_tick_quotes_trades" / "databento_glbx_esm4_mbo_2024-05-08T00-00-00.csv"
    lobster = DATA / "01_lobster_amzn_2012-06-21_L1" / "AMZN_2012-06-21_34200000_57600000_message_1.csv"
    if not mbo.is_file() or not lobster.is_file():
        print(f"\nbook rebuild: real data not found at {DATA}; skipped")
        return
    tables.append(files.read_mbo(mbo).drop_columns(["symbol"]))
    events = files.read_lobster(lobster).events
    tables.append(events.set_column(0, "ts", events["ts"].cast(pa.timestamp("us", tz="UTC"))))
    rows = [t.to_pylist() for t in tables]
    n = sum(t.num_rows for t in tables)
    for table in tables:  # compile (numba caches it on disk)
        engine.Engine(engine.POLICIES["log"]).feed(table)
    ours, python = [], []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for table in tables:
            engine.Engine(engine.POLICIES["log"]).feed(table)
        ours.append(time.perf_counter() - started)
        started = time.perf_counter()
        for part in rows:
            apply_rows(ReferenceBook("log"), part)
        python.append(time.perf_counter() - started)
    print(f"\nbook rebuild over Databento ESM4 + LOBSTER AMZN ({n:,} events), medians of {ROUNDS}:")
    print(f"  tradedb engine        {best(ours):7.4f} s  {n / best(ours):>12,.0f} events/s")
    print(f"  plain-Python loop     {best(python):7.4f} s  {n / best(python):>12,.0f} events/s")
    print(f"  tradedb: {best(python) / best(ours):.1f}x the plain-Python loop (goal >= 10x)")


def book_at_latency(db: tradedb.Database) -> None:
    rng = np.random.default_rng(5)
    instants = [
        DAY + timedelta(microseconds=int(x)) for x in rng.integers(0, int(SPAN / timedelta(microseconds=1)), 60)
    ]

    def measure() -> list[float]:
        out = []
        for at in instants:
            started = time.perf_counter()
            db.books.book_at("BOOK", at, depth=10)
            out.append(time.perf_counter() - started)
        return out

    db.execute("DELETE FROM data_ingestion.order_book_snapshots")
    without = measure()[:10]  # each replays the day from its start: a few are enough
    started = time.perf_counter()
    written = db.books.write_snapshots("BOOK", DAY, DAY + SPAN, every="1min")
    took = time.perf_counter() - started
    with_snapshots = measure()
    print(
        f"\nbook_at at random instants of a {EVENTS:,}-event day "
        f"({written} snapshots, one a minute, written in {took:.1f} s):"
    )
    print(f"  without snapshots: median {best(without) * 1000:8.1f} ms")
    print(
        f"  with snapshots:    median {best(with_snapshots) * 1000:8.1f} ms, p90 "
        f"{np.percentile(with_snapshots, 90) * 1000:.1f} ms (goal: median < 10 ms); "
        f"{best(without) / best(with_snapshots):.0f}x faster"
    )


def main() -> None:
    rebuild_vs_python()
    with (
        bench_server() as admin_url,
        bench_database(admin_url, DBNAME) as (url, settings),
        tradedb.connect(url, settings=settings) as db,
    ):
        started = time.perf_counter()
        data = day_of_events(EVENTS)
        db.market_data.write_order_book_events(data, source="bench", symbol="BOOK", create_securities=True)
        print(f"{EVENTS:,} events generated and written in {time.perf_counter() - started:.1f} s")
        replay_vs_copy(db, url)
        book_at_latency(db)


if __name__ == "__main__":
    main()

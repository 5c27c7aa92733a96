"""Benchmark: the database log handler, every figure against a baseline measured in the same run.

1. Caller-side cost per record (the ``logger.info`` call) with ``DatabaseHandler`` against ``logging.FileHandler``
   writing the same records to a local file: the calling thread's CPU time, and the wall time (which also holds
   the writer thread's work, sharing the GIL). Goal: at most 2x.
2. Records per second the handler's writer stores (rows built from the queued records, then COPY) against raw
   binary COPY of the same rows (built beforehand, one ``copy.write_row`` each). Goal: at least 0.8x. Also
   printed: the end-to-end rate of one process logging flat out (callers and writer share the GIL).
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from _server import bench_database, bench_server
from tradedb.observe import DatabaseHandler
from tradedb.observe import records as rec
from tradedb.observe.handler import _COPY, _TABLES
from tradedb.settings import Settings

RECORDS = 100_000
ROUNDS = 3
DBNAME = "tdbbench_observe"


def log_many(logger: logging.Logger, n: int) -> tuple[float, float]:
    """Log n records like a service would (a formatted message, two extras); return the calling thread's CPU
    seconds and the wall seconds the calls took (the wall time includes waiting for the GIL while the handler's
    writer thread works: in one process, its CPU is the callers' too)."""
    cpu, wall = time.thread_time(), time.perf_counter()
    for i in range(n):
        logger.info("order %d filled at %s", i, "101.25", extra={"order_id": i, "venue": "XNAS"})
    return time.thread_time() - cpu, time.perf_counter() - wall


def fresh_logger(handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(f"bench.observe.{id(handler)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def truncate(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE logging.system_logs")


def handler_round(url: str, settings: Settings, folder: Path, *, held: bool) -> tuple[tuple[float, float], float]:
    """Caller seconds and records/s of one round through DatabaseHandler (defaults: batches of 1000, 1 s).

    ``held``: the records are queued before the writer starts on them, so the rate is the writer's alone (rows
    built from records, stored by COPY in its batches of 1000). Otherwise the rate runs from the first call to the
    end of ``flush()``: callers and writer share the GIL.
    """
    truncate(url)
    handler = DatabaseHandler(url, settings=settings, service="bench", spill_dir=folder)
    if held:
        # White-box: the queue filled at once (what emit() appends), so only the writer's work is timed.
        caller = (0.0, 0.0)
        handler._queue.extend(captures())
        handler.counts["accepted"] += RECORDS
        started = time.perf_counter()
        handler._wake.set()
    else:
        started = time.perf_counter()
        caller = log_many(fresh_logger(handler), RECORDS)
    assert handler.flush(timeout=300)
    stored = RECORDS / (time.perf_counter() - started)
    handler.close()
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM logging.system_logs").fetchone()
    assert row is not None
    assert row[0] == RECORDS, row
    return caller, stored


def file_round(folder: Path) -> tuple[float, float]:
    handler = logging.FileHandler(folder / "bench.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    caller = log_many(fresh_logger(handler), RECORDS)
    handler.close()
    return caller


def captures() -> list[rec.Capture]:
    out = []
    for i in range(RECORDS):
        record = logging.LogRecord("bench", logging.INFO, __file__, 1, "order %d filled at %s", (i, "101.25"), None)
        record.order_id = i
        record.venue = "XNAS"
        out.append(rec.capture(record, i + 1))
    return out


def same_rows() -> list[tuple[Any, ...]]:
    return [rec.log_row(c, "bench", 1) for c in captures()]


def copy_round(url: str, rows: list[tuple[Any, ...]]) -> float:
    """Records/s of raw binary COPY of prebuilt rows (json.dumps of the data column, psycopg's default)."""
    truncate(url)
    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        with conn.cursor() as cursor, cursor.copy(_COPY[rec.SYSTEM_LOGS]) as copy:
            copy.set_types(list(_TABLES[rec.SYSTEM_LOGS][1]))
            for row in rows:
                copy.write_row(row)
        conn.commit()
        return RECORDS / (time.perf_counter() - started)


def main() -> None:
    with bench_server() as admin, bench_database(admin, DBNAME) as (url, settings):
        rows = same_rows()
        callers, stored, together, files, raw = [], [], [], [], []
        with tempfile.TemporaryDirectory(prefix="tradedb-bench-logs-") as tmp:
            folder = Path(tmp)
            for _ in range(ROUNDS):  # interleaved: the machine's drift hits both alike
                files.append(file_round(folder))
                caller, rate = handler_round(url, settings, folder / "spill", held=False)
                callers.append(caller)
                together.append(rate)
                stored.append(handler_round(url, settings, folder / "spill", held=True)[1])
                raw.append(copy_round(url, rows))
        for label, index in (("CPU of the calling thread", 0), ("wall time of the calls", 1)):
            per_db = statistics.median(c[index] for c in callers) / RECORDS * 1e6
            per_file = statistics.median(f[index] for f in files) / RECORDS * 1e6
            print(f"caller cost per record, {label}: DatabaseHandler {per_db:.2f} us, FileHandler {per_file:.2f} us")
            print(f"  ratio {per_db / per_file:.2f}x (goal <= 2x)")
        handler_rate, copy_rate = statistics.median(stored), statistics.median(raw)
        print(f"stored: handler {handler_rate:,.0f} records/s, raw binary COPY {copy_rate:,.0f} rows/s")
        print(f"  ratio {handler_rate / copy_rate:.2f}x (goal >= 0.8x)")
        end_to_end = statistics.median(together)
        print(f"end to end (callers and writer at once, one process): {end_to_end:,.0f} records/s")


if __name__ == "__main__":
    main()

"""Benchmark: tradedb through a Citus coordinator against a single server, side by side in one run.

A single PostgreSQL 15 server and a Citus cluster (a coordinator and two workers, PostgreSQL 15 + Citus 13.2,
`make test-citus` builds it) on this one machine, each holding a trading database set up by ``tradedb setup``
(on the coordinator: market data distributed by security, execution by account). One machine, so the point is
the overhead, not scale.
Measured: tradedb's append of the 1M quotes of market_data.py (medians of 3 rounds; goal: the cluster at least
0.5x the single server), ``record_fill`` with the order's account given and without it (execution distributed by
account on the cluster: one round trip from the client either way; the statements the coordinator sends to the
account's worker for one fill are counted), ``latest_quotes(500)`` (goal: under 20 ms on the cluster), a read of
one security (one shard) and a count over every security (every shard). Last, the scaling model on paper.
"""

from __future__ import annotations

import statistics
import sys
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

import tradedb
from _server import bench_database
from market_data import SYMBOLS, median_seconds, sample, timed_calls

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' server helpers
from tests.servers import CitusCluster, PgInstance

PG15 = Path("/usr/lib/postgresql/15/bin")
FILLS = 300
#: Shards per co-location group on the cluster: Citus's default, and two per worker core of this machine.
SHARDS = (32, 4)


def main() -> None:
    if not (Path("/usr/lib/postgresql/15/lib") / "citus.so").exists():
        print("skipped: Citus is not built for PostgreSQL 15 (make test-citus builds it)")
        return
    single = PgInstance(bindir=PG15, prefix="tradedb-bench-single-").start()
    cluster = CitusCluster(PG15).start()
    try:
        results = {"single": measure(single.url())}
        for shards in SHARDS:
            results[f"{shards} shards"] = measure(cluster.coordinator.url(), citus_shards=shards)
    finally:
        single.cleanup()
        cluster.cleanup()
    report(results)


def measure(admin_url: str, **overrides: Any) -> dict[str, float]:
    data = sample([])
    out: dict[str, float] = {"rows": data.num_rows}
    with (
        bench_database(admin_url, f"tdbbench_citus_{overrides.get('citus_shards', 0)}", **overrides) as (url, settings),
        tradedb.connect(url, settings=settings) as db,
        psycopg.connect(url, autocommit=True) as conn,
    ):
        md = db.market_data
        md.write_quotes(data, source="warmup", create_securities=True)  # securities and partitions

        def empty() -> None:
            conn.execute("TRUNCATE data_ingestion.quotes, data_ingestion.coverage, data_ingestion.last_quotes")

        def append() -> None:
            with tradedb.connect(url, settings=settings) as fresh:
                fresh.market_data.write_quotes(data, source="b")

        out["append s"] = median_seconds(empty, append)
        symbols = [f"B{i:03d}" for i in range(SYMBOLS)]
        out["latest_quotes(500) ms"] = statistics.median(timed_calls(lambda: md.latest_quotes(symbols))) * 1000
        one = md.security_ids(["B007"])["B007"]
        out["one security read ms"] = _median_ms(
            lambda: conn.execute("SELECT count(*) FROM data_ingestion.quotes WHERE security_id = %s", (one,))
        )
        out["every security count ms"] = _median_ms(lambda: conn.execute("SELECT count(*) FROM data_ingestion.quotes"))
        out.update(_fills(db, conn))
    return out


def _median_ms(run: Callable[[], object]) -> float:
    run()
    times = []
    for _ in range(20):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def _fills(db: tradedb.Database, conn: psycopg.Connection[Any]) -> dict[str, float]:
    conn.execute("INSERT INTO execution.accounts (account_id, name) VALUES ('BENCH', 'bench') ON CONFLICT DO NOTHING")
    row = conn.execute(
        "INSERT INTO execution.orders (client_order_id, account_id, security_id, side, order_type, quantity, status)"
        " SELECT gen_random_uuid(), 'BENCH', security_id, 'buy', 'market', 1000000000000, 'submitted'"
        " FROM shared.securities WHERE symbol = 'B001' RETURNING order_id"
    ).fetchone()
    assert row is not None
    order = int(row[0])
    out = {}
    for name, account in (("fills/s, account given", "BENCH"), ("fills/s, account looked up", None)):
        rates = []
        for _ in range(3):
            started = time.perf_counter()
            for _ in range(FILLS):
                db.execution.record_fill(uuid.uuid4().hex, order, 1, Decimal("100.25"), account_id=account)
            rates.append(FILLS / (time.perf_counter() - started))
        out[name] = statistics.median(rates)
    # What one fill sends from the coordinator to the workers (Citus logs each remote command when asked).
    commands: list[str] = []
    conn.add_notice_handler(lambda notice: commands.append(str(notice.message_primary)))
    conn.execute("SET client_min_messages = log")
    on_citus = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'citus'").fetchone() is not None
    if on_citus:
        conn.execute("SET citus.log_remote_commands = on")
    commands.clear()
    conn.execute(
        "SELECT duplicate FROM execution.record_fill(%s, %s, 1, 100.25, 0, NULL, NULL, NULL, true, 'BENCH')",
        (uuid.uuid4().hex, order),
    )
    out["remote commands per fill"] = sum(1 for c in commands if c.startswith("issuing"))
    conn.execute("RESET ALL")
    return out


def report(results: dict[str, dict[str, float]]) -> None:
    single = results["single"]
    rows = single["rows"]
    names = [n for n in results if n != "single"]
    print(f"\n{rows:,.0f} quotes, {SYMBOLS} symbols; one machine; PostgreSQL 15 single server vs Citus 13.2 (1 + 2)")
    print(f"{'measure':26} {'single':>10}" + "".join(f" {n:>10} {'/single':>8}" for n in names))
    measures = {
        "append rows/s": {n: rows / r["append s"] for n, r in results.items()},
        **{key: {n: r[key] for n, r in results.items()} for key in MEASURES},
    }
    for key, values in measures.items():
        line = f"{key:26} {values['single']:>10,.1f}"
        line += "".join(
            f" {values[n]:>10,.1f} " + (f"{values[n] / values['single']:>7.2f}x" if values["single"] else f"{'-':>8}")
            for n in names
        )
        print(line)
    print("goals: append through the coordinator >= 0.5x the single server; latest_quotes(500) on the cluster < 20 ms")
    print(
        "record_fill: one statement, one round trip from the client on both; on the cluster the coordinator sends the"
        " fill's statements to the account's worker (remote commands per fill above), and a fill without its account"
        " first asks every shard of the orders for it"
    )
    # The model: a worker takes its share of the rows at the rate measured here (the workers share this machine's
    # two cores with the coordinator, so this is a floor); the coordinator routes every row, and its routing cost
    # is what the cluster adds over the single server.
    best = max(names, key=lambda n: measures["append rows/s"][n])
    ingest = measures["append rows/s"]
    per_worker = ingest[best] / 2
    route_us = max(1e6 / ingest[best] - 1e6 / ingest["single"], 0.0)
    router_cap = 1e6 / route_us if route_us else float("inf")
    fan_out_ms = results[best]["every security count ms"] - results[best]["one security read ms"]
    print(
        f"\nscaling model ({best}): {per_worker:,.0f} rows/s per worker here; routing adds {route_us:.2f} us a row on"
    )
    print(f"  the coordinator, so one coordinator routes at most {router_cap:,.0f} rows/s; a query over every shard")
    print(f"  costs {fan_out_ms:.1f} ms more than a one-shard read (its tasks run in parallel on the workers)")
    for workers in (4, 16):
        print(
            f"  {workers:>2} workers: storage {workers * per_worker:,.0f} rows/s; through one coordinator"
            f" {min(workers * per_worker, router_cap):,.0f} rows/s (COPY through every node lifts the router's cap)"
        )


MEASURES = (
    "fills/s, account given",
    "fills/s, account looked up",
    "remote commands per fill",
    "latest_quotes(500) ms",
    "one security read ms",
    "every security count ms",
)


if __name__ == "__main__":
    main()

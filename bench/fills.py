"""Benchmark: fills, before and after migration 0015, beside pgbench of the same statement.

- ``before``: what record_fill did at revision 0014 (9 statements in a transaction, the audit trigger chaining rows
  under one database-wide lock), on a database downgraded to 0014, issued straight with psycopg;
- ``tradedb``: ``db.execution.record_fill`` at head (one call of ``execution.record_fill``, one round trip);
- ``psycopg``: that same call on a bare autocommit psycopg connection;
- ``pgbench``: that same call from pgbench (the server's limit for it).

Each writer fills its own order on its own position (1 and 4 writers). Then one batch of 10,000 fills
(``record_fills``) on 100 orders. Goals (issue 18): one writer >= 2x before; 4 writers >= 3x one writer; a batch
>= 10x the single-fill rate. Events to the outbox are on everywhere. Figures are medians of ROUNDS rounds.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

import tradedb
from _server import bench_server
from tradedb.db.embedded import EmbeddedServer
from tradedb.db.outbox_rules import emit_params
from tradedb.execution import _rules as base
from tradedb.execution._sql import RECORD_FILL
from tradedb.ops import migrate
from tradedb.ops import setup as provision
from tradedb.settings import Settings, with_dbname

DURATION = 3.0
ROUNDS = 3
WRITERS = (1, 4)
BATCH = 10_000
PREFIX = "tdbbench_"

# --- record_fill as revision 0014 issued it (frozen here: the package no longer has these statements) ---------
OLD_ORDER_FOR_UPDATE = "SELECT * FROM execution.orders WHERE order_id = %s FOR UPDATE"
OLD_FILL_BY_EXECUTION_ID = "SELECT * FROM execution.fills WHERE execution_id = %s"
OLD_POSITION_FOR_UPDATE = "SELECT * FROM execution.positions WHERE account_id = %s AND security_id = %s FOR UPDATE"
OLD_CREATE_POSITION = """
INSERT INTO execution.positions (account_id, security_id) VALUES (%s, %s)
ON CONFLICT (account_id, security_id) DO NOTHING
"""
OLD_INSERT_FILL = """
INSERT INTO execution.fills (execution_id, order_id, account_id, security_id, side, quantity, price, commission,
    liquidity, executed_at, settlement_date)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
RETURNING *
"""
OLD_UPDATE_ORDER_FILLED = """
UPDATE execution.orders SET filled_quantity = %s, avg_fill_price = %s, status = %s, version = version + 1,
    updated_at = now()
WHERE order_id = %s RETURNING *
"""
OLD_INSERT_EVENT_EMIT = """
WITH order_event AS (
    INSERT INTO execution.order_events (order_id, account_id, from_status, to_status, reason, payload)
    VALUES (%s, %s, %s, %s, %s, %s)
) SELECT shared.emit_versioned(%s::jsonb)
"""
OLD_UPDATE_POSITION = """
UPDATE execution.positions SET quantity = %s, avg_price = %s, realized_pnl = %s, total_commission = %s,
    opened_at = CASE WHEN %s = 0 THEN NULL WHEN quantity = 0 OR sign(quantity) <> sign(%s) THEN %s
                     ELSE opened_at END,
    updated_at = now(), version = version + 1
WHERE account_id = %s AND security_id = %s RETURNING *
"""


def before_fill(conn: psycopg.Connection, execution_id: str, order_id: int, quantity: Decimal, price: Decimal) -> None:
    """record_fill of revision 0014: its statements, its arithmetic and its events, straight on psycopg."""
    rows = conn.cursor(row_factory=dict_row)
    with conn.transaction():
        order = rows.execute(OLD_ORDER_FOR_UPDATE, (order_id,)).fetchone()
        assert order is not None
        conn.execute(OLD_FILL_BY_EXECUTION_ID, (execution_id,)).fetchone()
        key = (order["account_id"], order["security_id"])
        pos = rows.execute(OLD_POSITION_FOR_UPDATE, key).fetchone()
        if pos is None:
            conn.execute(OLD_CREATE_POSITION, key)
            pos = rows.execute(OLD_POSITION_FOR_UPDATE, key).fetchone()
        assert pos is not None
        state = base.PositionState(pos["quantity"], pos["avg_price"], pos["realized_pnl"], pos["total_commission"])
        after = base.apply_fill(state, order["side"], quantity, price)
        now = datetime.now(UTC)
        fill = rows.execute(
            OLD_INSERT_FILL,
            (execution_id, order_id, *key, order["side"], quantity, price, Decimal(0), None, now, None),
        ).fetchone()
        filled = order["filled_quantity"] + quantity
        average = base.average(order["filled_quantity"], order["avg_fill_price"], quantity, price)
        status = base.status_after_fill(order["quantity"], filled)
        updated = rows.execute(OLD_UPDATE_ORDER_FILLED, (filled, average, status, order_id)).fetchone()
        assert fill is not None
        assert updated is not None
        events = base.fill_events(fill, updated, after, pos["version"], order["status"])
        conn.execute(
            OLD_INSERT_EVENT_EMIT, (order_id, key[0], order["status"], status, "fill", None, *emit_params(events))
        )
        conn.execute(
            OLD_UPDATE_POSITION,
            (
                after.quantity,
                after.avg_price,
                after.realized_pnl,
                after.total_commission,
                after.quantity,
                after.quantity,
                now,
                *key,
            ),
        )


PGBENCH_SCRIPT = """
\\set oid :order_base + :client_id
SELECT * FROM execution.record_fill(gen_random_uuid()::text, :oid, 1, 100.25, 0, NULL, NULL, NULL, true);
"""


def _rate(writers: int, work: Callable[[int, Callable[[], bool]], int]) -> float:
    counts = [0] * writers
    deadline = time.monotonic() + DURATION

    def run(index: int) -> None:
        counts[index] = work(index, lambda: time.monotonic() < deadline)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(writers)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.monotonic() - started)


def _pgbench_binary() -> Path | None:
    candidates = [Path("/usr/lib/postgresql/15/bin/pgbench")]
    with contextlib.suppress(tradedb.TradeDBError):
        candidates.insert(0, EmbeddedServer(Settings(_env_file=None)).bindir() / "pgbench")
    found = next((c for c in candidates if c.exists()), None)
    return found or (Path(p) if (p := shutil.which("pgbench")) else None)


def _pgbench(url: str, writers: int, order_base: int) -> float | None:
    binary = _pgbench_binary()
    if binary is None:
        return None
    params = psycopg.conninfo.conninfo_to_dict(url)
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write(PGBENCH_SCRIPT)
    env = {**os.environ, "PGPASSWORD": str(params.get("password") or "")}
    command = [str(binary), "-n", "-M", "prepared", "-c", str(writers), "-j", str(writers), "-T", str(int(DURATION))]
    command += ["-D", f"order_base={order_base}", "-f", script.name, "-h", str(params.get("host", "127.0.0.1"))]
    command += ["-p", str(params.get("port", 5432)), "-U", str(params.get("user", "postgres")), str(params["dbname"])]
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    os.unlink(script.name)
    for line in result.stdout.splitlines():
        if line.startswith("tps = "):
            return float(line.split()[2])
    print(f"pgbench failed: {result.stderr.strip()[:300]}")
    return None


@contextlib.contextmanager
def _database(admin: str, name: str, revision: str | None) -> Iterator[tuple[str, Settings, list[int]]]:
    """A trading database with 120 accounts, each with a huge submitted order on its own security."""
    settings = Settings(_env_file=None, trading_db_name=name, prefect_db_name=f"{name}_prefect", role_prefix=PREFIX)
    provision.setup(settings=settings, url=admin)
    url = with_dbname(admin, name)
    try:
        if revision is not None:
            migrate.downgrade(revision, settings=settings, url=url)
        with psycopg.connect(url) as conn:
            conn.execute(
                "INSERT INTO shared.securities (symbol, asset_type) SELECT 'B' || g, 'equity'"
                " FROM generate_series(1, 120) g"
            )
            conn.execute(
                "INSERT INTO execution.accounts (account_id, name) SELECT 'BENCH-' || g, 'bench'"
                " FROM generate_series(1, 120) g"
            )
            rows = conn.execute(
                "INSERT INTO execution.orders (client_order_id, account_id, security_id, side, order_type, quantity,"
                " status) SELECT gen_random_uuid(), 'BENCH-' || g, s.security_id, 'buy', 'market', 1000000000000,"
                " 'submitted' FROM generate_series(1, 120) g JOIN shared.securities s ON s.symbol = 'B' || g"
                " ORDER BY g RETURNING order_id"
            ).fetchall()
        yield url, settings, sorted(int(r[0]) for r in rows)
    finally:
        with psycopg.connect(with_dbname(admin, "postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'DROP DATABASE IF EXISTS "{name}_prefect" WITH (FORCE)')


def _fills(url: str, settings: Settings, orders: list[int]) -> dict[tuple[str, int], float]:
    """Single-fill rates: tradedb, psycopg and pgbench on the same database (orders[0:8], [8:16], [16:24])."""
    price = Decimal("100.25")
    results: dict[tuple[str, int], list[float]] = {}
    for writers in WRITERS:
        for _ in range(ROUNDS):

            def ours(index: int, more: Callable[[], bool]) -> int:
                done = 0
                with tradedb.connect(url, settings=settings, min_size=1, max_size=1) as db:
                    while more():
                        db.execution.record_fill(uuid.uuid4().hex, orders[index], 1, price)
                        done += 1
                return done

            def raw(index: int, more: Callable[[], bool]) -> int:
                done = 0
                with psycopg.connect(url, autocommit=True) as conn:
                    while more():
                        params: tuple[Any, ...] = (uuid.uuid4().hex, orders[8 + index], 1, price, 0)
                        conn.execute(RECORD_FILL, (*params, None, None, None, True)).fetchone()
                        done += 1
                return done

            results.setdefault(("tradedb", writers), []).append(_rate(writers, ours))
            results.setdefault(("psycopg", writers), []).append(_rate(writers, raw))
            limit = _pgbench(url, writers, orders[16])
            if limit is not None:
                results.setdefault(("pgbench", writers), []).append(limit)
    return {key: statistics.median(values) for key, values in results.items()}


def _before(url: str, orders: list[int]) -> dict[tuple[str, int], float]:
    results: dict[tuple[str, int], list[float]] = {}
    for writers in WRITERS:
        for _ in range(ROUNDS):

            def old(index: int, more: Callable[[], bool]) -> int:
                done = 0
                with psycopg.connect(url) as conn:
                    while more():
                        before_fill(conn, uuid.uuid4().hex, orders[index], Decimal(1), Decimal("100.25"))
                        done += 1
                return done

            results.setdefault(("before", writers), []).append(_rate(writers, old))
    return {key: statistics.median(values) for key, values in results.items()}


def _batch(url: str, settings: Settings, orders: list[int]) -> float:
    """Fills per second of one record_fills batch of BATCH fills over 100 orders (medians of ROUNDS)."""
    rates = []
    with tradedb.connect(url, settings=settings) as db:
        for _ in range(ROUNDS):
            fills = [
                {
                    "execution_id": uuid.uuid4().hex,
                    "order_id": orders[20 + n % 100],
                    "quantity": 1 + n % 7,
                    "price": Decimal(10000 + n % 513) / 100,
                }
                for n in range(BATCH)
            ]
            started = time.perf_counter()
            result = db.execution.record_fills(fills)
            rates.append(BATCH / (time.perf_counter() - started))
            assert result.recorded == BATCH
    return statistics.median(rates)


def main() -> None:
    with bench_server() as admin:
        tag = uuid.uuid4().hex[:6]
        with _database(admin, f"{PREFIX}fills_old_{tag}", "0014") as (old_url, _, old_orders):
            med = _before(old_url, old_orders)
        with _database(admin, f"{PREFIX}fills_{tag}", None) as (url, settings, orders):
            med |= _fills(url, settings, orders)
            batch = _batch(url, settings, orders)
    print(f"record_fill (fills/s), {DURATION:g} s rounds, medians of {ROUNDS}; events on")
    header = f"{'writers':>7} {'before (0014)':>14} {'tradedb':>9} {'psycopg':>9} {'pgbench':>9}"
    print(f"{header} {'tradedb/before':>15} {'tradedb/pgbench':>16}")
    for writers in WRITERS:
        limit = med.get(("pgbench", writers))
        limit_text = f"{limit:>9,.0f}" if limit else f"{'n/a':>9}"
        ratio = f"{med[('tradedb', writers)] / limit:>16.2f}" if limit else f"{'n/a':>16}"
        print(
            f"{writers:>7} {med[('before', writers)]:>14,.0f} {med[('tradedb', writers)]:>9,.0f} "
            f"{med[('psycopg', writers)]:>9,.0f} {limit_text} "
            f"{med[('tradedb', writers)] / med[('before', writers)]:>15.2f} {ratio}"
        )
    low, high = WRITERS[0], WRITERS[-1]
    scaling = {
        k: med[(k, high)] / med[(k, low)] for k in ("before", "tradedb", "psycopg", "pgbench") if (k, low) in med
    }
    print(
        f"scaling {high} writers / {low}: "
        + ", ".join(f"{k} {v:.2f}x" for k, v in scaling.items())
        + " (goal: tradedb >= 3x)"
    )
    print(f"goal: 1 writer >= 2x before: {med[('tradedb', 1)] / med[('before', 1)]:.2f}x")
    print(
        f"record_fills, one batch of {BATCH:,} fills on 100 orders: {batch:,.0f} fills/s = "
        f"{batch / med[('tradedb', 1)]:.1f}x single fills of one writer (goal >= 10x)"
    )


if __name__ == "__main__":
    main()

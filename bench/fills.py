"""Benchmark: record_fill throughput, 1 and 4 concurrent writers, against the same SQL issued directly with psycopg
in the same run (events included), and pgbench running an equivalent script (the server's limit).

Each writer fills its own order on its own position (a fill locks its order and its position row). Goal: tradedb
at least 85 % of raw psycopg at the same concurrency. Figures are medians of 3 rounds of DURATION seconds.
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
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

import tradedb
from _server import bench_server
from tradedb.db.embedded import EmbeddedServer
from tradedb.db.outbox_rules import emit_params
from tradedb.execution import _rules as base
from tradedb.execution._sql import (
    CREATE_POSITION,
    FILL_BY_EXECUTION_ID,
    INSERT_EVENT_EMIT,
    INSERT_FILL,
    ORDER_FOR_UPDATE,
    POSITION_FOR_UPDATE,
    UPDATE_ORDER_FILLED,
    UPDATE_POSITION,
)
from tradedb.ops import setup as provision
from tradedb.settings import Settings, with_dbname

DURATION = 4.0
ROUNDS = 3
PREFIX = "tdbbench_"


def raw_fill(conn: psycopg.Connection, execution_id: str, order_id: int, quantity: Decimal, price: Decimal) -> None:
    """The statements record_fill issues, with the same arithmetic and the same events, straight on a psycopg
    connection."""
    rows = conn.cursor(row_factory=dict_row)
    with conn.transaction():
        order = conn.execute(ORDER_FOR_UPDATE, (order_id,)).fetchone()
        assert order is not None
        _, _, account, security, side, _, qty, _, _, _, _, _, filled, avg, *_ = order
        conn.execute(FILL_BY_EXECUTION_ID, (execution_id,)).fetchone()
        key = (account, security)
        pos = conn.execute(POSITION_FOR_UPDATE, key).fetchone()
        if pos is None:
            conn.execute(CREATE_POSITION, key)
            pos = conn.execute(POSITION_FOR_UPDATE, key).fetchone()
        assert pos is not None
        after = base.apply_fill(base.PositionState(pos[2], pos[3], pos[4], pos[5]), side, quantity, price)
        now = datetime.now(UTC)
        fill = rows.execute(
            INSERT_FILL, (execution_id, order_id, account, security, side, quantity, price, Decimal(0), None, now, None)
        ).fetchone()
        new_filled = filled + quantity
        updated = rows.execute(
            UPDATE_ORDER_FILLED,
            (new_filled, base.average(filled, avg, quantity, price), base.status_after_fill(qty, new_filled), order_id),
        ).fetchone()
        assert fill is not None
        assert updated is not None
        events = base.fill_events(fill, updated, after, pos[8], "submitted")
        conn.execute(
            INSERT_EVENT_EMIT, (order_id, account, "submitted", "partially_filled", "fill", None, *emit_params(events))
        )
        conn.execute(
            UPDATE_POSITION,
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
\\set sec :sec_base + :client_id
\\set acct :acct_base + :client_id
BEGIN;
SELECT * FROM execution.orders WHERE order_id = :oid FOR UPDATE;
SELECT * FROM execution.fills WHERE execution_id = 'none';
SELECT * FROM execution.positions
  WHERE account_id = 'BENCH-' || :acct AND security_id = :sec FOR UPDATE;
INSERT INTO execution.fills (execution_id, order_id, account_id, security_id, side, quantity, price, commission,
    executed_at)
  VALUES (gen_random_uuid()::text, :oid, 'BENCH-' || :acct, :sec, 'buy', 1, 100, 0, now());
UPDATE execution.orders SET filled_quantity = filled_quantity + 1, avg_fill_price = 100,
    status = 'partially_filled', version = version + 1, updated_at = now() WHERE order_id = :oid;
INSERT INTO execution.order_events (order_id, account_id, from_status, to_status, reason)
  VALUES (:oid, 'BENCH-' || :acct, 'submitted', 'partially_filled', 'fill');
UPDATE execution.positions SET quantity = quantity + 1, avg_price = 100, updated_at = now(),
    version = version + 1 WHERE account_id = 'BENCH-' || :acct AND security_id = :sec;
SELECT shared.emit_versioned(('[["order", "' || :oid || '", "fill.recorded", {"quantity": "1"}, 1],'
    || '["position", "' || :acct || '", "position.changed", {"quantity": "1"}, 1]]')::jsonb);
END;
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


def _pgbench(url: str, writers: int, order_base: int, sec_base: int) -> float | None:
    candidates = [Path(p) / "pgbench" for p in ("/usr/lib/postgresql/15/bin",)]
    with contextlib.suppress(tradedb.TradeDBError):
        candidates.insert(0, EmbeddedServer(Settings(_env_file=None)).bindir() / "pgbench")
    binary = next((c for c in candidates if c.exists()), None) or (Path(p) if (p := shutil.which("pgbench")) else None)
    if binary is None:
        return None
    params = psycopg.conninfo.conninfo_to_dict(url)
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write(PGBENCH_SCRIPT)
    env = {**os.environ, "PGPASSWORD": str(params.get("password") or "")}
    result = subprocess.run(
        [
            str(binary),
            "-n",
            "-M",
            "prepared",
            "-c",
            str(writers),
            "-j",
            str(writers),
            "-T",
            str(int(DURATION)),
            "-D",
            f"order_base={order_base}",
            "-D",
            f"sec_base={sec_base}",
            "-D",
            "acct_base=17",
            "-f",
            script.name,
            "-h",
            str(params.get("host", "127.0.0.1")),
            "-p",
            str(params.get("port", 5432)),
            "-U",
            str(params.get("user", "postgres")),
            str(params["dbname"]),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    os.unlink(script.name)
    for line in result.stdout.splitlines():
        if line.startswith("tps = "):
            return float(line.split()[2])
    print(f"pgbench failed: {result.stderr.strip()[:300]}")
    return None


def main() -> None:
    with bench_server() as admin:
        name = f"{PREFIX}fills_{uuid.uuid4().hex[:6]}"
        settings = Settings(
            _env_file=None,
            trading_db_name=name,
            prefect_db_name=f"{name}_prefect",
            role_prefix=PREFIX,
        )
        provision.setup(settings=settings, url=admin)
        url = with_dbname(admin, name)
        try:
            with tradedb.connect(url, settings=settings) as db:
                db.execute(
                    "INSERT INTO shared.securities (symbol, asset_type)"
                    " SELECT 'B' || g, 'equity' FROM generate_series(1, 24) g"
                )
                sec_base = db.fetch_value("SELECT min(security_id) FROM shared.securities", readonly=False)
                for writer in range(1, 25):
                    db.execute(
                        "INSERT INTO execution.accounts (account_id, name) VALUES (%s, 'bench')", (f"BENCH-{writer}",)
                    )
                order_ids = [
                    db.execution.submit_order(
                        account_id=f"BENCH-{w}", security_id=sec_base + w - 1, side="buy", quantity=10**12
                    )["order_id"]
                    for w in range(1, 25)
                ]
                for oid in order_ids:
                    db.execution.transition(oid, "submitted")
            results: dict[tuple[str, int], list[float]] = {}
            price = Decimal("100.25")
            for writers in (1, 4):
                for round_ in range(ROUNDS):
                    offset = 12 if round_ % 2 else 0  # alternate orders between methods across rounds

                    def raw(index: int, more: Callable[[], bool], offset: int = offset) -> int:
                        done = 0
                        with psycopg.connect(url) as conn:
                            while more():
                                raw_fill(conn, uuid.uuid4().hex, order_ids[offset + index], Decimal(1), price)
                                done += 1
                        return done

                    def ours(index: int, more: Callable[[], bool], offset: int = offset) -> int:
                        done = 0
                        with tradedb.connect(url, settings=settings, min_size=1, max_size=1) as db:
                            while more():
                                db.execution.record_fill(uuid.uuid4().hex, order_ids[12 - offset + index], 1, price)
                                done += 1
                        return done

                    results.setdefault(("psycopg", writers), []).append(_rate(writers, raw))
                    results.setdefault(("tradedb", writers), []).append(_rate(writers, ours))
                    limit = _pgbench(url, writers, order_ids[16], sec_base + 16)
                    if limit is not None:
                        results.setdefault(("pgbench", writers), []).append(limit)
            print(f"record_fill, {DURATION:g} s rounds, medians of {ROUNDS}")
            print(f"{'writers':>7} {'pgbench (limit)':>16} {'raw psycopg':>12} {'tradedb':>9} {'tradedb/psycopg':>16}")
            for writers in (1, 4):
                med = {k: statistics.median(v) for (k, w), v in results.items() if w == writers}
                limit_text = f"{med['pgbench']:>16,.0f}" if "pgbench" in med else f"{'n/a':>16}"
                print(
                    f"{writers:>7} {limit_text} {med['psycopg']:>12,.0f} {med['tradedb']:>9,.0f} "
                    f"{med['tradedb'] / med['psycopg']:>16.2f}"
                )
        finally:
            with psycopg.connect(with_dbname(admin, "postgres"), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                conn.execute(f'DROP DATABASE IF EXISTS "{name}_prefect" WITH (FORCE)')


if __name__ == "__main__":
    main()

"""Benchmark: how long migration 0022 (the execution keys lead with the account) holds the execution tables.

A database migrated to 0021 gets ORDERS orders, FILLS fills and as many order events (loaded with triggers off),
then is upgraded to 0022, which rebuilds the tables' keys in one transaction. The baseline, in the same run:
rebuilding every index of those tables once (``REINDEX``), the least any change of their keys costs.
"""

from __future__ import annotations

import time

import psycopg

from _server import bench_server
from tradedb.ops import migrate
from tradedb.settings import Settings, with_dbname

ORDERS = 100_000
FILLS = 1_000_000
NAME = "tdbbench_rekey"
LOAD = (
    "INSERT INTO execution.accounts (account_id, name) SELECT 'A' || g, 'a' FROM generate_series(1, 100) g",
    "INSERT INTO shared.securities (symbol, asset_type) SELECT 'S' || g, 'equity' FROM generate_series(1, 100) g",
    """
    INSERT INTO execution.orders (client_order_id, account_id, security_id, side, order_type, quantity, status)
    SELECT gen_random_uuid(), 'A' || (g %% 100 + 1), (SELECT min(security_id) FROM shared.securities) + g %% 100,
           'buy', 'market', 1000, 'submitted'
    FROM generate_series(1, %(orders)s) g
    """,
    """
    INSERT INTO execution.fills (execution_id, order_id, account_id, security_id, side, quantity, price, executed_at)
    SELECT 'E' || g, o.order_id, o.account_id, o.security_id, 'buy', 1, 10, now()
    FROM generate_series(1, %(fills)s) g
    JOIN execution.orders o ON o.order_id = (SELECT min(order_id) FROM execution.orders) + g %% %(orders)s
    """,
    """
    INSERT INTO execution.order_events (order_id, account_id, from_status, to_status, reason)
    SELECT order_id, account_id, 'submitted', 'partially_filled', 'fill' FROM execution.fills
    """,
)


def main() -> None:
    with bench_server() as admin_url:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {NAME} WITH (FORCE)")
            admin.execute(f"CREATE DATABASE {NAME}")
        url = with_dbname(admin_url, NAME)
        settings = Settings(_env_file=None, trading_db_name=NAME)
        try:
            migrate.upgrade("0021", settings=settings, url=url)
            with psycopg.connect(url) as conn:
                conn.execute("SET session_replication_role = replica")  # no audit rows, no checks: a bulk load
                for statement in LOAD:
                    conn.execute(statement, {"orders": ORDERS, "fills": FILLS} if "%(" in statement else None)
                conn.commit()
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE")
            started = time.perf_counter()
            migrate.upgrade(settings=settings, url=url)
            rekey = time.perf_counter() - started
            with psycopg.connect(url, autocommit=True) as conn:
                started = time.perf_counter()
                conn.execute("REINDEX TABLE execution.orders")
                conn.execute("REINDEX TABLE execution.fills")
                conn.execute("REINDEX TABLE execution.order_events")
                reindex = time.perf_counter() - started
        finally:
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute(f"DROP DATABASE IF EXISTS {NAME} WITH (FORCE)")
    print(f"migration 0022 on {ORDERS:,} orders, {FILLS:,} fills and {FILLS:,} order events: {rekey:.1f} s")
    print(f"baseline, REINDEX of the same tables: {reindex:.1f} s; the migration takes {rekey / reindex:.2f}x that")


if __name__ == "__main__":
    main()

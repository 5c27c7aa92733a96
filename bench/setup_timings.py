"""Benchmark: time of `tradedb setup` and `migrate upgrade` from empty, against metadata.create_all in the same run."""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable

import psycopg
import sqlalchemy as sa
from psycopg import sql

from _server import bench_server
from tradedb.db import direct as _connect
from tradedb.ops import migrate
from tradedb.ops import setup as provision
from tradedb.schema import SERVICE_SCHEMAS, metadata
from tradedb.settings import Settings, with_dbname

ROUNDS = 3
PREFIX = "tdbbench_"


def _settings(url: str, name: str) -> Settings:
    return Settings(
        _env_file=None,
        database_url=with_dbname(url, name),
        trading_db_name=name,
        prefect_db_name=f"{name}_prefect",
        role_prefix=PREFIX,
    )


def _drop(url: str, *names: str) -> None:
    with psycopg.connect(with_dbname(url, "postgres"), autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _create(url: str, name: str) -> None:
    with psycopg.connect(with_dbname(url, "postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(PREFIX + "owner"))
        )


def _median(fn: Callable[[str], None], url: str, fresh_db: bool) -> float:
    samples = []
    for _ in range(ROUNDS):
        name = f"{PREFIX}{uuid.uuid4().hex[:8]}"
        if fresh_db:
            _create(url, name)
        started = time.perf_counter()
        fn(name)
        samples.append(time.perf_counter() - started)
        _drop(url, name, f"{name}_prefect")
    return statistics.median(samples)


def main() -> None:
    with bench_server() as url:
        provision.setup(settings=_settings(url, f"{PREFIX}roles"), url=url)  # roles exist before timing
        _drop(url, f"{PREFIX}roles", f"{PREFIX}roles_prefect")

        def create_all(name: str) -> None:
            engine = _connect.engine(with_dbname(url, name), _settings(url, name))
            with engine.begin() as conn:
                for schema in SERVICE_SCHEMAS:
                    conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
                metadata.create_all(conn)

        def upgrade(name: str) -> None:
            migrate.upgrade(settings=_settings(url, name), url=with_dbname(url, name))

        def setup(name: str) -> None:
            provision.setup(settings=_settings(url, name), url=url)

        baseline = _median(create_all, url, fresh_db=True)
        upgraded = _median(upgrade, url, fresh_db=True)
        set_up = _median(setup, url, fresh_db=False)
        with psycopg.connect(url) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
        print(f"PostgreSQL {version}; medians of {ROUNDS} rounds")
        print(f"{'operation':<48} {'seconds':>8} {'ratio':>7}")
        print(f"{'baseline: metadata.create_all (no partitions)':<48} {baseline:>8.3f} {1.0:>7.2f}")
        print(f"{'tradedb migrate upgrade, empty database':<48} {upgraded:>8.3f} {upgraded / baseline:>7.2f}")
        print(f"{'tradedb setup from nothing (incl. verify)':<48} {set_up:>8.3f} {set_up / baseline:>7.2f}")


if __name__ == "__main__":
    main()

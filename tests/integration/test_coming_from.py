"""Adopting a database the replaced systems built (docs/coming-from.md), on databases built from equivalent DDL.

setup and migrate refuse such a database before changing anything (roles included); the page's move then
carries its securities, quotes and open positions into a tradedb database.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

import tradedb
from tests.conftest import DB_PREFIX, REPO, TestDatabase, admin, cli_env, drop_database, run_cli
from tradedb.settings import with_dbname

LEGACY = Path(__file__).parent / "legacy"


def legacy_database(server_url: str, ddl: str) -> Iterator[str]:
    name = f"{DB_PREFIX}legacy_{uuid.uuid4().hex[:8]}"
    with admin(server_url) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(with_dbname(server_url, name), autocommit=True) as conn:
        conn.execute((LEGACY / ddl).read_text())  # several statements: sent as one simple query
    yield name
    drop_database(server_url, name)


@pytest.fixture
def python_legacy(server_url: str) -> Iterator[str]:
    yield from legacy_database(server_url, "python_scripts.sql")


@pytest.fixture
def rust_legacy(server_url: str) -> Iterator[str]:
    yield from legacy_database(server_url, "rust_databaseschema.sql")


def snapshot(url: str) -> list[Any]:
    """The old database's tables and their row counts, and the roles a refused setup must not have created."""
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables"
            " WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
        ).fetchall()
        counts = [conn.execute(f'SELECT count(*) FROM "{s}"."{t}"').fetchone() for s, t in tables]
        roles = conn.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE 'tdbt_adopt_%'").fetchall()
    return [tables, counts, roles]


@pytest.mark.parametrize(
    ("system", "named"),
    [
        ("python_legacy", "data_ingestion.quotes, execution.orders, execution.positions, shared.securities"),
        ("rust_legacy", "data_ingestion.market_trades, public.__diesel_schema_migrations"),
    ],
)
def test_setup_and_migrate_refuse_another_systems_database_and_change_nothing(
    system: str, named: str, server_url: str, request: pytest.FixtureRequest
) -> None:
    name: str = request.getfixturevalue(system)
    url = with_dbname(server_url, name)
    before = snapshot(url)
    env = cli_env(DATABASE_URL=url, TRADEDB_ROLE_PREFIX="tdbt_adopt_", PREFECT_DB_NAME=f"{name}_prefect")
    for command in (["setup"], ["migrate", "upgrade"]):
        done = run_cli(*command, env=env)
        assert done.returncode == 5, done.stderr
        assert f"database '{name}' holds tables tradedb did not create ({named})" in done.stderr
        assert "Traceback" not in done.stderr
    assert snapshot(url) == before
    assert before[2] == []  # no role of the refused setup's prefix
    with admin(server_url) as conn:
        assert conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (f"{name}_prefect",)).fetchone() is None


def test_the_documented_move_carries_securities_quotes_and_positions(
    python_legacy: str,
    server_url: str,
    fresh_db: TestDatabase,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    page = (REPO / "docs" / "coming-from.md").read_text()
    code = page[page.index("```python\n") + len("```python\n") :]
    code = code[: code.index("```")]
    monkeypatch.setenv("DATABASE_URL", fresh_db.url)
    monkeypatch.setenv("TRADEDB_ROLE_PREFIX", fresh_db.settings.role_prefix)
    monkeypatch.setenv("LEGACY_DATABASE_URL", with_dbname(server_url, python_legacy))
    exec(compile(code, "docs/coming-from.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "200 0"
    assert printed[1] == "[(Decimal('15'), Decimal('410.2500000000')), (Decimal('100'), Decimal('182.5000000000'))]"
    with tradedb.connect(fresh_db.url, settings=fresh_db.settings) as db:
        first = db.market_data.quotes("AAPL", datetime(2024, 5, 8, tzinfo=UTC), datetime(2024, 5, 9, tzinfo=UTC))
        assert first[0]["ts"] == datetime(2024, 5, 8, 13, 30, tzinfo=UTC)  # 09:30 in New York (EDT)
        assert first[0]["bid"] == 182.0 and len(first) == 100
        assert db.securities.get("KO")["exchange_mic"] == "XNYS"
        assert db.execution.reconcile() == []
        position = next(p for p in db.execution.positions("MAIN") if p["quantity"] == Decimal("100"))
        assert position["realized_pnl"] == 0

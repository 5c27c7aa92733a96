"""tradedb setup: from nothing to a verified database; running it twice changes nothing."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from tests.conftest import DB_PREFIX, ROLE_PREFIX, admin, drop_database, make_settings, run_cli
from tradedb.ops import setup as provision
from tradedb.settings import Settings, with_dbname

SNAPSHOT_QUERIES = {
    "relations": """SELECT n.nspname, c.relname, c.relkind, pg_get_userbyid(c.relowner), c.relacl::text
                    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') ORDER BY 1, 2""",
    "constraints": "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE connamespace > 16384 ORDER BY 1",
    "schemas": "SELECT nspname, nspacl::text FROM pg_namespace ORDER BY 1",
    "default_acl": "SELECT defaclrole::regrole::text, defaclnamespace, defaclobjtype, defaclacl::text"
    " FROM pg_default_acl ORDER BY 1, 2, 3",
    "config": "SELECT key, value::text, description FROM shared.system_config ORDER BY 1",
    "version": "SELECT version_num FROM shared.alembic_version",
}

MIGRATED = "migrated " + ", ".join(f"{n:04d}" for n in range(1, 23))


@pytest.fixture
def fresh(server_url: str, template_db: str) -> Iterator[Settings]:
    """Settings naming a trading and a prefect database that do not exist yet."""
    name = f"{DB_PREFIX}setup_{uuid.uuid4().hex[:8]}"
    yield make_settings(server_url, name)
    drop_database(server_url, name)
    drop_database(server_url, f"{name}_prefect")


def snapshot(server_url: str, settings: Settings) -> dict[str, list[tuple[object, ...]]]:
    with psycopg.connect(with_dbname(server_url, settings.trading_db_name)) as conn:
        return {key: conn.execute(query).fetchall() for key, query in SNAPSHOT_QUERIES.items()}


def test_setup_from_empty_then_again_changes_nothing(server_url: str, fresh: Settings) -> None:
    first = provision.setup(settings=fresh, url=server_url)
    assert f"create database {fresh.trading_db_name}" in first.actions
    assert f"create database {fresh.prefect_db_name}" in first.actions
    assert MIGRATED in first.actions
    assert first.problems == []
    before = snapshot(server_url, fresh)
    assert [row[0] for row in before["config"]] == ["default_risk_limit", "maintenance_mode", "system_version"]
    second = provision.setup(settings=fresh, url=server_url)
    assert second.actions == []
    assert second.problems == []
    assert snapshot(server_url, fresh) == before


def test_objects_belong_to_the_owner_role(server_url: str, fresh: Settings) -> None:
    provision.setup(settings=fresh, url=server_url)
    with psycopg.connect(with_dbname(server_url, fresh.trading_db_name)) as conn:
        owners = conn.execute(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = ANY(%s)",
            (["shared", "execution", "data_ingestion"],),
        ).fetchall()
    assert owners == [(f"{ROLE_PREFIX}owner",)]


def test_dry_run_prints_sql_and_changes_nothing(server_url: str, fresh: Settings) -> None:
    report = provision.setup(settings=fresh, url=server_url, dry_run=True)
    text = "\n".join(report.sql)
    assert f'CREATE DATABASE "{fresh.trading_db_name}"' in text
    assert "CREATE TABLE data_ingestion.quotes" in text
    assert "PARTITION BY RANGE (ts)" in text
    assert "GRANT" in text and "system_config" in text
    with psycopg.connect(with_dbname(server_url, "postgres")) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (fresh.trading_db_name,)).fetchone()
    assert exists is None


def test_dry_run_on_a_set_up_database_has_nothing_to_do(server_url: str, fresh: Settings) -> None:
    provision.setup(settings=fresh, url=server_url)
    report = provision.setup(settings=fresh, url=server_url, dry_run=True)
    assert report.actions == []
    assert not any("CREATE TABLE" in s for s in report.sql)


def test_service_roles_have_exactly_their_grants(server_url: str, fresh: Settings) -> None:
    provision.setup(settings=fresh, url=server_url)
    with psycopg.connect(with_dbname(server_url, fresh.trading_db_name)) as conn:

        def can(role: str, table: str, privilege: str) -> bool:
            row = conn.execute("SELECT has_table_privilege(%s, %s, %s)", (ROLE_PREFIX + role, table, privilege))
            return bool(row.fetchone()[0])  # type: ignore[index]

        assert can("execution", "execution.orders", "INSERT")
        assert can("execution", "shared.securities", "SELECT")
        assert not can("execution", "shared.securities", "INSERT")
        assert not can("data_ingestion", "execution.orders", "INSERT")
        assert not can("data_ingestion", "execution.orders", "SELECT")
        assert can("data_ingestion", "data_ingestion.quotes", "INSERT")
        assert can("readonly", "execution.fills", "SELECT")
        assert not can("readonly", "execution.fills", "UPDATE")
        assert can("analytics", "execution.positions", "SELECT")


def test_service_role_cannot_write_another_schema(server_url: str, fresh: Settings) -> None:
    provision.setup(settings=fresh, url=server_url)
    with psycopg.connect(with_dbname(server_url, fresh.trading_db_name)) as conn:
        conn.execute(f"SET ROLE {ROLE_PREFIX}data_ingestion")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO execution.accounts (account_id, name) VALUES ('A1', 'x')")


def test_setup_cli_twice(server_url: str, fresh: Settings) -> None:
    env = {
        "DATABASE_URL": with_dbname(server_url, fresh.trading_db_name),
        "PREFECT_DB_NAME": fresh.prefect_db_name,
        "TRADEDB_ROLE_PREFIX": ROLE_PREFIX,
    }
    from tests.conftest import cli_env

    first = run_cli("setup", env=cli_env(**env))
    assert first.returncode == 0, first.stderr
    assert MIGRATED in first.stdout
    # A summary a person reads: a line per kind of change, each table under row-level security named once.
    assert len(first.stdout.splitlines()) <= 12, first.stdout
    assert re.search(r"^tables put under row-level security: \d+ \(execution\.accounts, ", first.stdout, re.M)
    assert first.stdout.count("execution.accounts") == 1
    second = run_cli("setup", env=cli_env(**env))
    assert second.returncode == 0, second.stderr
    assert "nothing to change" in second.stdout


def test_setup_prefect_prints_the_orchestrators_own_login(server_url: str, fresh: Settings) -> None:
    login = f"tdbt_orch_{uuid.uuid4().hex[:8]}"
    try:
        orchestrators_own_login(server_url, fresh, login)
    finally:
        drop_database(server_url, fresh.prefect_db_name)
        with admin(server_url) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(login)))


def orchestrators_own_login(server_url: str, fresh: Settings, login: str) -> None:
    from tests.conftest import cli_env

    env = cli_env(
        DATABASE_URL=with_dbname(server_url, fresh.trading_db_name),
        PREFECT_DB_NAME=fresh.prefect_db_name,
        TRADEDB_ROLE_PREFIX=ROLE_PREFIX,
        PREFECT_DB_USER=login,
    )
    result = run_cli("setup", "--prefect", env=env)
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("PREFECT_API_DATABASE_CONNECTION_URL="))
    assert line.startswith(f"PREFECT_API_DATABASE_CONNECTION_URL=postgresql+asyncpg://{login}:***@")
    assert line.endswith(f"/{fresh.prefect_db_name}")
    assert "generated password" in result.stderr
    admin_password = psycopg.conninfo.conninfo_to_dict(server_url).get("password")
    if admin_password:
        assert str(admin_password) not in result.stdout + result.stderr
    # With PREFECT_DB_PASSWORD, setup gives the login that password; the login owns (only) its database.
    env["PREFECT_DB_PASSWORD"] = "orchestrator-pw"
    again = run_cli("setup", "--prefect", "--show-password", env=env)
    assert again.returncode == 0, again.stderr
    url = next(x for x in again.stdout.splitlines() if x.startswith("PREFECT_API_DATABASE_CONNECTION_URL="))
    libpq = url.split("=", 1)[1].replace("postgresql+asyncpg://", "postgresql://")
    with psycopg.connect(libpq) as conn:
        row = conn.execute(
            "SELECT current_user, pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"
        ).fetchone()
        conn.execute("CREATE TABLE prefect_probe (id int)")
    assert row == (login, login)
    with (
        psycopg.connect(with_dbname(libpq, fresh.trading_db_name)) as trading,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        trading.execute("SELECT key FROM shared.system_config")  # nothing of the trading database
    assert "orchestrator-pw" not in run_cli("setup", "--prefect", env=env).stdout


def test_the_database_in_database_url_is_the_one_set_up_and_used(server_url: str, fresh: Settings) -> None:
    """A new user's `DATABASE_URL=.../mydb tradedb setup`: setup, migrate, verify and the application all use mydb."""
    from tests.conftest import cli_env

    env = cli_env(
        DATABASE_URL=with_dbname(server_url, fresh.trading_db_name),
        PREFECT_DB_NAME=fresh.prefect_db_name,
        TRADEDB_ROLE_PREFIX=ROLE_PREFIX,
    )
    done = run_cli("setup", env=env)
    assert done.returncode == 0, done.stderr
    assert f"databases created: 2 ({fresh.trading_db_name}, " in done.stdout
    status = run_cli("migrate", "status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["pending"] == []
    assert run_cli("verify", env=env).returncode == 0
    with psycopg.connect(with_dbname(server_url, fresh.trading_db_name)) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'execution'").fetchone()
    assert tables is not None and int(str(tables[0])) >= 5
    with psycopg.connect(server_url) as conn:
        stray = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'execution'").fetchone()
    assert stray == (0,)  # nothing landed in the server's maintenance database
    conflict = run_cli("verify", env={**env, "TRADING_DB_NAME": "trading_system"})
    assert conflict.returncode == 2
    assert "DATABASE_URL names database" in conflict.stderr and "TRADING_DB_NAME" in conflict.stderr

"""Migrations: the runner's lock, offline SQL, partitions ignored by autogenerate, plain alembic, bad revisions."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from packaging.version import Version

from tests.conftest import REPO, ROLE_PREFIX, TestDatabase, run_cli
from tradedb import MigrationError, MigrationLockTimeout, UnknownRevisionError
from tradedb.ops import migrate

ALL = tuple(r.revision for r in migrate.history())
HEAD = ALL[-1]


def table_count(db: TestDatabase) -> int:
    with db.connect() as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname IN ('shared', 'execution', 'data_ingestion')"
        ).fetchone()
    assert row is not None
    return int(str(row[0]))


def test_upgrade_downgrade_and_status(empty_db: TestDatabase) -> None:
    state = migrate.status(settings=empty_db.settings, url=empty_db.url)
    assert state.current == () and state.pending == ALL
    state = migrate.upgrade(settings=empty_db.settings, url=empty_db.url)
    assert state.current == (HEAD,) and state.up_to_date
    assert migrate.check(settings=empty_db.settings, url=empty_db.url) == (state, [])
    state = migrate.downgrade("base", settings=empty_db.settings, url=empty_db.url)
    assert state.current == ()
    with empty_db.connect() as conn:
        left = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname IN ('execution', 'data_ingestion', 'logging')"
        ).fetchall()
    assert left == []


def test_two_migrators_at_once_both_succeed_and_apply_once(empty_db: TestDatabase) -> None:
    env = empty_db.env()
    procs = [
        subprocess.Popen(
            [str(REPO / ".venv/bin/tradedb"), "migrate", "upgrade"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [p.communicate(timeout=180) for p in procs]
    for proc, (_, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
    with empty_db.connect() as conn:
        versions = conn.execute("SELECT version_num FROM shared.alembic_version").fetchall()
    assert versions == [(HEAD,)]
    assert table_count(empty_db) > 20


def test_two_migrators_in_threads(empty_db: TestDatabase) -> None:
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(migrate.upgrade, settings=empty_db.settings, url=empty_db.url) for _ in range(2)]
        states = [f.result(timeout=180) for f in futures]
    assert all(s.current == (HEAD,) for s in states)


def test_second_migrator_gives_up_after_the_bound(empty_db: TestDatabase) -> None:
    held = threading.Event()
    release = threading.Event()

    def hold_lock() -> None:
        with empty_db.connect(autocommit=True) as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (migrate.MIGRATION_LOCK_KEY,))
            held.set()
            release.wait(60)

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        assert held.wait(10)
        settings = empty_db.settings.model_copy(update={"migration_lock_wait": 1.0})
        started = time.monotonic()
        with pytest.raises(MigrationLockTimeout, match="held the migration lock"):
            migrate.upgrade(settings=settings, url=empty_db.url)
        assert time.monotonic() - started < 10
        result = run_cli("migrate", "upgrade", env=empty_db.env(TRADEDB_MIGRATION_LOCK_WAIT="1"))
        assert result.returncode == 5
        assert "held the migration lock" in result.stderr
        assert "Traceback" not in result.stderr
    finally:
        release.set()
        holder.join()
    assert table_count(empty_db) == 0


def test_partitions_are_never_proposed_for_dropping(db: TestDatabase) -> None:
    with db.connect(autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE data_ingestion.quotes_p20300101 PARTITION OF data_ingestion.quotes"
            " FOR VALUES FROM ('2030-01-01') TO ('2030-01-02')"
        )
        conn.execute("CREATE INDEX extra_ix ON data_ingestion.quotes_p20300101 (source)")
    assert migrate.diff(settings=db.settings, url=db.url) == []
    result = run_cli("migrate", "check", env=db.env())
    assert result.returncode == 0, result.stderr


def test_check_fails_on_drift(db: TestDatabase) -> None:
    with db.connect(autocommit=True) as conn:
        conn.execute("ALTER TABLE shared.exchanges ADD COLUMN surprise int")
    result = run_cli("migrate", "check", env=db.env())
    assert result.returncode == 1
    assert "shared.exchanges" in result.stderr


def test_offline_sql_of_the_whole_history(empty_db: TestDatabase) -> None:
    result = run_cli("migrate", "sql", env=empty_db.env())
    assert result.returncode == 0, result.stderr
    assert "CREATE TABLE execution.orders" in result.stdout
    assert "SET lock_timeout" in result.stdout
    assert "INSERT INTO shared.alembic_version" in result.stdout
    assert table_count(empty_db) == 0


def test_plain_alembic_with_the_shipped_config(empty_db: TestDatabase) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(REPO / "alembic.ini"), "upgrade", "head"],
        env=empty_db.env(),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert migrate.status(settings=empty_db.settings, url=empty_db.url).current == (HEAD,)


def test_a_database_at_an_unknown_revision_is_refused(db: TestDatabase) -> None:
    with db.connect(autocommit=True) as conn:
        conn.execute("UPDATE shared.alembic_version SET version_num = 'ffffffff'")
    with pytest.raises(UnknownRevisionError, match="ffffffff"):
        migrate.status(settings=db.settings, url=db.url)
    for args in (("migrate", "upgrade"), ("migrate", "status"), ("verify",)):
        result = run_cli(*args, env=db.env())
        assert result.returncode in (1, 5), (args, result.stderr)
        assert "ffffffff" in result.stderr + result.stdout
        assert "Traceback" not in result.stderr


def test_history_lists_the_initial_revision() -> None:
    revisions = migrate.history()
    assert revisions[0].revision == "0001"
    assert revisions[-1].is_head


def test_ddl_runs_in_a_transaction(empty_db: TestDatabase) -> None:
    # A statement that fails midway leaves nothing behind: the failed revision is rolled back whole. The collision
    # is a composite type named like the revision's table: a colliding *table* is refused before any DDL runs
    # (another system's database, tests/integration/test_coming_from.py).
    with empty_db.connect(autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA execution AUTHORIZATION {ROLE_PREFIX}owner")
        conn.execute(
            f"CREATE TYPE execution.orders AS (x int); ALTER TYPE execution.orders OWNER TO {ROLE_PREFIX}owner"
        )
    with pytest.raises(MigrationError, match=r"orders.*already exists"):
        migrate.upgrade(settings=empty_db.settings, url=empty_db.url)
    with empty_db.connect() as conn:
        assert conn.execute("SELECT to_regclass('shared.exchanges')").fetchone() == (None,)
        # The version table was created in the same transaction, so it is gone too.
        assert conn.execute("SELECT to_regclass('shared.alembic_version')").fetchone() == (None,)


def test_psycopg_is_the_driver() -> None:
    assert Version(psycopg.__version__) >= Version("3.2")


RECORD_FILL_DEF = "SELECT pg_get_functiondef(oid) FROM pg_proc WHERE proname = 'record_fill'"


def test_0022_keys_lead_with_the_account_and_downgrade_restores_0015(empty_db: TestDatabase) -> None:
    migrate.upgrade("0021", settings=empty_db.settings, url=empty_db.url)
    with empty_db.connect() as conn:
        conn.execute("INSERT INTO execution.accounts (account_id, name) VALUES ('A', 'a'), ('B', 'b')")
        security = conn.execute(
            "INSERT INTO shared.securities (symbol, asset_type) VALUES ('ACME', 'equity') RETURNING security_id"
        ).fetchone()
        assert security is not None
        order = conn.execute(
            "INSERT INTO execution.orders (client_order_id, account_id, security_id, side, order_type, quantity) "
            "VALUES ('00000000-0000-0000-0000-000000000001', 'A', %s, 'buy', 'market', 10) RETURNING order_id",
            security,
        ).fetchone()
        assert order is not None
        # 0015's function, called with its nine arguments
        conn.execute("SELECT * FROM execution.record_fill('E1', %s, 4, 10, 0, NULL, NULL, NULL, false)", order)
        before = conn.execute(RECORD_FILL_DEF).fetchall()
        conn.commit()

    migrate.upgrade(settings=empty_db.settings, url=empty_db.url)
    with empty_db.connect() as conn:
        keys = {
            str(name): str(definition)
            for name, definition in conn.execute(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE contype IN ('p', 'u', 'f') "
                "AND conrelid IN ('execution.orders'::regclass, 'execution.fills'::regclass, "
                "'execution.order_events'::regclass, 'risk_management.risk_limits'::regclass)"
            )
        }
        assert keys["pk_orders"] == "PRIMARY KEY (account_id, order_id)"
        assert keys["uq_orders_account_id_client_order_id"] == "UNIQUE (account_id, client_order_id)"
        assert keys["pk_fills"] == "PRIMARY KEY (account_id, fill_id)"
        assert keys["uq_fills_account_id_execution_id"] == "UNIQUE (account_id, execution_id)"
        assert keys["pk_order_events"] == "PRIMARY KEY (account_id, event_id, ts)"
        assert keys["pk_risk_limits"] == "PRIMARY KEY (account_id, limit_id)"
        for table in ("fills", "order_events"):
            assert keys[f"fk_{table}_account_id_order_id_orders"] == (
                "FOREIGN KEY (account_id, order_id) REFERENCES execution.orders(account_id, order_id)"
            )
        # the nine-argument call still resolves, and finds the fill of the order's account
        row = conn.execute(
            "SELECT duplicate FROM execution.record_fill('E1', %s, 4, 10, 0, NULL, NULL, NULL, false)", order
        ).fetchone()
        assert row == (True,)
        # a fill whose account is not its order's is refused by the database now
        with pytest.raises(psycopg.errors.ForeignKeyViolation, match="fk_fills_account_id_order_id_orders"):
            conn.execute(
                "INSERT INTO execution.fills (execution_id, order_id, account_id, security_id, side, quantity, "
                "price, executed_at) VALUES ('E2', %s, 'B', %s, 'buy', 1, 10, now())",
                (order[0], security[0]),
            )
        conn.rollback()

    migrate.downgrade("0021", settings=empty_db.settings, url=empty_db.url)
    with empty_db.connect() as conn:
        assert conn.execute(RECORD_FILL_DEF).fetchall() == before
        assert conn.execute("SELECT count(*) FROM execution.fills").fetchone() == (1,)
    migrate.upgrade(settings=empty_db.settings, url=empty_db.url)
    with empty_db.connect() as conn:
        # one client order id in two accounts: allowed at 0022, so a downgrade must refuse, naming the key
        conn.execute(
            "INSERT INTO execution.orders (client_order_id, account_id, security_id, side, order_type, quantity) "
            "VALUES ('00000000-0000-0000-0000-000000000001', 'B', %s, 'buy', 'market', 10)",
            security,
        )
        conn.commit()
    with pytest.raises(MigrationError, match="uq_orders_client_order_id"):
        migrate.downgrade("0021", settings=empty_db.settings, url=empty_db.url)
    assert migrate.status(settings=empty_db.settings, url=empty_db.url).current == (HEAD,)

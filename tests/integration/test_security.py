"""Least privilege, tenant isolation, the audit trail and encrypted secrets, proven against a real database."""

from __future__ import annotations

import base64
import json
import logging
import os
import uuid

import psycopg
import pytest
from pydantic import SecretStr

import tradedb
from tests.conftest import ROLE_PREFIX, TestDatabase, run_cli
from tradedb import ConfigError, LedgerTampered, NotFoundError, PermissionDenied
from tradedb.schema import privileges as roles
from tradedb.security import ledger
from tradedb.security import secrets as crypto

SERVICES = [r.service for r in roles.SERVICE_ROLES]


@pytest.fixture(scope="module")
def book(db: TestDatabase) -> dict[str, int]:
    """Two accounts with an order, a fill and a position each (written as the owner, who bypasses RLS)."""
    with tradedb.connect(db.url, settings=db.settings) as owner:
        owner.execute("INSERT INTO shared.securities (symbol, asset_type) VALUES ('SEC', 'equity')")
        security = owner.fetch_value("SELECT max(security_id) FROM shared.securities", readonly=False)
        ids = {"security": security}
        for account in ("A", "B"):
            owner.execute("INSERT INTO execution.accounts (account_id, name) VALUES (%s, %s)", (account, account))
            placed = owner.execution.submit_order(account_id=account, security_id=security, side="buy", quantity=5)
            owner.execution.record_fill(f"E-{account}", placed["order_id"], 5, 10)
            ids[account] = placed["order_id"]
    return ids


# --- least privilege ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_each_role_can_do_what_the_matrix_says_and_nothing_else(db: TestDatabase, service: str) -> None:
    role = next(r for r in roles.SERVICE_ROLES if r.service == service)
    sample = {
        "shared": ("exchanges", "name"),
        "data_ingestion": ("bars", "volume"),
        "execution": ("orders", "quantity"),
        "strategy_engine": ("strategies", "name"),
        "risk_management": ("risk_limits", "limit_value"),
        "analytics": ("portfolio_summary", "quantity"),
        "notification": ("notification_logs", "message"),
        "logging": ("system_logs", "message"),
    }
    with tradedb.connect(db.url, settings=db.settings, service=service, max_size=1) as scoped:
        for schema in role.reads:
            scoped.fetch_value(f"SELECT count(*) FROM {schema}.{sample[schema][0]}", readonly=False)
        for schema in role.writes:
            # Privileges are checked even when no row qualifies: INSERT, UPDATE and DELETE must all be allowed.
            table, column = f"{schema}.{sample[schema][0]}", sample[schema][1]
            scoped.execute(f"INSERT INTO {table} SELECT * FROM {table} WHERE false")
            scoped.execute(f"UPDATE {table} SET {column} = {column} WHERE false")
            scoped.execute(f"DELETE FROM {table} WHERE false")
        forbidden_schema = next(s for s in ("execution", "logging") if s not in role.writes)
        with pytest.raises(PermissionDenied):
            scoped.execute(
                f"DELETE FROM {forbidden_schema}.{'orders' if forbidden_schema == 'execution' else 'system_logs'}"
            )
        with pytest.raises(PermissionDenied):
            scoped.fetch_value("SELECT value_encrypted FROM shared.system_config LIMIT 1", readonly=False)
        with pytest.raises(PermissionDenied):
            scoped.execute("ALTER TABLE shared.exchanges ADD COLUMN x int")
        if service in roles.READ_ONLY_BY["shared.audit_log"]:
            scoped.fetch_value("SELECT count(*) FROM shared.audit_log", readonly=False)
        else:
            with pytest.raises(PermissionDenied):
                scoped.fetch_value("SELECT count(*) FROM shared.audit_log", readonly=False)


def test_verify_fails_when_grants_differ_and_roles_prints_the_matrix(db: TestDatabase) -> None:
    with db.connect(autocommit=True) as conn:
        conn.execute(f"GRANT INSERT ON execution.orders TO {ROLE_PREFIX}data_ingestion")
    try:
        result = run_cli("verify", "--json", env=db.env())
        assert result.returncode == 1
        problems = json.loads(result.stdout)["problems"]
        assert {
            "kind": "privilege",
            "name": f"{ROLE_PREFIX}data_ingestion on execution.orders",
            "detail": "has INSERT beyond the declared",
        } in problems
    finally:
        with db.connect(autocommit=True) as conn:
            conn.execute(f"REVOKE INSERT ON execution.orders FROM {ROLE_PREFIX}data_ingestion")
    matrix = run_cli("roles", env=db.env())
    assert matrix.returncode == 0, matrix.stderr
    assert f"{ROLE_PREFIX}execution" in matrix.stdout and "SIUD" in matrix.stdout
    assert "row-level security by account on: execution.accounts" in matrix.stdout


# --- tenant isolation -----------------------------------------------------------------------------------------


def test_every_path_sees_only_its_account(db: TestDatabase, book: dict[str, int]) -> None:
    with tradedb.connect(db.url, settings=db.settings, service="execution", account="A", max_size=1) as a:
        assert {r["account_id"] for r in a.fetch_all("SELECT account_id FROM execution.orders")} == {"A"}
        assert {r["account_id"] for r in a.fetch_all("SELECT account_id FROM execution.fills")} == {"A"}
        assert [p["account_id"] for p in a.execution.positions()] == ["A"]
        assert a.execution.position("B", book["security"]) is None
        assert {o["account_id"] for o in a.execution.orders()} == {"A"}
        assert a.execution.reconcile() == []
        assert a.fetch_value("SELECT count(*) FROM execution.order_events_default") == a.fetch_value(
            "SELECT count(*) FROM execution.order_events_default WHERE account_id = 'A'"
        )
        with pytest.raises(NotFoundError):
            a.execution.record_fill("steal", book["B"], 1, 10)
        with pytest.raises(PermissionDenied):  # row-level security's WITH CHECK
            a.execute("INSERT INTO execution.accounts (account_id, name) VALUES ('C', 'c')")
        # the same pooled connection, now for B, sees only B
        with a.transaction(account="B") as conn:
            assert conn.execute("SELECT DISTINCT account_id FROM execution.orders").fetchall() == [("B",)]
        assert {r["account_id"] for r in a.fetch_all("SELECT account_id FROM execution.orders")} == {"A"}
    with tradedb.connect(db.url, settings=db.settings, service="execution", max_size=1) as nobody:
        assert nobody.fetch_value("SELECT count(*) FROM execution.orders") == 0
        assert nobody.fetch_value("SELECT count(*) FROM execution.positions") == 0
        assert nobody.fetch_value("SELECT count(*) FROM execution.order_events") == 0
    with tradedb.connect(db.url, settings=db.settings, service="backoffice") as back:
        assert back.fetch_value("SELECT count(DISTINCT account_id) FROM execution.orders") == 2


def test_async_scope_is_per_transaction(db: TestDatabase, book: dict[str, int]) -> None:
    import asyncio

    async def main() -> list[str]:
        async with tradedb.connect_async(db.url, settings=db.settings, service="execution", max_size=1) as adb:
            seen = []
            for account in ("A", "B", "A"):
                async with adb.transaction(account=account) as conn:
                    cursor = await conn.execute("SELECT DISTINCT account_id FROM execution.orders")
                    seen += [r[0] for r in await cursor.fetchall()]
            return seen

    assert asyncio.run(main()) == ["A", "B", "A"]


# --- audit ----------------------------------------------------------------------------------------------------


def test_audit_rows_for_order_changes(db: TestDatabase, book: dict[str, int]) -> None:
    with tradedb.connect(db.url, settings=db.settings, service="execution", account="A", app_user="alice") as a:
        placed = a.execution.submit_order(account_id="A", security_id=book["security"], side="sell", quantity=1)
        a.execution.cancel_order(placed["order_id"], reason="test")
        a.execute("DELETE FROM execution.order_events WHERE order_id = %s", (placed["order_id"],))
        a.execute("DELETE FROM execution.orders WHERE order_id = %s", (placed["order_id"],))
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT operation, db_user, app_user, row_key, old_values->>'status', new_values->>'status'"
            " FROM shared.audit_log WHERE table_name = 'orders' AND row_key->>'order_id' = %s ORDER BY audit_id",
            (str(placed["order_id"]),),
        ).fetchall()
    assert rows == [
        ("INSERT", f"{ROLE_PREFIX}execution", "alice", {"order_id": placed["order_id"]}, None, "pending"),
        ("UPDATE", f"{ROLE_PREFIX}execution", "alice", {"order_id": placed["order_id"]}, "pending", "cancelled"),
        ("DELETE", f"{ROLE_PREFIX}execution", "alice", {"order_id": placed["order_id"]}, "cancelled", None),
    ]


def test_audit_log_is_append_only_and_tampering_is_detected(db: TestDatabase, book: dict[str, int]) -> None:
    for service in ("execution", "readonly"):
        with tradedb.connect(db.url, settings=db.settings, service=service) as scoped:
            with pytest.raises(PermissionDenied):
                scoped.execute("UPDATE shared.audit_log SET app_user = 'mallory'")
            with pytest.raises(PermissionDenied):
                scoped.execute("DELETE FROM shared.audit_log")
    ok = run_cli("audit", "verify", env=db.env())
    assert ok.returncode == 0, ok.stderr
    assert "every hash matches" in ok.stdout
    sealed = run_cli("audit", "seal", env=db.env())
    assert sealed.returncode == 0, sealed.stderr
    assert "sealed block " in sealed.stdout
    with db.connect() as conn:
        victim = conn.execute("SELECT audit_id FROM shared.audit_log ORDER BY audit_id OFFSET 2 LIMIT 1").fetchone()
        assert victim is not None
        conn.execute(f"SET ROLE {ROLE_PREFIX}owner")
        conn.execute("UPDATE shared.audit_log SET new_values = '{}' WHERE audit_id = %s", victim)
        conn.commit()
    with tradedb.connect(db.url, settings=db.settings) as owner, pytest.raises(LedgerTampered) as caught:
        ledger.verify(owner)
    assert caught.value.report.findings == [f"audit_id {victim[0]}: its content does not match its row_hash (edited)"]
    broken = run_cli("audit", "verify", env=db.env())
    assert broken.returncode == 1
    assert f"audit_id {victim[0]}: its content does not match" in broken.stderr
    shown = run_cli("audit", "show", "--table", "execution.orders", "--limit", "5", env=db.env())
    assert shown.returncode == 0 and "execution.orders" in shown.stdout


# --- secrets --------------------------------------------------------------------------------------------------


def key_entry(kid: str) -> str:
    return f"{kid}:{crypto.generate_key()}"


@pytest.fixture
def keys() -> tuple[str, str]:
    return key_entry("k1"), key_entry("k2")


def test_secrets_round_trip_rotation_and_wrong_keys(
    db: TestDatabase, keys: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    old, new = keys
    clear = "sk_live_" + uuid.uuid4().hex
    caplog.set_level(logging.DEBUG)
    one = db.settings.model_copy(update={"encryption_keys": SecretStr(old)})
    with tradedb.connect(db.url, settings=one) as handle:
        assert crypto.set_secret(handle, "broker_api_key", clear, description="broker") == "k1"
        assert crypto.get_secret(handle, "broker_api_key") == clear
        handle.execute(
            "INSERT INTO notification.notification_configs (owner, name, channel) VALUES ('ops', 'pager', 'webhook')"
        )
        config_id = handle.fetch_value("SELECT max(config_id) FROM notification.notification_configs", readonly=False)
        crypto.set_notification_secret(handle, config_id, clear + "-hook")
    with db.connect() as conn:
        stored = conn.execute(
            "SELECT value, value_encrypted, key_id FROM shared.system_config WHERE key = 'broker_api_key'"
        ).fetchone()
        dump = conn.execute("SELECT string_agg(t::text, '') FROM shared.audit_log t").fetchone()
    assert stored is not None and stored[0] is None and stored[2] == "k1"
    assert isinstance(stored[1], bytes) and clear.encode() not in stored[1]
    assert clear not in str(dump)
    # rotation: newest key first, the old one still listed
    both = db.settings.model_copy(update={"encryption_keys": SecretStr(f"{new},{old}")})
    with tradedb.connect(db.url, settings=both) as handle:
        assert crypto.rotate(handle) == 2
        assert crypto.get_secret(handle, "broker_api_key") == clear
        assert crypto.get_notification_secret(handle, config_id) == clear + "-hook"
    only_new = db.settings.model_copy(update={"encryption_keys": SecretStr(new)})
    with tradedb.connect(db.url, settings=only_new) as handle:
        assert crypto.get_secret(handle, "broker_api_key") == clear
    wrong = db.settings.model_copy(update={"encryption_keys": SecretStr(f"k2:{crypto.generate_key()}")})
    with (
        tradedb.connect(db.url, settings=wrong) as handle,
        pytest.raises(tradedb.SecretError, match="does not decrypt"),
    ):
        crypto.get_secret(handle, "broker_api_key")
    with tradedb.connect(db.url, settings=one) as handle, pytest.raises(tradedb.SecretError, match="'k2'"):
        crypto.get_secret(handle, "broker_api_key")
    assert clear not in caplog.text


@pytest.mark.parametrize(
    "value", ["", "k1", "k1:not-base64!", f"k1:{base64.b64encode(b'short').decode()}", "bad id!:AAAA"]
)
def test_malformed_keys_are_config_errors_without_key_material(value: str) -> None:
    settings = tradedb.Settings(_env_file=None, encryption_keys=value)
    with pytest.raises(ConfigError, match="TRADEDB_ENCRYPTION_KEYS") as info:
        crypto.Keyring.from_settings(settings)
    assert "AAAA" not in info.value.message and "not-base64" not in info.value.message


def test_cli_secrets_never_print_values(db: TestDatabase, keys: tuple[str, str]) -> None:
    old, _ = keys
    clear = "pw_" + uuid.uuid4().hex
    env = db.env(TRADEDB_ENCRYPTION_KEYS=old)
    import subprocess

    stored = subprocess.run(
        [
            str(os.path.join(os.path.dirname(__import__("sys").executable), "tradedb")),
            "secrets",
            "set",
            "exchange_password",
        ],
        input=clear + "\n",
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert stored.returncode == 0, stored.stderr
    listed = run_cli("secrets", "list", env=env)
    rotated = run_cli("secrets", "rotate", env=env)
    verbose = run_cli("--verbose", "secrets", "list", env=env)
    for result in (stored, listed, rotated, verbose):
        assert clear not in result.stdout + result.stderr
        assert old.split(":", 1)[1] not in result.stdout + result.stderr
    assert "exchange_password" in listed.stdout
    with db.connect() as conn:
        raw = conn.execute(
            "SELECT value_encrypted FROM shared.system_config WHERE key = 'exchange_password'"
        ).fetchone()
    assert raw is not None and isinstance(raw[0], bytes) and clear.encode() not in raw[0]


def test_passwords_never_reach_cli_output_or_dry_run_sql(db: TestDatabase) -> None:
    params = psycopg.conninfo.conninfo_to_dict(db.url)
    # The embedded server has a real password; a trust-auth server ignores the one we add.
    secret = str(params.get("password") or "hunter2-not-used")
    url = psycopg.conninfo.make_conninfo("", **{**params, "password": secret})
    env = db.env(DATABASE_URL=f"postgresql://{params['user']}:{secret}@{params['host']}:{params['port']}/{db.name}")
    assert psycopg.conninfo.conninfo_to_dict(url)["password"] == secret
    for args in (("setup", "--dry-run"), ("health",), ("verify",), ("migrate", "status"), ("--verbose", "health")):
        result = run_cli(*args, env=env)
        assert result.returncode == 0, (args, result.stderr)
        assert secret not in result.stdout + result.stderr, args

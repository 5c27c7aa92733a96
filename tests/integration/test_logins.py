"""Per-service logins against a real server: a service's own user cannot leave its role, and its password rotates
without breaking a running pool."""

from __future__ import annotations

import re
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from pydantic import SecretStr

import tradedb
from tests.conftest import TestDatabase, admin, run_cli
from tradedb.ops import logins
from tradedb.ops.setup import setup
from tradedb.ops.verify import verify
from tradedb.security import secrets as crypto
from tradedb.settings import SERVICES

KEYS = f"k1:{crypto.generate_key()}"


def drop_logins(server_url: str, prefix: str) -> None:
    with admin(server_url) as conn:
        for service in SERVICES:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(f"{prefix}{service}_login")))


@pytest.fixture
def logged(fresh_db: TestDatabase) -> Iterator[TestDatabase]:
    """A database whose cluster has no service logins before the test, and none after it."""
    drop_logins(fresh_db.server_url, fresh_db.settings.role_prefix)
    yield fresh_db
    drop_logins(fresh_db.server_url, fresh_db.settings.role_prefix)


def passwords_checked(server_url: str) -> bool:
    """Whether the server checks passwords on local TCP connections (the embedded one does; a trust setup not)."""
    with admin(server_url) as conn:
        rule = conn.execute(
            "SELECT auth_method FROM pg_hba_file_rules WHERE type = 'host' ORDER BY line_number LIMIT 1"
        ).fetchone()
    return rule is not None and rule[0] != "trust"


def test_service_logins_stay_in_their_role_and_rotate(logged: TestDatabase) -> None:
    env = logged.env(TRADEDB_ENCRYPTION_KEYS=KEYS)
    created = run_cli("setup", "--service-users", env=env)
    assert created.returncode == 0, created.stderr
    urls = dict(re.findall(r"^TRADEDB_([A-Z_]+)_DATABASE_URL=(\S+)$", created.stdout, re.MULTILINE))
    assert set(urls) == {s.upper() for s in SERVICES}
    prefix = logged.settings.role_prefix
    execution_url = urls["EXECUTION"]
    password = psycopg.conninfo.conninfo_to_dict(execution_url)["password"]
    # Shown once: a second setup creates nothing and prints no password.
    again = run_cli("setup", "--service-users", env=env)
    assert again.returncode == 0 and "DATABASE_URL=" not in again.stdout and str(password) not in again.stdout
    settings = logged.settings.model_copy(update={"encryption_keys": SecretStr(KEYS)})
    with tradedb.connect(logged.url, settings=settings, max_size=1) as owner:
        assert crypto.get_secret(owner, "login.execution") == password  # kept encrypted
        memberships = owner.fetch_all(logins.MEMBERSHIPS, (f"{prefix}execution_login",))
    assert [m["rolname"] for m in memberships] == [f"{prefix}execution"]
    assert verify(settings=settings, url=logged.server_url) == []

    # Even after RESET ROLE, the login holds the execution role's privileges and nothing more.
    with psycopg.connect(execution_url, autocommit=True) as conn:
        conn.execute("RESET ROLE")
        assert conn.execute("SELECT current_user").fetchone() == (f"{prefix}execution_login",)
        assert conn.execute("SELECT count(*) FROM shared.securities").fetchone() is not None  # it may read shared
        for statement in (
            "SELECT count(*) FROM analytics.performance_metrics",
            "SELECT secret_encrypted FROM notification.notification_configs",
            "INSERT INTO data_ingestion.load_runs (source, table_name) VALUES ('x', 'y')",
            "UPDATE shared.system_config SET value = 'true' WHERE key = 'maintenance_mode'",
            "SELECT * FROM shared.audit_log",
            f"SET ROLE {prefix}owner",
            f"SET ROLE {prefix}backoffice",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)

    # connect(service=...) logs in with the service's URL; a rotation leaves its open pool working.
    scoped = settings.model_copy(update={"execution_database_url": SecretStr(execution_url)})
    with tradedb.connect(settings=scoped, service="execution", min_size=1, max_size=1) as service:
        assert service.fetch_value("SELECT session_user") == f"{prefix}execution_login"
        new = logins.rotate_password("execution", settings=settings, url=logged.server_url)
        assert new != password
        assert service.fetch_value("SELECT session_user") == f"{prefix}execution_login"  # the same connection
    with tradedb.connect(logged.url, settings=settings, max_size=1) as owner:
        assert crypto.get_secret(owner, "login.execution") == new
    fresh = re.sub(r":[^:@/]+@", f":{new}@", execution_url, count=1)
    with psycopg.connect(fresh) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (f"{prefix}execution_login",)
    if passwords_checked(logged.server_url):
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(execution_url).close()


def test_operator_passwords_and_a_missing_key(logged: TestDatabase) -> None:
    operator_url = logins.login_url(logged.settings, logged.server_url, "logging", "operator-pw")
    chosen = logged.settings.model_copy(update={"logging_database_url": SecretStr(operator_url)})
    # Without TRADEDB_ENCRYPTION_KEYS a generated password could not be kept: nothing is created.
    with pytest.raises(tradedb.ConfigError, match="TRADEDB_ENCRYPTION_KEYS"):
        setup(settings=chosen, url=logged.server_url, service_users=True)
    with admin(logged.server_url) as conn:
        count = conn.execute(
            "SELECT count(*) FROM pg_roles WHERE rolname LIKE %s", (f"{logged.settings.role_prefix}%_login",)
        ).fetchone()
    assert count == (0,)
    keyed = chosen.model_copy(update={"encryption_keys": SecretStr(KEYS)})
    report = setup(settings=keyed, url=logged.server_url, service_users=True)
    assert "logging" not in report.service_passwords and len(report.service_passwords) == len(SERVICES) - 1
    assert all("operator-pw" not in statement for statement in report.sql)  # masked in what setup reports
    if passwords_checked(logged.server_url):
        with psycopg.connect(chosen.service_url("logging") or "") as conn:
            assert conn.execute("SELECT current_user").fetchone() is not None

"""Per-service logins (``tradedb setup --service-users``): a LOGIN user per service, a member of its role only.

A service that logs in as its own user holds its role's privileges and nothing else: ``RESET ROLE`` returns it to
itself, not to an administrator who is a member of every role. Its password is the one in
TRADEDB_<SERVICE>_DATABASE_URL when the operator set one, else generated: shown once and kept encrypted in
``shared.system_config`` (``login.<service>``, TRADEDB_ENCRYPTION_KEYS). PostgreSQL checks a password only when a
connection is made, so rotating one leaves open connections (a running pool) working until they reconnect.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg import sql

from tradedb.database import Database
from tradedb.db import direct as _connect
from tradedb.db.embedded import server_url
from tradedb.errors import ConfigError, NotFoundError
from tradedb.schema import privileges as roles
from tradedb.security import secrets as crypto
from tradedb.settings import SERVICES, Settings, load_settings, with_dbname

#: run(statement, action, shown): run or record one statement (``shown`` replaces it where it holds a password).
Run = Callable[[str, str | None, str], None]

MEMBERSHIPS = """
SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member
WHERE u.rolname = %s
"""


def configured_password(settings: Settings, service: str) -> str | None:
    """The password of TRADEDB_<SERVICE>_DATABASE_URL, when the operator set one."""
    url = settings.service_url(service)
    if url is None:
        return None
    password = psycopg.conninfo.conninfo_to_dict(url).get("password")
    return str(password) if password else None


def _password_statement(verb: str, login: str, password: str) -> tuple[str, str]:
    clause = verb + " ROLE {} LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD {}"
    statement = sql.SQL(clause).format(sql.Identifier(login), sql.Literal(password)).as_string(None)
    shown = sql.SQL(clause).format(sql.Identifier(login), sql.SQL("'***'")).as_string(None)
    return statement, shown


def ensure_service_logins(conn: Any, settings: Settings, run: Run, *, dry_run: bool = False) -> dict[str, str]:
    """Create each service's login (a member of its service role only); return the passwords generated now.

    An existing login keeps its password unless the operator configured one; memberships beyond its role are
    revoked. Generated passwords need TRADEDB_ENCRYPTION_KEYS (they are kept encrypted): a ConfigError before
    anything changes otherwise.
    """
    existing = {str(r[0]) for r in conn.execute("SELECT rolname FROM pg_roles")}
    configured = {service: configured_password(settings, service) for service in SERVICES}
    generated: dict[str, str] = {}
    if not dry_run and any(settings.service_login(s) not in existing and not configured[s] for s in SERVICES):
        crypto.Keyring.from_settings(settings)  # raises ConfigError naming TRADEDB_ENCRYPTION_KEYS
    for service in SERVICES:
        login, role = settings.service_login(service), roles.role_name(settings.role_prefix, service)
        chosen = configured[service]
        if login not in existing or chosen is not None:
            password = chosen or secrets.token_urlsafe(24)
            statement, shown = _password_statement("ALTER" if login in existing else "CREATE", login, password)
            run(statement, None if login in existing else f"create login {login}", shown)
            if chosen is None:
                generated[service] = password
        grant = roles.grant_membership_statement(role, login)
        run(grant, None, grant)
        held = set() if login not in existing else {str(r[0]) for r in conn.execute(MEMBERSHIPS, (login,))}
        for extra in sorted(held - {role}):
            revoke = sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(extra), sql.Identifier(login)).as_string(None)
            run(revoke, f"revoke {extra} from {login}", revoke)
    return generated


def store_passwords(trading_url: str, settings: Settings, passwords: dict[str, str]) -> None:
    """Keep generated passwords encrypted in shared.system_config (``login.<service>``)."""
    if not passwords:
        return
    with Database(trading_url, settings=settings, min_size=0, max_size=1, name="tradedb-setup") as db:
        for service, password in passwords.items():
            crypto.set_secret(
                db, f"login.{service}", password, description=f"password of {settings.service_login(service)}"
            )


def rotate_password(
    service: str, *, settings: Settings | None = None, url: str | None = None, password: str | None = None
) -> str:
    """Give a service's login a new password (generated unless given), kept encrypted; return it.

    Open connections stay open (PostgreSQL checks passwords at connect time); new ones need the new password.
    """
    settings = settings or load_settings()
    if service not in SERVICES:
        raise ConfigError(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
    target = url or server_url(settings)
    login = settings.service_login(service)
    new = password or secrets.token_urlsafe(24)
    crypto.Keyring.from_settings(settings)  # before anything changes: the new password must be kept
    with _connect.maintenance_connect(target, settings) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (login,)).fetchone() is None:
            raise NotFoundError(f"no login {login}: run `tradedb setup --service-users` first")
        conn.execute(_password_statement("ALTER", login, new)[0])
    store_passwords(with_dbname(target, settings.trading_db_name), settings, {service: new})
    return new


def login_url(settings: Settings, url: str, service: str, password: str) -> str:
    """TRADEDB_<SERVICE>_DATABASE_URL for a login: the server of ``url``, the trading database."""
    params = psycopg.conninfo.conninfo_to_dict(with_dbname(url, settings.trading_db_name))
    params.update(user=settings.service_login(service), password=password)
    host = str(params.get("host") or "localhost")
    host = f"[{host}]" if ":" in host else host
    auth = f"{quote(str(params['user']), safe='')}:{quote(password, safe='')}"
    return f"postgresql://{auth}@{host}:{params.get('port') or 5432}/{quote(settings.trading_db_name, safe='')}"

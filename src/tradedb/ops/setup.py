"""``tradedb setup``: databases, schemas, roles, migrations, grants, seed data, then verification.

Every step is idempotent: running setup twice changes nothing and succeeds. With ``dry_run`` it prints the SQL
it would run against the current state instead.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from tradedb._version import __version__
from tradedb.db import direct as _connect
from tradedb.db.embedded import server_url
from tradedb.errors import ConfigError, PermissionDenied, VerificationError
from tradedb.ops import citus, logins, maintenance, migrate
from tradedb.ops.verify import Problem, verify
from tradedb.schema import SERVICE_SCHEMAS
from tradedb.schema import privileges as roles
from tradedb.security import rls
from tradedb.settings import Settings, load_settings, with_dbname

logger = logging.getLogger(__name__)

#: Oldest supported server (NULLS NOT DISTINCT, MERGE and the privileges model tradedb relies on).
MIN_SERVER_VERSION = 150000

#: Defaults seeded into shared.system_config (existing keys are never overwritten).
SYSTEM_CONFIG_SEED: tuple[tuple[str, Any, str], ...] = (
    ("system_version", __version__, "tradedb version that first set up this database"),
    ("maintenance_mode", False, "When true, the trading services' tables refuse writes (reads go on)"),
    ("default_risk_limit", 10000, "Default max position notional (account currency) for new accounts"),
)
_SEED_SQL = (
    "INSERT INTO shared.system_config (key, value, description) VALUES (%s, %s, %s) ON CONFLICT (key) DO NOTHING"
)


@dataclass
class SetupReport:
    """What setup did (or, in a dry run, would do)."""

    actions: list[str] = field(default_factory=list)
    sql: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    dry_run: bool = False
    #: The prefect login's password when this run generated it (shown once, on request), else None.
    prefect_password: str | None = field(default=None, repr=False)
    #: Service logins' passwords this run generated (kept encrypted; shown once), by service.
    service_passwords: dict[str, str] = field(default_factory=dict, repr=False)

    def summary(self) -> list[str]:
        """What setup did, a line per kind of change with counts and names (for a person to read)."""
        groups: dict[str, list[str]] = {label: [] for _, label in _SUMMARY}
        other: list[str] = []
        for action in self.actions:
            prefix, label = next(((p, label) for p, label in _SUMMARY if action.startswith(p)), ("", ""))
            if label:
                groups[label].append(action.removeprefix(prefix))
            else:
                other.append(action)
        lines = [f"{label}: {len(names)} ({', '.join(names)})" for label, names in groups.items() if names]
        return lines + other


#: How ``SetupReport.summary`` groups actions: (action prefix, label).
_SUMMARY = (
    ("create role ", "roles created"),
    ("create login ", "logins created"),
    ("revoke ", "memberships revoked"),
    ("create database ", "databases created"),
    ("create schema ", "schemas created"),
    ("row-level security on ", "tables put under row-level security"),
    ("seed system_config.", "settings seeded"),
)


class _Runner:
    """Runs statements, or records them in a dry run."""

    def __init__(self, report: SetupReport) -> None:
        self.report = report

    def run(
        self,
        conn: Any,
        statement: str,
        action: str | None = None,
        params: tuple[Any, ...] = (),
        *,
        shown: str | None = None,
    ) -> None:
        """Run (or record) ``statement``; ``shown`` is what the report says instead when it holds a secret."""
        self.report.sql.append(shown or (statement if not params else _inline(statement, params)))
        if action:
            self.report.actions.append(action)
        if not self.report.dry_run:
            conn.execute(statement, params or None)

    def timed(self, name: str, fn: Callable[[], None]) -> None:
        started = time.perf_counter()
        fn()
        self.report.timings[name] = time.perf_counter() - started


def _inline(statement: str, params: tuple[Any, ...]) -> str:
    literals = [sql.Literal(p.obj if isinstance(p, Jsonb) else p).as_string(None) for p in params]
    return statement.replace("%s", "{}").format(*literals)


def setup(
    *, settings: Settings | None = None, url: str | None = None, dry_run: bool = False, service_users: bool = False
) -> SetupReport:
    """Create and migrate everything tradedb needs; raise VerificationError if the result does not verify.

    ``service_users``: also a LOGIN user per service, a member of its role only (``tradedb.ops.logins``).
    """
    settings = settings or load_settings()
    target = url or server_url(settings)
    report = SetupReport(dry_run=dry_run)
    runner = _Runner(report)
    prefix = settings.role_prefix
    owner = roles.owner_role_name(prefix)
    prefect_login = settings.prefect_role()
    started = time.perf_counter()

    with _connect.maintenance_connect(target, settings) as conn:
        server_version = int(conn.execute("SHOW server_version_num").fetchone()[0])  # type: ignore[index]
        if server_version < MIN_SERVER_VERSION:
            raise ConfigError(f"PostgreSQL {server_version // 10000} is too old: tradedb needs PostgreSQL 15 or newer")
        row = conn.execute(
            "SELECT current_user, rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        assert row is not None
        me, superuser, createrole, createdb = str(row[0]), bool(row[1]), bool(row[2]), bool(row[3])
        on_citus = citus.is_coordinator(conn, settings)
        if on_citus:
            citus.workers_of(conn)  # a coordinator with no workers is refused before anything changes
        if me in roles.all_role_names(prefix):
            raise ConfigError(f"connect as an administrative user, not as tradedb's own role {me!r}")
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (settings.trading_db_name,)).fetchone():
            # Another system's database is refused before anything changes, roles included.
            trading_url = with_dbname(target, settings.trading_db_name)
            with _connect.connect(trading_url, settings, autocommit=True) as trading:
                migrate.refuse_foreign_database(trading)

        def ensure_roles() -> None:
            existing = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles")}
            missing = [r for r in roles.all_role_names(prefix) if r not in existing]
            if missing and not (superuser or createrole):
                raise PermissionDenied(
                    f"user {me!r} may not create roles ({', '.join(missing)} missing): run setup as a user with "
                    f"CREATEROLE, or create the roles first"
                )
            for name in missing:
                runner.run(conn, roles.create_role_statement(name), f"create role {name}")
            ensure_prefect_login(existing)
            if service_users:
                report.service_passwords = logins.ensure_service_logins(
                    conn,
                    settings,
                    lambda statement, action, shown: runner.run(conn, statement, action, shown=shown),
                    dry_run=dry_run,
                )
            if not superuser:
                # Membership lets this user SET ROLE to the owner (migrations) and to services (scoping), and make
                # the prefect login own its database.
                for name in [*roles.all_role_names(prefix), prefect_login]:
                    runner.run(conn, roles.grant_membership_statement(name, me))

        def ensure_prefect_login(existing: set[str]) -> None:
            # The orchestrator logs in as a role of its own that owns the prefect database and nothing else.
            configured = settings.prefect_db_password.get_secret_value() if settings.prefect_db_password else None
            if prefect_login in existing and configured is None:
                return
            password = configured or secrets.token_urlsafe(24)
            verb = "ALTER" if prefect_login in existing else "CREATE"
            statement = sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(prefect_login), sql.Literal(password)
            )
            masked = sql.SQL(verb + " ROLE {} LOGIN PASSWORD '***'").format(sql.Identifier(prefect_login))
            action = f"create login {prefect_login}" if verb == "CREATE" else None
            runner.run(conn, statement.as_string(None), action, shown=masked.as_string(None))
            if configured is None:
                report.prefect_password = password

        def ensure_databases() -> None:
            rows = conn.execute("SELECT datname, pg_get_userbyid(datdba) FROM pg_database").fetchall()
            existing: dict[str, str] = {str(name): str(dba) for name, dba in rows}
            owners = {settings.trading_db_name: owner, settings.prefect_db_name: prefect_login}
            for dbname, db_owner in owners.items():
                if dbname in existing:
                    if dbname == settings.prefect_db_name and existing[dbname] != db_owner:
                        statement = sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                            sql.Identifier(dbname), sql.Identifier(db_owner)
                        )
                        runner.run(conn, statement.as_string(None), f"database {dbname} owned by {db_owner}")
                    continue
                if not (superuser or createdb):
                    raise PermissionDenied(f"user {me!r} may not create database {dbname!r}: grant CREATEDB")
                statement = sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(dbname), sql.Identifier(db_owner)
                )
                # On a Citus coordinator the trading database is created on every node (the prefect one is not).
                cluster_wide = on_citus and dbname == settings.trading_db_name
                if cluster_wide:
                    runner.run(conn, "SET citus.enable_create_database_propagation = on")
                runner.run(conn, statement.as_string(None), f"create database {dbname}")
                if cluster_wide:
                    runner.run(conn, "RESET citus.enable_create_database_propagation")
            runner.run(
                conn,
                sql.SQL("GRANT CONNECT, CREATE, TEMPORARY ON DATABASE {} TO {}")
                .format(sql.Identifier(settings.trading_db_name), sql.Identifier(owner))
                .as_string(None),
            )
            for name in roles.all_role_names(prefix)[1:]:
                runner.run(
                    conn,
                    sql.SQL("GRANT CONNECT ON DATABASE {} TO {}")
                    .format(sql.Identifier(settings.trading_db_name), sql.Identifier(name))
                    .as_string(None),
                )

        runner.timed("roles", ensure_roles)
        runner.timed("databases", ensure_databases)

    trading_url = with_dbname(target, settings.trading_db_name)
    if dry_run and not _connect.database_exists(target, settings, settings.trading_db_name):
        # Nothing to inspect yet: show the schemas, the whole migration and the grants.
        report.sql += [_create_schema(s, owner) for s in SERVICE_SCHEMAS]
        report.sql.append(migrate.offline_sql(settings=settings))
        report.sql += roles.grant_statements(prefix) + roles.restriction_statements(prefix)
        report.sql += [s for t in roles.RLS_TABLES for s in roles.rls_statements(prefix, t, set())]
        report.sql += _seed_sql()
        report.timings["total"] = time.perf_counter() - started
        return report

    with _connect.connect(trading_url, settings, autocommit=True) as conn:

        def ensure_schemas() -> None:
            existing = {r[0] for r in conn.execute("SELECT nspname FROM pg_namespace")}
            for schema in SERVICE_SCHEMAS:
                if schema not in existing:
                    runner.run(conn, _create_schema(schema, owner), f"create schema {schema}")

        runner.timed("schemas", ensure_schemas)

    if on_citus and not dry_run:
        with _connect.maintenance_connect(target, settings) as admin:
            runner.timed("cluster", lambda: citus.prepare(target, settings, admin, runner.run))

    def run_migrations() -> None:
        state = migrate.status(settings=settings, url=trading_url)
        if not state.pending:
            return
        if dry_run:
            start = state.current[0] if state.current else None
            report.sql.append(migrate.offline_sql(start, settings=settings))
            report.actions.append(f"migrate to {', '.join(state.heads)}")
            return
        migrate.upgrade(settings=settings, url=trading_url)
        report.actions.append(f"migrated {', '.join(state.pending)}")

    runner.timed("migrations", run_migrations)

    if on_citus and not dry_run:
        with _connect.connect(trading_url, settings, autocommit=True) as conn:

            def distribute() -> None:
                citus.distribute(conn, runner.run, settings.citus_shards)
                citus.ledgers_on_workers(target, settings, runner.run)

            runner.timed("distribution", distribute)

    with _connect.connect(trading_url, settings) as conn:

        def grant_and_seed() -> None:
            if on_citus:  # grants reach every shard; then reference tables change: one connection per node
                runner.run(conn, "SET LOCAL citus.multi_shard_modify_mode = 'sequential'")
            for statement in roles.grant_statements(prefix) + roles.restriction_statements(prefix):
                runner.run(conn, statement)
            protected: set[str] = set()
            for table, statement in rls.missing_statements(conn, prefix):
                runner.run(conn, statement, None if table in protected else f"row-level security on {table}")
                protected.add(table)
            if dry_run and not _has_table(conn, "shared", "system_config"):
                report.sql += _seed_sql()
                return
            existing = {r[0] for r in conn.execute("SELECT key FROM shared.system_config")}
            for key, value, description in SYSTEM_CONFIG_SEED:
                if key not in existing:
                    runner.run(conn, _SEED_SQL, f"seed system_config.{key}", (key, Jsonb(value), description))
            conn.commit()

        runner.timed("grants and seed", grant_and_seed)

    def create_partitions() -> None:
        # Partitions around today are created at run time (migrations are frozen text and never read the clock);
        # maintenance gives the new partitions of tenant tables their row-level security.
        created = maintenance.maintain(settings=settings, url=target, ahead=1, retention={}).created
        if created:
            report.actions.append(f"create {len(created)} partitions around now")

    if not dry_run:
        runner.timed("partitions", create_partitions)
        logins.store_passwords(trading_url, settings, report.service_passwords)

    if not dry_run:
        runner.timed("verify", lambda: report.problems.extend(verify(settings=settings, url=target)))
    report.timings["total"] = time.perf_counter() - started
    if report.problems:
        listing = "; ".join(f"{p.kind} {p.name}: {p.detail}" for p in report.problems[:10])
        raise VerificationError(f"setup finished but verification found {len(report.problems)} problem(s): {listing}")
    logger.info("setup done: %d change(s)", len(report.actions))
    logger.debug("setup actions: %s", json.dumps(report.actions))
    return report


def prefect_database_url(
    settings: Settings, url: str, *, password: str | None = None, show_password: bool = False
) -> str:
    """Return PREFECT_API_DATABASE_CONNECTION_URL (asyncpg driver): the prefect login on the server of ``url``.

    The password is ``password`` (what setup just generated), else PREFECT_DB_PASSWORD; masked unless
    ``show_password``.
    """
    params = psycopg.conninfo.conninfo_to_dict(url)
    user = quote(settings.prefect_role(), safe="")
    known = password or (settings.prefect_db_password.get_secret_value() if settings.prefect_db_password else None)
    secret = (quote(known, safe="") if show_password else "***") if known else None
    host = str(params.get("host") or "localhost")
    host = f"[{host}]" if ":" in host else host
    auth = f"{user}:{secret}" if secret else user
    return f"postgresql+asyncpg://{auth}@{host}:{params.get('port') or 5432}/{quote(settings.prefect_db_name, safe='')}"


def _seed_sql() -> list[str]:
    """Return the seed INSERTs with their values inlined (what a dry run prints)."""
    return [_inline(_SEED_SQL, (key, Jsonb(value), text)) for key, value, text in SYSTEM_CONFIG_SEED]


def _create_schema(schema: str, owner: str) -> str:
    return (
        sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}")
        .format(sql.Identifier(schema), sql.Identifier(owner))
        .as_string(None)
    )


def _has_table(conn: Any, schema: str, table: str) -> bool:
    return bool(conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{schema}.{table}",)).fetchone()[0])


def enable_pg_stat_statements(*, settings: Settings | None = None, url: str | None = None) -> str:
    """Create ``pg_stat_statements`` in the trading database (``tradedb setup --pg-stat-statements``); return what
    the operator still has to do, if anything (the module collects only when the server preloads it)."""
    settings = settings or load_settings()
    target = with_dbname(url or settings.direct_url() or server_url(settings), settings.trading_db_name)
    with _connect.connect(target, settings, autocommit=True) as conn:
        try:
            available = conn.execute(
                "SELECT 1 FROM pg_available_extensions WHERE name = 'pg_stat_statements'"
            ).fetchone()
            if available is None:
                raise ConfigError(
                    "pg_stat_statements is not available on this server: install PostgreSQL's contrib package"
                )
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            row = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()
        except psycopg.errors.InsufficientPrivilege as exc:
            raise PermissionDenied(
                f"creating pg_stat_statements needs a superuser or the database owner: {exc}"
            ) from exc
    preload = str(row[0]) if row else ""
    if "pg_stat_statements" not in [p.strip() for p in preload.split(",")]:
        return (
            "pg_stat_statements created; it collects once the server preloads it: "
            "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements' (keeping what is there), then restart"
        )
    return "pg_stat_statements created and collecting"

"""Migrations as library functions (the CLI's ``tradedb migrate`` calls these).

The Alembic environment ships inside the package (``tradedb/migrations``); plain ``alembic`` works with the
shipped ``alembic.ini`` too. Every online run holds a session advisory lock, so two migrators never interleave.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util.exc import CommandError
from psycopg import sql

from tradedb.db import direct as _connect
from tradedb.db.embedded import server_url
from tradedb.errors import MigrationError, MigrationLockTimeout, TradeDBError, UnknownRevisionError, translate
from tradedb.schema import SERVICE_SCHEMAS, metadata
from tradedb.schema import privileges as roles
from tradedb.schema.distribution import ON_CITUS, UNHELD_FOREIGN_KEYS
from tradedb.settings import Settings, load_settings

logger = logging.getLogger(__name__)

VERSION_TABLE_SCHEMA = "shared"
#: Key of the session advisory lock migrators take (advisory locks are scoped to one database).
MIGRATION_LOCK_KEY = 0x7472616465646201

#: Relations that say a database was built by another system when tradedb's version table is absent: a table of
#: the service schemas (the Python trading system's scripts), or Diesel's migration table (the Rust databaseschema).
_FOREIGN_RELATIONS = """
SELECT format('%%I.%%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE to_regclass('shared.alembic_version') IS NULL AND NOT c.relispartition
  AND ((n.nspname = ANY(%s) AND c.relkind IN ('r', 'p', 'v', 'm', 'f'))
       OR (n.nspname = 'public' AND c.relname = '__diesel_schema_migrations'))
ORDER BY 1
"""

_PARTITION_CHILDREN = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relispartition
"""


# --- what Alembic compares --------------------------------------------------------------------------------


def autogenerate_options(connection: sa.Connection) -> dict[str, Any]:
    """Return the ``context.configure`` options shared by env.py, ``check`` and ``verify``.

    Partitions (and so their indexes) are skipped: the partition manager owns them, and autogenerate must
    never propose to drop them.
    """
    children = {(row[0], row[1]) for row in connection.exec_driver_sql(_PARTITION_CHILDREN)}
    on_citus = bool(connection.exec_driver_sql(ON_CITUS).scalar())
    unheld = {name for _, name in UNHELD_FOREIGN_KEYS} if on_citus else set()

    def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
        if type_ == "schema":
            return name in SERVICE_SCHEMAS
        if type_ == "table":
            return (parent_names.get("schema_name"), name) not in children
        return True

    def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        # On a Citus cluster, setup drops the foreign keys it cannot hold: not a drift to repair.
        return not (type_ == "foreign_key_constraint" and name in unheld)

    return {
        "target_metadata": metadata,
        "version_table_schema": VERSION_TABLE_SCHEMA,
        "include_schemas": True,
        "include_name": include_name,
        "include_object": include_object,
        "compare_type": True,
    }


# --- the migration session: lock, timeouts, role -------------------------------------------------------


@contextlib.contextmanager
def migration_session(connection: sa.Connection, settings: Settings) -> Iterator[None]:
    """Hold the migration lock and set timeouts and the owner role for the duration of a migration run."""
    waited = _acquire_lock(connection, settings.migration_lock_wait)
    if waited > 0.5:
        logger.info("waited %.1f s for another migrator to finish", waited)
    try:
        connection.exec_driver_sql(f"SET lock_timeout = {int(settings.lock_timeout * 1000)}")
        connection.exec_driver_sql(f"SET statement_timeout = {int(settings.statement_timeout * 1000)}")
        role = roles.owner_role_name(settings.role_prefix)
        can_own = connection.execute(
            sa.text(
                "SELECT r.rolname IS NOT NULL AND r.rolname <> current_user"
                " AND pg_has_role(current_user, r.oid, 'MEMBER')"
                " AND has_database_privilege(r.oid, current_database(), 'CREATE')"
                " FROM (SELECT 1) one LEFT JOIN pg_roles r ON r.rolname = :role"
            ),
            {"role": role},
        ).scalar()
        if can_own:
            connection.exec_driver_sql(sql.SQL("SET ROLE {}").format(sql.Identifier(role)).as_string(None))
        connection.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{VERSION_TABLE_SCHEMA}"')
        if connection.in_transaction():
            connection.commit()
        yield
    finally:
        with contextlib.suppress(sa.exc.DBAPIError):
            if connection.in_transaction():
                connection.rollback()
            connection.exec_driver_sql("RESET ROLE")
            connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
            connection.commit()


def _acquire_lock(connection: sa.Connection, wait: float) -> float:
    started = time.monotonic()
    delay = 0.05
    while True:
        got = connection.execute(sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY}).scalar()
        if got:
            return time.monotonic() - started
        elapsed = time.monotonic() - started
        if elapsed >= wait:
            holder = connection.execute(
                sa.text(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                    " AND (classid::bigint << 32 | objid::bigint) = :key"
                ),
                {"key": MIGRATION_LOCK_KEY},
            ).scalar()
            connection.rollback()
            raise MigrationLockTimeout(
                f"another migration (server pid {holder or '?'}) held the migration lock for more than "
                f"{wait:g} s (TRADEDB_MIGRATION_LOCK_WAIT); wait for it to finish and run again"
            )
        time.sleep(min(delay, max(0.0, wait - elapsed)))
        delay = min(delay * 2, 1.0)


# --- configuration -------------------------------------------------------------------------------------


def script_location() -> Path:
    """Return the folder of the shipped Alembic environment."""
    return Path(str(resources.files("tradedb") / "migrations"))


def alembic_config(
    settings: Settings | None = None,
    *,
    url: str | None = None,
    connection: sa.Connection | None = None,
    stdout: io.StringIO | None = None,
) -> Config:
    """Build the Alembic Config tradedb runs with (no ini file needed)."""
    config = Config(output_buffer=stdout) if stdout is not None else Config()
    config.set_main_option("script_location", str(script_location()))
    config.set_main_option("path_separator", "os")
    config.attributes["settings"] = settings or load_settings()
    if url is not None:
        config.attributes["url"] = url
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _target_url(settings: Settings, url: str | None) -> str:
    # Migrations need a session (advisory lock, SET): never through PgBouncer's transaction pooling.
    return url or settings.direct_url() or server_url(settings)


# Alembic's environment is a module-level proxy (alembic.context), so one process runs one command at a time;
# between processes the advisory lock does the same job.
_IN_PROCESS = threading.Lock()


def _run(action: str, fn: Callable[[], None], wait: float = 3600.0) -> None:
    """Run an Alembic command, turning its failures into typed tradedb errors."""
    if not _IN_PROCESS.acquire(timeout=wait):
        raise MigrationLockTimeout(f"{action}: another migration command in this process ran for more than {wait:g} s")
    try:
        fn()
    except TradeDBError:
        raise
    except (CommandError, RevisionError) as exc:
        text = str(exc)
        if "Can't locate revision" in text or "No such revision" in text:
            raise UnknownRevisionError(
                f"{action}: {text}. The database may have been migrated by a newer tradedb: upgrade tradedb, or "
                f"name a revision from `tradedb migrate history`"
            ) from exc
        raise MigrationError(f"{action}: {text}") from exc
    except sa.exc.DBAPIError as exc:
        orig = exc.orig
        detail = translate(orig).message if isinstance(orig, psycopg.Error) else str(exc)
        raise MigrationError(f"{action} failed and was rolled back: {detail}") from exc
    finally:
        _IN_PROCESS.release()


# --- commands ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MigrationStatus:
    """Where a database stands against the shipped revisions."""

    current: tuple[str, ...]
    heads: tuple[str, ...]
    pending: tuple[str, ...] = field(default_factory=tuple)

    @property
    def up_to_date(self) -> bool:
        """True when the database is at the head revision."""
        return set(self.current) == set(self.heads)


@dataclass(frozen=True)
class Revision:
    """One shipped revision."""

    revision: str
    down_revision: str | None
    message: str
    is_head: bool


def refuse_foreign_database(conn: psycopg.Connection[Any]) -> None:
    """Raise MigrationError when the database holds another system's tables and no tradedb history.

    tradedb never builds its schema over tables it did not create (their columns, keys and types differ): it
    changes nothing, and the error says how to move such a database over (docs: coming-from.md).
    """
    found = [str(r[0]) for r in conn.execute(_FOREIGN_RELATIONS, (list(SERVICE_SCHEMAS),))]
    if found:
        dbname = conn.info.dbname
        shown = ", ".join(found[:8]) + (f" and {len(found) - 8} more" if len(found) > 8 else "")
        raise MigrationError(
            f"database {dbname!r} holds tables tradedb did not create ({shown}) and no tradedb migration history: "
            "tradedb changes nothing in it. Set tradedb up in a new database (DATABASE_URL naming it) and move "
            "the data over, as the docs' page 'Coming from the systems tradedb replaces' shows"
        )


def upgrade(revision: str = "head", *, settings: Settings | None = None, url: str | None = None) -> MigrationStatus:
    """Upgrade the trading database to ``revision`` (default: head) and return the new status.

    A database that holds another system's tables and no tradedb history is refused (MigrationError), unchanged.
    """
    settings = settings or load_settings()
    target = _target_url(settings, url)
    with _connect.connect(target, settings, autocommit=True) as conn:
        refuse_foreign_database(conn)
    _run(f"upgrade to {revision}", lambda: command.upgrade(alembic_config(settings, url=target), revision))
    return status(settings=settings, url=target)


def downgrade(revision: str, *, settings: Settings | None = None, url: str | None = None) -> MigrationStatus:
    """Downgrade the trading database to ``revision`` (``base`` removes every tradedb table)."""
    if not revision:
        raise MigrationError("downgrade needs a target revision (e.g. -1 or base)")
    settings = settings or load_settings()
    target = _target_url(settings, url)
    _run(f"downgrade to {revision}", lambda: command.downgrade(alembic_config(settings, url=target), revision))
    return status(settings=settings, url=target)


def current_revisions(connection: sa.Connection) -> tuple[str, ...]:
    """Return the revisions recorded in the database's version table."""
    context = MigrationContext.configure(connection, opts={"version_table_schema": VERSION_TABLE_SCHEMA})
    return tuple(context.get_current_heads())


def status(*, settings: Settings | None = None, url: str | None = None) -> MigrationStatus:
    """Return the database's current revision, the heads, and the revisions still to apply."""
    settings = settings or load_settings()
    target = _target_url(settings, url)
    script = ScriptDirectory.from_config(alembic_config(settings))
    with _connect.engine(target, settings).connect() as connection:
        current = current_revisions(connection)
    return _status_from(script, current)


def _status_from(script: ScriptDirectory, current: tuple[str, ...]) -> MigrationStatus:
    heads = tuple(script.get_heads())
    try:
        applied = {r.revision for r in script.iterate_revisions(current, "base")} if current else set()
    except (CommandError, RevisionError) as exc:
        raise UnknownRevisionError(
            f"the database is at revision {', '.join(current)}, which this tradedb does not know: "
            f"it was migrated by a newer tradedb; upgrade tradedb before using this database"
        ) from exc
    pending = tuple(
        r.revision for r in reversed(list(script.walk_revisions("base", "heads"))) if r.revision not in applied
    )
    return MigrationStatus(current=current, heads=heads, pending=pending)


def history(*, settings: Settings | None = None) -> list[Revision]:
    """Return the shipped revisions, oldest first."""
    script = ScriptDirectory.from_config(alembic_config(settings or load_settings()))
    heads = set(script.get_heads())
    revisions = [
        Revision(
            revision=r.revision,
            down_revision=r.down_revision
            if isinstance(r.down_revision, str) or r.down_revision is None
            else ",".join(r.down_revision),
            message=(r.doc or "").strip(),
            is_head=r.revision in heads,
        )
        for r in script.walk_revisions("base", "heads")
    ]
    return list(reversed(revisions))


def diff(*, settings: Settings | None = None, url: str | None = None) -> list[str]:
    """Return the differences between the models and the database, one readable line each."""
    settings = settings or load_settings()
    target = _target_url(settings, url)
    with _connect.engine(target, settings).connect() as connection:
        options = autogenerate_options(connection)
        context = MigrationContext.configure(connection, opts=options)
        changes = compare_metadata(context, metadata)
    return [_describe(change) for change in changes]


def _describe(change: Any) -> str:
    if isinstance(change, list):  # column modifications come grouped
        return "; ".join(_describe(c) for c in change)
    op, *args = change
    names = []
    for arg in args:
        name = getattr(arg, "name", None)
        table = getattr(arg, "table", None)
        if name is not None and table is not None and hasattr(table, "fullname"):
            names.append(f"{table.fullname}.{name}")
        elif hasattr(arg, "fullname"):
            names.append(arg.fullname)
        elif name is not None:
            names.append(str(name))
        elif isinstance(arg, str):
            names.append(arg)
    return f"{op} {' '.join(names)}".strip()


def check(*, settings: Settings | None = None, url: str | None = None) -> tuple[MigrationStatus, list[str]]:
    """Return pending revisions and model/database differences; both empty means all is well."""
    settings = settings or load_settings()
    target = _target_url(settings, url)
    state = status(settings=settings, url=target)
    differences = diff(settings=settings, url=target) if state.up_to_date else []
    return state, differences


def generate(
    message: str, *, autogenerate: bool = True, settings: Settings | None = None, url: str | None = None
) -> str:
    """Write a new revision into the shipped versions folder; return its path."""
    if not message.strip():
        raise MigrationError("a revision needs a message (-m)")
    settings = settings or load_settings()
    target = _target_url(settings, url) if autogenerate else None
    created: list[str] = []

    def run() -> None:
        script = command.revision(alembic_config(settings, url=target), message=message, autogenerate=autogenerate)
        scripts = script if isinstance(script, list) else [script]
        created.extend(s.path for s in scripts if s is not None)

    _run("generate", run)
    return created[0] if created else ""


def offline_sql(start: str | None = None, end: str = "head", *, settings: Settings | None = None) -> str:
    """Return the SQL that upgrading from ``start`` (base when None) to ``end`` would run, without a database."""
    settings = settings or load_settings()
    buffer = io.StringIO()
    config = alembic_config(settings, stdout=buffer)
    span = f"{start}:{end}" if start else end
    _run("offline SQL", lambda: command.upgrade(config, span, sql=True))
    return buffer.getvalue()

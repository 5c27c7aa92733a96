"""Plain connections for operations (setup, migrations, verify, health), with errors a user can act on."""

from __future__ import annotations

import psycopg
import sqlalchemy as sa
from psycopg.rows import TupleRow
from sqlalchemy.pool import NullPool

from tradedb.errors import ConnectionError, translate
from tradedb.masking import mask_url
from tradedb.settings import Settings, url_dbname, with_dbname

MAINTENANCE_DB = "postgres"


def _explain(exc: psycopg.OperationalError, url: str, settings: Settings) -> ConnectionError:
    text = str(exc).strip()
    params = psycopg.conninfo.conninfo_to_dict(url)
    user = params.get("user", "?")
    where = f"{params.get('host', 'localhost')}:{params.get('port', 5432)}"
    dbname = url_dbname(url)
    if "password authentication failed" in text or "no password supplied" in text:
        message = f"authentication failed for user {user!r} at {where}: check the password in DATABASE_URL"
    elif "does not exist" in text and "database" in text:
        message = f"database {dbname!r} does not exist at {where}: run `tradedb setup` to create it"
    elif "role" in text and "does not exist" in text:
        message = f"role {user!r} does not exist at {where}: check the user in DATABASE_URL"
    elif "timeout" in text.lower():
        message = (
            f"cannot reach PostgreSQL at {where} within {settings.connection_timeout:g} s "
            f"(DATABASE_CONNECTION_TIMEOUT): is the server running and reachable?"
        )
    else:
        first = text.splitlines()[0] if text else type(exc).__name__
        message = f"cannot connect to PostgreSQL at {where} ({mask_url(url)}): {first}"
    return ConnectionError(message, sqlstate=getattr(exc, "sqlstate", None))


def connect(
    url: str, settings: Settings, *, dbname: str | None = None, autocommit: bool = False
) -> psycopg.Connection[TupleRow]:
    """Open one psycopg connection to ``url`` (or its database ``dbname``), translating failures."""
    target = with_dbname(url, dbname) if dbname else url
    try:
        return psycopg.connect(target, autocommit=autocommit, **settings.connection_options())
    except psycopg.OperationalError as exc:
        raise _explain(exc, target, settings) from exc
    except psycopg.Error as exc:
        raise translate(exc, "connecting") from exc


def engine(url: str, settings: Settings, *, dbname: str | None = None) -> sa.Engine:
    """Return a SQLAlchemy engine (no pool) over psycopg for ``url``; used by Alembic and verification."""
    target = with_dbname(url, dbname) if dbname else url

    def creator() -> psycopg.Connection[TupleRow]:
        return connect(target, settings)

    return sa.create_engine("postgresql+psycopg://", creator=creator, poolclass=NullPool)


def maintenance_connect(url: str, settings: Settings) -> psycopg.Connection[TupleRow]:
    """Connect (autocommit) to a database that always exists, for server-wide work like CREATE DATABASE."""
    try:
        return connect(url, settings, dbname=MAINTENANCE_DB, autocommit=True)
    except ConnectionError as exc:
        if "does not exist" not in exc.message:
            raise
        return connect(url, settings, dbname="template1", autocommit=True)


def database_exists(url: str, settings: Settings, dbname: str) -> bool:
    """Tell whether database ``dbname`` exists on the server of ``url``."""
    with maintenance_connect(url, settings) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone() is not None

"""Alembic environment of tradedb: online runs hold the migration lock; offline runs emit plain SQL."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from tradedb.db import direct as _connect
from tradedb.db.embedded import server_url
from tradedb.ops.migrate import VERSION_TABLE_SCHEMA, autogenerate_options, migration_session
from tradedb.schema import SERVICE_SCHEMAS, metadata
from tradedb.settings import Settings, load_settings

config = context.config
settings: Settings = config.attributes.get("settings") or load_settings()


def run_offline() -> None:
    """Emit the SQL of the requested revisions without touching a database."""
    context.configure(
        dialect_name="postgresql",
        target_metadata=metadata,
        version_table_schema=VERSION_TABLE_SCHEMA,
        include_schemas=True,
        literal_binds=True,
        transaction_per_migration=True,
    )
    # The same guards the online runner sets, so a DBA applying this SQL gets them too.
    context.execute(f"SET lock_timeout = '{int(settings.lock_timeout * 1000)}ms'")
    context.execute(f"SET statement_timeout = '{int(settings.statement_timeout * 1000)}ms'")
    context.execute(f'CREATE SCHEMA IF NOT EXISTS "{VERSION_TABLE_SCHEMA}"')
    with context.begin_transaction():
        context.run_migrations()


def _migrate(connection: sa.Connection) -> None:
    # Options first: their catalog query opens a transaction that migration_session then commits, so
    # Alembic's own transaction below is the one that holds the DDL.
    options = autogenerate_options(connection)
    with migration_session(connection, settings):
        context.configure(connection=connection, **options)
        with context.begin_transaction():
            context.run_migrations()


def run_online() -> None:
    """Run migrations on a direct connection under the migration lock."""
    given = config.attributes.get("connection")
    if isinstance(given, sa.Connection):
        _migrate(given)
        return
    if isinstance(given, sa.Engine):  # pytest-alembic hands over an engine for some tests
        with given.connect() as connection:
            _migrate(connection)
        return
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url") or server_url(settings)
    with _connect.engine(url, settings).connect() as connection:
        _migrate(connection)


assert set(SERVICE_SCHEMAS) >= {VERSION_TABLE_SCHEMA}
if context.is_offline_mode():
    run_offline()
else:
    run_online()

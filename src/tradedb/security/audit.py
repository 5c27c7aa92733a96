"""The audit trail: which tables are audited, and listing changes (the ledger that proves them: ``ledger``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tradedb.db.connections import Connections
from tradedb.errors import ValidationError

#: (schema, table, key columns) of every audited table: execution, risk, strategy configuration, system config.
AUDITED_TABLES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("execution", "accounts", ("account_id",)),
    ("execution", "orders", ("order_id",)),
    ("execution", "fills", ("fill_id",)),
    ("execution", "positions", ("account_id", "security_id")),
    ("risk_management", "risk_limits", ("limit_id",)),
    ("strategy_engine", "strategies", ("strategy_id",)),
    ("strategy_engine", "strategy_parameters", ("parameter_id",)),
    ("strategy_engine", "strategy_instances", ("instance_id",)),
    ("shared", "system_config", ("key",)),
    ("notification", "notification_configs", ("config_id",)),
)


def changes(
    db: Connections, *, table: str | None = None, since: datetime | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Return the newest audit entries, optionally of one table (``schema.table``) and since a time."""
    schema = name = None
    if table is not None:
        schema, _, name = table.partition(".")
        if not name:
            raise ValidationError(f"name the table as schema.table, got {table!r}")
    if since is not None and since.tzinfo is None:
        raise ValidationError("--since needs a time zone (e.g. 2026-11-22T00:00:00Z)")
    if limit < 1:
        raise ValidationError("limit must be at least 1")
    return db.fetch_all(
        "SELECT audit_id, changed_at, table_schema, table_name, operation, row_key, db_user, app_user,"
        " old_values, new_values FROM shared.audit_log"
        " WHERE (%(schema)s::text IS NULL OR (table_schema = %(schema)s AND table_name = %(name)s))"
        " AND (%(since)s::timestamptz IS NULL OR changed_at >= %(since)s)"
        " ORDER BY audit_id DESC LIMIT %(limit)s",
        {"schema": schema, "name": name, "since": since, "limit": limit},
        readonly=False,
    )

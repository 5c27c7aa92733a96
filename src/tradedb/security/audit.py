"""The audit trail: which tables are audited, verification of the hash chain, and listing changes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tradedb.db.connections import Connections
from tradedb.errors import ValidationError

#: Session advisory lock key that serializes appends to the hash chain (transaction-scoped).
AUDIT_LOCK_KEY = 0x7472616465646202

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

CHAIN = """
SELECT audit_id, prev_hash, row_hash,
       sha256(coalesce(prev_hash, '\\x'::bytea) || convert_to(shared.audit_payload(audit_id, changed_at,
           table_schema, table_name, operation, row_key, old_values, new_values, db_user, app_user), 'UTF8'))
FROM shared.audit_log ORDER BY audit_id
"""


@dataclass(frozen=True)
class ChainReport:
    """Outcome of ``audit verify``: rows checked and the first broken link (None: the chain is intact)."""

    rows: int
    broken_at: int | None = None
    reason: str | None = None


def verify_chain(db: Connections) -> ChainReport:
    """Recompute every row's hash and link; name the first row that does not match."""
    previous: bytes | None = None
    rows = 0
    with db.connection() as conn, conn.cursor(name="tradedb_audit_chain") as cursor:
        cursor.itersize = 5000
        cursor.execute(CHAIN)
        for audit_id, prev_hash, row_hash, computed in cursor:
            rows += 1
            prev = bytes(prev_hash) if prev_hash is not None else None
            if prev != previous:
                return ChainReport(rows, audit_id, "prev_hash does not match the previous row's hash")
            if row_hash is None or bytes(row_hash) != bytes(computed):
                return ChainReport(rows, audit_id, "row_hash does not match the row's content")
            previous = bytes(row_hash)
    return ChainReport(rows)


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

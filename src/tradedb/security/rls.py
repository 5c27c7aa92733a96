"""Row-level security by account: what the tenant tables and each of their partitions need, applied."""

from __future__ import annotations

from typing import Any

from tradedb.schema import privileges as roles

_RLS_TARGETS = """
SELECT n.nspname || '.' || c.relname, c.relrowsecurity,
       coalesce(array_agg(p.polname) FILTER (WHERE p.polname IS NOT NULL), '{}')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_policy p ON p.polrelid = c.oid
WHERE c.oid = to_regclass(%(table)s)
   OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = to_regclass(%(table)s))
GROUP BY 1, 2 ORDER BY 1
"""


def missing_statements(conn: Any, prefix: str) -> list[tuple[str, str]]:
    """Return what enables tenant isolation on the RLS tables and their partitions (only what is missing).

    Partitions need their own policies: a query that names a partition directly does not see the parent's.
    """
    statements: list[tuple[str, str]] = []
    for table in roles.RLS_TABLES:
        for name, enabled, policies in conn.execute(_RLS_TARGETS, {"table": table}).fetchall():
            wanted = roles.rls_statements(prefix, name, set(policies))
            statements += [(name, s) for s in (wanted[1:] if enabled else wanted)]
    return statements


def protect_partitions(conn: Any, prefix: str) -> int:
    """Give every partition of the tenant tables the row-level security of its parent; return statements run."""
    statements = missing_statements(conn, prefix)
    for _, statement in statements:
        conn.execute(statement)
    return len(statements)


def protected_tables(conn: Any) -> list[str]:
    """The tables (not partitions) under row-level security, as schema.table."""
    rows = conn.execute(
        "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relrowsecurity AND NOT c.relispartition ORDER BY 1"
    ).fetchall()
    return [str(r[0]) for r in rows]

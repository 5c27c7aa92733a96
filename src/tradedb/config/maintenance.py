"""Maintenance mode's guard in the database (migration 0017): which tables it covers, and which it misses."""

from __future__ import annotations

from typing import Any

from tradedb.config._rules import GUARDED_SCHEMAS
from tradedb.config._sql import UNGUARDED

GUARD_FUNCTION = "SELECT to_regprocedure('shared.refuse_in_maintenance()') IS NOT NULL"


def unguarded_tables(conn: Any) -> list[str]:
    """Tables of the guarded schemas that lack the maintenance trigger (none before migration 0017 ran)."""
    if not conn.execute(GUARD_FUNCTION).fetchone()[0]:
        return []
    return [str(table) for (table,) in conn.execute(UNGUARDED, (list(GUARDED_SCHEMAS),))]

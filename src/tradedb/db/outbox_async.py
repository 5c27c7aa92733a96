"""Write events to the transactional outbox inside the caller's transaction (``shared.emit_events``).

The events commit with the change that caused them, or not at all; the relay publishes them afterwards.
"""

# source-only: the one source; tools/async_to_sync.py generates the sync twin.

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection, AsyncCursor

from tradedb.db.outbox_rules import NewEvent, emit_params, emit_sql


async def emit(conn: AsyncConnection[Any] | AsyncCursor[Any], events: Sequence[NewEvent]) -> None:
    """Write ``events`` (from ``outbox_rules.new_event``) in the open transaction of ``conn``; one statement."""
    if events:
        await conn.execute(emit_sql(list(events)), emit_params(list(events)))

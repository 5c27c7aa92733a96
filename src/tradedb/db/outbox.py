"""Write events to the transactional outbox inside the caller's transaction (``shared.emit_events``).

The events commit with the change that caused them, or not at all; the relay publishes them afterwards.
"""

# WARNING: generated from outbox_async.py by tools/async_to_sync.py; edit the async source and run
# `python tools/async_to_sync.py`. A unit test fails when this file is stale.

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import Connection, Cursor

from tradedb.db.outbox_rules import NewEvent, emit_params, emit_sql


def emit(conn: Connection[Any] | Cursor[Any], events: Sequence[NewEvent]) -> None:
    """Write ``events`` (from ``outbox_rules.new_event``) in the open transaction of ``conn``; one statement."""
    if events:
        conn.execute(emit_sql(list(events)), emit_params(list(events)))

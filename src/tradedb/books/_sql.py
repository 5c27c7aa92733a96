"""The SQL of books and replays (their events are read through binary COPYs: ``tradedb.columnar``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pyarrow as pa
from psycopg import sql

EVENT_TYPES: dict[str, pa.DataType] = {
    "ts": pa.timestamp("us", tz="UTC"),
    "security_id": pa.int64(),
    "source": pa.string(),
    "event_type": pa.string(),
    "order_ref": pa.string(),
    "side": pa.string(),
    "price": pa.float64(),
    "size": pa.float64(),
    "sequence": pa.int64(),
}
BOOK_COLUMNS = ("ts", "event_type", "order_ref", "side", "price", "size", "sequence")
REPLAY_COLUMNS = ("ts", "security_id", "source", "event_type", "order_ref", "side", "price", "size", "sequence")

SOURCES = """
SELECT source, first_ts, last_ts, row_count FROM data_ingestion.coverage
WHERE security_id = %s AND table_name = 'order_book_events' ORDER BY source
"""
SNAPSHOT_AT = """
SELECT ts, orders FROM data_ingestion.order_book_snapshots
WHERE security_id = %s AND source = %s AND ts <= %s ORDER BY ts DESC LIMIT 1
"""
SAVE_SNAPSHOT = """
INSERT INTO data_ingestion.order_book_snapshots (security_id, source, ts, order_count, event_count, orders)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (security_id, source, ts) DO UPDATE
SET order_count = EXCLUDED.order_count, event_count = EXCLUDED.event_count, orders = EXCLUDED.orders,
    created_at = EXCLUDED.created_at
"""
SNAPSHOTS = """
SELECT s.symbol, b.source, b.ts, b.order_count, b.event_count, b.created_at
FROM data_ingestion.order_book_snapshots b JOIN shared.securities s USING (security_id)
WHERE b.security_id = %s ORDER BY b.source, b.ts
"""
DUE = """
SELECT c.security_id, s.symbol, c.source, c.first_ts, c.last_ts,
       (SELECT max(b.ts) FROM data_ingestion.order_book_snapshots b
        WHERE b.security_id = c.security_id AND b.source = c.source) AS latest
FROM data_ingestion.coverage c JOIN shared.securities s USING (security_id)
WHERE c.table_name = 'order_book_events' ORDER BY s.symbol, c.source
"""
FORGET_FINDINGS = """
DELETE FROM data_ingestion.data_quality_logs
WHERE security_id = %s AND source = %s AND table_name = 'order_book_events' AND check_type = ANY(%s)
  AND row_ts > %s AND row_ts <= %s
"""
FINDING = """
INSERT INTO data_ingestion.data_quality_logs (security_id, table_name, source, check_type, status, row_ts, details)
VALUES (%s, 'order_book_events', %s, %s, %s, %s, %s)
"""


def book_events(security_id: int, source: str, after: datetime | None, first: datetime, upto: datetime) -> sql.Composed:
    """One book's events in (after, upto] (or [first, upto] without a snapshot), in event order."""
    lower = (
        sql.SQL("ts > {}").format(sql.Literal(after))
        if after is not None
        else sql.SQL("ts >= {}").format(sql.Literal(first))
    )
    return _select(
        BOOK_COLUMNS,
        sql.SQL("security_id = {} AND source = {} AND {} AND ts <= {}").format(
            sql.Literal(security_id), sql.Literal(source), lower, sql.Literal(upto)
        ),
        sql.SQL("ts, sequence"),
    )


def replay_events(security_ids: Sequence[int], start: datetime, end: datetime, source: str | None) -> sql.Composed:
    """The events of several securities in [start, end), in time order (ties: security, source, sequence)."""
    where = sql.SQL("security_id = ANY({}::bigint[]) AND ts >= {} AND ts < {}").format(
        sql.Literal(list(security_ids)), sql.Literal(start), sql.Literal(end)
    )
    if source is not None:
        where = sql.SQL("{} AND source = {}").format(where, sql.Literal(source))
    return _select(REPLAY_COLUMNS, where, sql.SQL("ts, security_id, source, sequence"))


def _select(columns: Sequence[str], where: sql.Composable, order: sql.Composable) -> sql.Composed:
    return sql.SQL("SELECT {} FROM data_ingestion.order_book_events WHERE {} ORDER BY {}").format(
        sql.SQL(", ").join(sql.Identifier(c) for c in columns), where, order
    )


def schema(columns: Sequence[str]) -> pa.Schema:
    return pa.schema([(c, EVENT_TYPES[c]) for c in columns])

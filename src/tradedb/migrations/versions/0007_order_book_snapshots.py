"""order books: data_ingestion.order_book_snapshots; event type fill; quality check types for book events

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 00:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVENT_TYPES = ("new", "modify", "cancel", "execute", "hidden_execute", "halt", "clear", "trade")
CHECK_TYPES = (
    "gap",
    "crossed_quote",
    "ohlc_violation",
    "outlier",
    "duplicate",
    "stale",
    "missing_value",
    "non_positive_price",
    "negative_size",
    "non_finite",
    "naive_timestamp",
    "unknown_security",
    "invalid_value",
)
BOOK_CHECK_TYPES = ("unknown_order", "duplicate_order", "crossed_book")


def upgrade() -> None:
    op.create_table(
        "order_book_snapshots",
        sa.Column("security_id", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False, comment="Every event at or before ts is in"),
        sa.Column("order_count", sa.Integer(), nullable=False),
        sa.Column("event_count", sa.BigInteger(), nullable=False, comment="Events applied since the previous snapshot"),
        sa.Column(
            "orders",
            sa.LargeBinary(),
            nullable=False,
            comment="Arrow IPC stream: order_ref, side, price, size, since (time priority), in priority order",
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("order_count >= 0", name=op.f("ck_order_book_snapshots_order_count_non_negative")),
        sa.PrimaryKeyConstraint("security_id", "source", "ts", name=op.f("pk_order_book_snapshots")),
        schema="data_ingestion",
        comment="The resting orders of a book after every event up to ts, so a book at a later instant replays only "
        "the events after it. Written by tradedb book snapshot / books.write_snapshots.",
    )
    _replace("order_book_events", "ck_order_book_events_event_type", "event_type", (*EVENT_TYPES, "fill"))
    _replace("data_quality_logs", "ck_data_quality_logs_check_type", "check_type", (*CHECK_TYPES, *BOOK_CHECK_TYPES))


def downgrade() -> None:
    listed = ", ".join(f"'{v}'" for v in BOOK_CHECK_TYPES)
    op.execute(f"DELETE FROM data_ingestion.data_quality_logs WHERE check_type IN ({listed})")  # noqa: S608 - constants
    _replace("data_quality_logs", "ck_data_quality_logs_check_type", "check_type", CHECK_TYPES)
    op.execute("DELETE FROM data_ingestion.order_book_events WHERE event_type = 'fill'")
    _replace("order_book_events", "ck_order_book_events_event_type", "event_type", EVENT_TYPES)
    op.drop_table("order_book_snapshots", schema="data_ingestion")


def _replace(table: str, name: str, column: str, values: tuple[str, ...]) -> None:
    """Swap a choice constraint for one with ``values``, NOT VALID (revision 0008 validates it in a transaction of
    its own, so the brief exclusive lock of ADD CONSTRAINT is not held through the scan)."""
    listed = ", ".join(f"'{v}'" for v in values)
    # Dropping is deliberate: the replacement below states the new guarantee.
    op.execute(f"-- squawk-ignore ban-drop-constraint\nALTER TABLE data_ingestion.{table} DROP CONSTRAINT {name}")
    op.execute(f"ALTER TABLE data_ingestion.{table} ADD CONSTRAINT {name} CHECK ({column} IN ({listed})) NOT VALID")

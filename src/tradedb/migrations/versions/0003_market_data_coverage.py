"""market data coverage: data_ingestion.coverage, maintained by the writers; quality check type invalid_value

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 22:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "coverage",
        sa.Column("security_id", sa.BigInteger(), nullable=False),
        sa.Column("table_name", sa.Text(), nullable=False, comment="quotes, market_trades, bars, ..."),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column(
            "timeframe",
            sa.String(length=4),
            server_default="",
            nullable=False,
            comment="Bar timeframe; empty for tick data",
        ),
        sa.Column("first_ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("row_count", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("row_count >= 0", name=op.f("ck_coverage_row_count_non_negative")),
        sa.CheckConstraint("first_ts <= last_ts", name=op.f("ck_coverage_first_not_after_last")),
        sa.CheckConstraint(
            "table_name IN ('quotes', 'market_trades', 'bars', 'order_book_events')",
            name=op.f("ck_coverage_table_name"),
        ),
        sa.PrimaryKeyConstraint("security_id", "table_name", "source", "timeframe", name=op.f("pk_coverage")),
        schema="data_ingestion",
        comment="What market data is stored: first and last time and row count per security, table, source and "
        "timeframe. Maintained by tradedb's writers in the same transaction as the data, and by retention.",
    )

    _check_types((*CHECK_TYPES, "invalid_value"))


def downgrade() -> None:
    op.execute("DELETE FROM data_ingestion.data_quality_logs WHERE check_type = 'invalid_value'")
    _check_types(CHECK_TYPES)
    op.drop_table("coverage", schema="data_ingestion")


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
)


def _check_types(values: tuple[str, ...]) -> None:
    """Swap the check-type constraint for one with ``values``, NOT VALID (revision 0004 validates it in a
    transaction of its own, so the brief exclusive lock of ADD CONSTRAINT is not held through the scan)."""
    listed = ", ".join(f"'{v}'" for v in values)
    table = "data_ingestion.data_quality_logs"
    # Dropping is deliberate: the replacement below states the new guarantee.
    op.execute(f"-- squawk-ignore ban-drop-constraint\nALTER TABLE {table} DROP CONSTRAINT {NAME}")
    op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {NAME} CHECK (check_type IN ({listed})) NOT VALID")


NAME = "ck_data_quality_logs_check_type"

"""last quotes: data_ingestion.last_quotes, the newest quote per security and source, kept by the writers

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 01:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Empty at first: latest_quotes falls back to probing the quotes table for securities without a row here.
    op.create_table(
        "last_quotes",
        sa.Column("security_id", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("bid", sa.Double(), nullable=True),
        sa.Column("ask", sa.Double(), nullable=True),
        sa.Column("bid_size", sa.Double(), nullable=True),
        sa.Column("ask_size", sa.Double(), nullable=True),
        sa.Column("contributor", sa.String(length=64), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("security_id", "source", name=op.f("pk_last_quotes")),
        schema="data_ingestion",
        comment="The newest quote per security and source, kept by tradedb's quote writers in the write's "
        "transaction (latest_quotes reads it where it agrees with coverage).",
    )


def downgrade() -> None:
    op.drop_table("last_quotes", schema="data_ingestion")

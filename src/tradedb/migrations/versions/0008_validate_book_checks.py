"""validate the constraints 0007 widened (event_type of order_book_events, check_type of data_quality_logs)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 00:15:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE data_ingestion.order_book_events VALIDATE CONSTRAINT ck_order_book_events_event_type")
    op.execute("ALTER TABLE data_ingestion.data_quality_logs VALIDATE CONSTRAINT ck_data_quality_logs_check_type")


def downgrade() -> None:
    """Nothing to undo: 0007's downgrade replaces the constraints."""

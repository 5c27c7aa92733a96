"""validate data_quality_logs' widened check_type constraint (added NOT VALID by 0003)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 22:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE data_ingestion.data_quality_logs VALIDATE CONSTRAINT ck_data_quality_logs_check_type")


def downgrade() -> None:
    """Nothing to undo: 0003's downgrade replaces the constraint."""

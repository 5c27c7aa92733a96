"""quotes: contributor column (who quoted, when a source carries several quoters' quotes)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 17:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable without a default: a catalog-only change, no table rewrite (also on every partition).
    op.add_column(
        "quotes",
        sa.Column(
            "contributor",
            sa.String(length=64),
            nullable=True,
            comment="Who quoted (bank, venue, market maker) when a source carries several quoters' quotes; quotes "
            "of different contributors at one instant are distinct rows",
        ),
        schema="data_ingestion",
    )


def downgrade() -> None:
    op.drop_column("quotes", "contributor", schema="data_ingestion")

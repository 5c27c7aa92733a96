"""bars: no foreign key to the security master (writers check ids, as on the tick tables): appends at COPY speed

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 18:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CONSTRAINT = "fk_bars_security_id_securities"
COMMENT_BEFORE = "OHLCV bars; ts is the start of the bucket. Prices are double precision."
COMMENT_AFTER = (
    "OHLCV bars; ts is the start of the bucket. Prices are double precision; security_id has no foreign key, "
    "for COPY speed: ingestion resolves it through the security master."
)


def upgrade() -> None:
    # A foreign-key check per row held bar appends to a seventh of the tick tables' rate; tradedb's writers
    # refuse unknown ids themselves (an unknown_security finding), as they do for quotes and trades.
    op.drop_constraint(CONSTRAINT, "bars", schema="data_ingestion", type_="foreignkey")
    op.create_table_comment("bars", COMMENT_AFTER, existing_comment=COMMENT_BEFORE, schema="data_ingestion")


def downgrade() -> None:
    op.create_table_comment("bars", COMMENT_BEFORE, existing_comment=COMMENT_AFTER, schema="data_ingestion")
    op.create_foreign_key(
        CONSTRAINT,
        "bars",
        "securities",
        ["security_id"],
        ["security_id"],
        source_schema="data_ingestion",
        referent_schema="shared",
    )

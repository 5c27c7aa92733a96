"""parquet archives: the catalog of partitions moved to Parquet files by `tradedb archive`

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-30 01:30:00

One row per archived file (a partition and a range of securities) with the checksums that were compared before its
partition was dropped: the rows' (column by column) and the file's (checked on every read). Reads of quotes, trades
and bars look here for the ranges PostgreSQL no longer holds. The table refuses writes in maintenance mode, as every
table of the data_ingestion schema does (0017).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | Sequence[str] | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

D = "data_ingestion"
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "archives",
        sa.Column("archive_id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("table_name", sa.Text(), nullable=False, comment="quotes, market_trades or bars"),
        sa.Column(
            "partition_name", sa.Text(), nullable=False, comment="The partition the file was made from (dropped)"
        ),
        sa.Column("range_start", TS, nullable=False, comment="The partition's lower bound (inclusive)"),
        sa.Column("range_end", TS, nullable=False, comment="The partition's upper bound (exclusive)"),
        sa.Column("seq", sa.Integer(), nullable=False, comment="The file's place among its partition's files"),
        sa.Column("first_security_id", sa.BigInteger(), nullable=False),
        sa.Column("last_security_id", sa.BigInteger(), nullable=False),
        sa.Column("location", sa.Text(), nullable=False, comment="The archive's folder or s3:// URL (no credentials)"),
        sa.Column("path", sa.Text(), nullable=False, comment="The file, relative to location"),
        sa.Column("row_count", sa.BigInteger(), nullable=False),
        sa.Column("file_bytes", sa.BigInteger(), nullable=False),
        sa.Column(
            "file_sha256", sa.Text(), nullable=False, comment="SHA-256 of the file's bytes, checked on every read"
        ),
        sa.Column(
            "rows_sha256",
            sa.Text(),
            nullable=False,
            comment="SHA-256 of the rows (column by column), equal for the partition and the file read back",
        ),
        sa.Column("archived_at", TS, server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("table_name IN ('quotes', 'market_trades', 'bars')", name=op.f("ck_archives_table_name")),
        sa.CheckConstraint("range_start < range_end", name=op.f("ck_archives_range_ordered")),
        sa.CheckConstraint("first_security_id <= last_security_id", name=op.f("ck_archives_securities_ordered")),
        sa.CheckConstraint("row_count > 0 AND file_bytes > 0", name=op.f("ck_archives_not_empty")),
        sa.PrimaryKeyConstraint("archive_id", name=op.f("pk_archives")),
        sa.UniqueConstraint("table_name", "range_start", "seq", name=op.f("uq_archives_table_name_range_start_seq")),
        schema=D,
        comment="Parquet files of partitions moved out of PostgreSQL by `tradedb archive`: one row per file (a "
        "partition and a range of securities), verified before its partition was dropped. Reads of the range read "
        "the file.",
    )
    op.create_index(
        op.f("ix_archives_table_name_range_end_range_start"),
        "archives",
        ["table_name", "range_end", "range_start"],
        unique=False,
        schema=D,
    )
    op.execute(
        "CREATE TRIGGER maintenance_mode BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE "
        "ON data_ingestion.archives FOR EACH STATEMENT EXECUTE FUNCTION shared.refuse_in_maintenance()"
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_archives_table_name_range_end_range_start"), table_name="archives", schema=D)
    op.drop_table("archives", schema=D)

"""logs: process and sequence of each log record; correlation, host, process and database time of timings

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-29 09:40:00

The database log handler (``tradedb.observe``) writes records in batches and replays spilled ones later, so
arrival order is not logging order: ``pid`` and ``seq`` (per process, from 1) give the order back. Timings gain
what ties them to log records (``correlation_id``, ``host``, ``pid``) and the database's share (``db_ms``).
Nullable columns without defaults: catalog-only changes, no rewrite.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "logging"

Columns = tuple[tuple[str, sa.types.TypeEngine[Any], str | None], ...]

SYSTEM_LOGS: Columns = (
    ("pid", sa.Integer(), "Operating-system process id of the writer"),
    ("seq", sa.BigInteger(), "Order of the record within its process (pid, from 1)"),
)
PERFORMANCE_LOGS: Columns = (
    ("correlation_id", sa.Text(), "Id that ties the timing to log records of one request"),
    ("host", sa.Text(), None),
    ("pid", sa.Integer(), "Operating-system process id of the writer"),
    ("db_ms", sa.Double(), "Time spent holding database connections during the operation, in milliseconds"),
)


def upgrade() -> None:
    for table, columns in (("system_logs", SYSTEM_LOGS), ("performance_logs", PERFORMANCE_LOGS)):
        for name, type_, comment in columns:
            op.add_column(table, sa.Column(name, type_, nullable=True, comment=comment), schema=S)


def downgrade() -> None:
    for table, columns in (("system_logs", SYSTEM_LOGS), ("performance_logs", PERFORMANCE_LOGS)):
        for name, _, _ in reversed(columns):
            op.drop_column(table, name, schema=S)

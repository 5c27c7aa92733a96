"""Schema ``logging``: structured service logs and performance measurements.

(The module is not called ``logging`` so that it never shadows the standard library.)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from tradedb.schema._base import Base, Float, Timestamp, one_of, partitioned

SCHEMA = "logging"

LEVELS = ("debug", "info", "warning", "error", "critical")


class SystemLog(Base):
    __tablename__ = "system_logs"
    __table_args__ = partitioned(
        SCHEMA,
        "ts",
        "day",
        "Structured log records of the platform's services.",
        one_of("level", LEVELS),
        sa.Index(None, "service", "ts"),
        sa.Index(None, "correlation_id", postgresql_where=sa.text("correlation_id IS NOT NULL")),
    )
    __mapper_args__ = {"primary_key": ["service", "ts"]}

    ts: Mapped[datetime] = mapped_column(Timestamp, server_default=sa.func.now())
    service: Mapped[str] = mapped_column(sa.Text)
    level: Mapped[str] = mapped_column(sa.Text)
    logger: Mapped[str | None] = mapped_column(sa.Text)
    message: Mapped[str] = mapped_column(sa.Text)
    data: Mapped[Any | None] = mapped_column(JSONB)
    correlation_id: Mapped[str | None] = mapped_column(sa.Text, comment="Id that ties records of one request")
    host: Mapped[str | None] = mapped_column(sa.Text)
    pid: Mapped[int | None] = mapped_column(sa.Integer, comment="Operating-system process id of the writer")
    seq: Mapped[int | None] = mapped_column(
        sa.BigInteger, comment="Order of the record within its process (pid, from 1)"
    )


class PerformanceLog(Base):
    __tablename__ = "performance_logs"
    __table_args__ = partitioned(
        SCHEMA,
        "ts",
        "day",
        "Timings and resource use of service operations.",
        sa.CheckConstraint("duration_ms >= 0", name="duration_non_negative"),
        sa.CheckConstraint("rows IS NULL OR rows >= 0", name="rows_non_negative"),
        sa.CheckConstraint("cpu_percent IS NULL OR cpu_percent >= 0", name="cpu_non_negative"),
        sa.Index(None, "service", "operation", "ts"),
    )
    __mapper_args__ = {"primary_key": ["service", "operation", "ts"]}

    ts: Mapped[datetime] = mapped_column(Timestamp, server_default=sa.func.now())
    service: Mapped[str] = mapped_column(sa.Text)
    operation: Mapped[str] = mapped_column(sa.Text)
    duration_ms: Mapped[float] = mapped_column(Float)
    rows: Mapped[int | None] = mapped_column(sa.BigInteger)
    memory_mb: Mapped[float | None] = mapped_column(Float)
    cpu_percent: Mapped[float | None] = mapped_column(Float)
    data: Mapped[Any | None] = mapped_column(JSONB)
    correlation_id: Mapped[str | None] = mapped_column(
        sa.Text, comment="Id that ties the timing to log records of one request"
    )
    host: Mapped[str | None] = mapped_column(sa.Text)
    pid: Mapped[int | None] = mapped_column(sa.Integer, comment="Operating-system process id of the writer")
    db_ms: Mapped[float | None] = mapped_column(
        Float, comment="Time spent holding database connections during the operation, in milliseconds"
    )

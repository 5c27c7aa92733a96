"""Schema ``risk_management``: limits checked before trading, and risk events."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from tradedb.schema._base import (
    Base,
    Money,
    Timestamp,
    created_at,
    one_of,
    partitioned,
    plain,
    sequence_default,
    updated_at,
)

SCHEMA = "risk_management"

LIMIT_TYPES = (
    "max_position_quantity",
    "max_position_notional",
    "max_order_quantity",
    "max_daily_loss",
    "max_drawdown",
)
SEVERITIES = ("low", "medium", "high", "critical")


class RiskLimit(Base):
    __tablename__ = "risk_limits"
    __table_args__ = plain(
        SCHEMA,
        "Pre-trade limits per account, account-wide (security_id NULL) or per security.",
        sa.UniqueConstraint("account_id", "security_id", "limit_type", postgresql_nulls_not_distinct=True),
        one_of("limit_type", LIMIT_TYPES),
        sa.CheckConstraint("limit_value > 0", name="limit_value_positive"),
    )

    limit_id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    account_id: Mapped[str] = mapped_column(sa.ForeignKey("execution.accounts.account_id"))
    security_id: Mapped[int | None] = mapped_column(
        sa.BigInteger,
        sa.ForeignKey("shared.securities.security_id"),
        comment="NULL: the limit is account-wide",
    )
    limit_type: Mapped[str] = mapped_column(sa.Text)
    limit_value: Mapped[Decimal] = mapped_column(Money, comment="Quantity, or an amount in the account currency")
    is_active: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.true())
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()


_risk_seq, _risk_default = sequence_default(SCHEMA, "risk_events", "event_id")


class RiskEvent(Base):
    __tablename__ = "risk_events"
    __table_args__ = partitioned(
        SCHEMA,
        "ts",
        "month",
        "Risk events: limit breaches, blocked orders, alerts.",
        one_of("severity", SEVERITIES),
        sa.CheckConstraint("resolved_at IS NULL OR resolved_at >= ts", name="resolved_after_event"),
        sa.Index(None, "account_id", "ts"),
    )

    event_id: Mapped[int] = mapped_column(sa.BigInteger, server_default=_risk_default, primary_key=True)
    ts: Mapped[datetime] = mapped_column(Timestamp, primary_key=True, server_default=sa.func.now())
    account_id: Mapped[str] = mapped_column(sa.String(64))
    security_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    order_id: Mapped[int | None] = mapped_column(sa.BigInteger, comment="Order the event concerns, if any")
    event_type: Mapped[str] = mapped_column(sa.Text, comment="e.g. limit_breach, order_blocked")
    severity: Mapped[str] = mapped_column(sa.Text)
    message: Mapped[str] = mapped_column(sa.Text)
    data: Mapped[Any | None] = mapped_column(JSONB)
    resolved_at: Mapped[datetime | None] = mapped_column(Timestamp)

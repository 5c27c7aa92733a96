"""Schema ``risk_management``: limits checked before and after trading, each account's risk state, and risk
events."""

from __future__ import annotations

from datetime import date, datetime
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
from tradedb.schema.names import LIMIT_TYPES, SEVERITIES

SCHEMA = "risk_management"


class RiskLimit(Base):
    __tablename__ = "risk_limits"
    __table_args__ = plain(
        SCHEMA,
        "Limits per account, account-wide (security_id NULL) or per security: quantities and notionals are checked "
        "before an order, max_daily_loss and max_drawdown after every fill and mark-to-market.",
        sa.UniqueConstraint("account_id", "security_id", "limit_type", postgresql_nulls_not_distinct=True),
        sa.PrimaryKeyConstraint("account_id", "limit_id"),
        sa.Index(None, "limit_id"),
        one_of("limit_type", LIMIT_TYPES),
        sa.CheckConstraint("limit_value > 0", name="limit_value_positive"),
    )

    limit_id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity())
    account_id: Mapped[str] = mapped_column(sa.ForeignKey("execution.accounts.account_id"))
    security_id: Mapped[int | None] = mapped_column(
        sa.BigInteger,
        sa.ForeignKey("shared.securities.security_id"),
        comment="NULL: the limit is account-wide",
    )
    limit_type: Mapped[str] = mapped_column(sa.Text)
    limit_value: Mapped[Decimal] = mapped_column(Money, comment="Quantity, or an amount in the account currency")
    is_active: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.true())
    halt_on_breach: Mapped[bool] = mapped_column(
        sa.Boolean, server_default=sa.false(), comment="A breach halts the account (only reducing orders pass)"
    )
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()


class AccountRisk(Base):
    __tablename__ = "account_risk"
    __table_args__ = plain(
        SCHEMA,
        "Each account's post-trade risk state: PnL at the session start and its high-water mark (what "
        "max_daily_loss and max_drawdown are measured from), the last check, and a halt.",
        sa.CheckConstraint("(halted_at IS NULL) = (halt_reason IS NULL)", name="halt_has_reason"),
    )

    account_id: Mapped[str] = mapped_column(sa.ForeignKey("execution.accounts.account_id"), primary_key=True)
    session_date: Mapped[date] = mapped_column(sa.Date, comment="Trading day (UTC) the session fields refer to")
    session_start_pnl: Mapped[Decimal] = mapped_column(
        Money, comment="PnL (realized + unrealized, net of commissions) when the session began"
    )
    high_water_pnl: Mapped[Decimal] = mapped_column(Money, comment="Highest PnL seen by a check")
    pnl: Mapped[Decimal] = mapped_column(Money, comment="PnL at the last check, in the account currency")
    checked_at: Mapped[datetime] = mapped_column(Timestamp, server_default=sa.func.now())
    halted_at: Mapped[datetime | None] = mapped_column(Timestamp, comment="Set: only reducing orders are accepted")
    halt_reason: Mapped[str | None] = mapped_column(sa.Text)
    halted_by: Mapped[str | None] = mapped_column(sa.Text, comment="The limit or the person that halted it")


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
    acknowledged_at: Mapped[datetime | None] = mapped_column(Timestamp)
    acknowledged_by: Mapped[str | None] = mapped_column(sa.Text)
    resolved_by: Mapped[str | None] = mapped_column(sa.Text)
    note: Mapped[str | None] = mapped_column(sa.Text, comment="What the person who acknowledged or resolved it said")

"""Schema ``analytics``: portfolio snapshots and performance metrics."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from tradedb.schema._base import Base, Float, Money, Timestamp, plain

SCHEMA = "analytics"


class PortfolioSummary(Base):
    __tablename__ = "portfolio_summary"
    __table_args__ = plain(SCHEMA, "Latest marked-to-market view of each position.")

    account_id: Mapped[str] = mapped_column(sa.ForeignKey("execution.accounts.account_id"), primary_key=True)
    security_id: Mapped[int] = mapped_column(
        sa.BigInteger, sa.ForeignKey("shared.securities.security_id"), primary_key=True
    )
    quantity: Mapped[Decimal] = mapped_column(Money)
    market_value: Mapped[Decimal | None] = mapped_column(Money, comment="In the account's base currency")
    unrealized_pnl: Mapped[Decimal | None] = mapped_column(Money)
    realized_pnl: Mapped[Decimal | None] = mapped_column(Money)
    as_of: Mapped[dt.datetime] = mapped_column(Timestamp, server_default=sa.func.now())


class PerformanceMetric(Base):
    __tablename__ = "performance_metrics"
    __table_args__ = plain(
        SCHEMA,
        "Daily performance of an account or of a strategy instance (exactly one of the two).",
        sa.UniqueConstraint("account_id", "instance_id", "date", postgresql_nulls_not_distinct=True),
        sa.CheckConstraint("num_nonnulls(account_id, instance_id) = 1", name="one_subject"),
        sa.CheckConstraint("win_rate IS NULL OR win_rate BETWEEN 0 AND 1", name="win_rate_unit_interval"),
        sa.CheckConstraint("max_drawdown IS NULL OR max_drawdown >= 0", name="max_drawdown_non_negative"),
    )

    metric_id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    account_id: Mapped[str | None] = mapped_column(sa.ForeignKey("execution.accounts.account_id"))
    instance_id: Mapped[int | None] = mapped_column(
        sa.BigInteger, sa.ForeignKey("strategy_engine.strategy_instances.instance_id")
    )
    date: Mapped[dt.date] = mapped_column(sa.Date)
    total_return: Mapped[Decimal | None] = mapped_column(Money, comment="Cumulative fractional return")
    daily_return: Mapped[Decimal | None] = mapped_column(Money)
    sharpe_ratio: Mapped[float | None] = mapped_column(Float)
    sortino_ratio: Mapped[float | None] = mapped_column(Float)
    max_drawdown: Mapped[float | None] = mapped_column(Float, comment="Fraction of peak equity")
    volatility: Mapped[float | None] = mapped_column(Float, comment="Annualised standard deviation of returns")
    win_rate: Mapped[float | None] = mapped_column(Float, comment="In [0, 1]")
    trade_count: Mapped[int | None] = mapped_column(sa.Integer)
    pnl: Mapped[Decimal | None] = mapped_column(Money, comment="PnL of the day (realized + change in unrealized)")
    equity: Mapped[Decimal | None] = mapped_column(Money, comment="Equity at the day's close (capital + PnL)")
    turnover: Mapped[Decimal | None] = mapped_column(Money, comment="Notional traded that day / equity before it")

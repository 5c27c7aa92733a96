"""Schema ``strategy_engine``: strategies, parameters, instances, signals, backtests and optimizations."""

from __future__ import annotations

import datetime as dt
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from tradedb.schema._base import (
    Base,
    Float,
    Money,
    Timestamp,
    created_at,
    one_of,
    partitioned,
    plain,
    updated_at,
)

SCHEMA = "strategy_engine"

PARAMETER_TYPES = ("int", "float", "decimal", "bool", "string", "enum", "json", "date")
INSTANCE_STATUSES = ("created", "running", "paused", "stopped", "failed")
SIGNALS = ("buy", "sell", "hold")
RUN_STATUSES = ("pending", "running", "completed", "failed", "cancelled")
OPTIMIZATION_METHODS = ("grid", "random", "bayesian", "genetic", "walk_forward")
SIDES = ("buy", "sell")
DIRECTIONS = ("maximize", "minimize")
ITERATION_STATUSES = ("completed", "failed", "pruned")

_STRATEGY_FK = "strategy_engine.strategies.strategy_id"
_INSTANCE_FK = "strategy_engine.strategy_instances.instance_id"
_SECURITY_FK = "shared.securities.security_id"


class Strategy(Base):
    __tablename__ = "strategies"
    __table_args__ = plain(
        SCHEMA,
        "Strategy definitions, one row per name and version.",
        sa.UniqueConstraint("name", "version"),
    )

    strategy_id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(sa.Text)
    version: Mapped[str] = mapped_column(sa.Text, server_default="1")
    strategy_type: Mapped[str | None] = mapped_column(sa.Text, comment="Family, e.g. momentum, mean_reversion")
    description: Mapped[str | None] = mapped_column(sa.Text)
    code_reference: Mapped[str | None] = mapped_column(
        sa.Text, comment="Where the strategy's code lives, e.g. a module path or a repository URL and commit"
    )
    is_active: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.true())
    base_configuration: Mapped[Any] = mapped_column(JSONB, server_default=sa.text("'{}'::jsonb"))
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()


class StrategyParameter(Base):
    __tablename__ = "strategy_parameters"
    __table_args__ = plain(
        SCHEMA,
        "Typed parameter definitions; instance parameters are validated against them.",
        sa.UniqueConstraint("strategy_id", "name"),
        one_of("param_type", PARAMETER_TYPES),
        sa.CheckConstraint("min_value IS NULL OR max_value IS NULL OR min_value <= max_value", name="min_le_max"),
    )

    parameter_id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    strategy_id: Mapped[int] = mapped_column(sa.BigInteger, sa.ForeignKey(_STRATEGY_FK, ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(sa.Text)
    param_type: Mapped[str] = mapped_column(sa.Text)
    is_required: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.false())
    default_value: Mapped[Any | None] = mapped_column(JSONB)
    min_value: Mapped[Decimal | None] = mapped_column(Money)
    max_value: Mapped[Decimal | None] = mapped_column(Money)
    allowed_values: Mapped[Any | None] = mapped_column(JSONB, comment="JSON array of allowed values (enum type)")
    description: Mapped[str | None] = mapped_column(sa.Text)
    step: Mapped[Decimal | None] = mapped_column(Money, comment="Grid step of a numeric parameter (optimization)")
    is_optimizable: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.false())
    display_order: Mapped[int] = mapped_column(sa.Integer, server_default="0")


class StrategyInstance(Base):
    __tablename__ = "strategy_instances"
    __table_args__ = plain(
        SCHEMA,
        "A configured, runnable strategy: parameters bound, optionally trading one account.",
        sa.UniqueConstraint("strategy_id", "name"),
        one_of("status", INSTANCE_STATUSES),
    )

    instance_id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    strategy_id: Mapped[int] = mapped_column(sa.BigInteger, sa.ForeignKey(_STRATEGY_FK))
    name: Mapped[str] = mapped_column(sa.Text)
    account_id: Mapped[str | None] = mapped_column(sa.ForeignKey("execution.accounts.account_id"))
    parameters: Mapped[Any] = mapped_column(JSONB, server_default=sa.text("'{}'::jsonb"))
    status: Mapped[str] = mapped_column(sa.Text, server_default="created")
    started_at: Mapped[datetime | None] = mapped_column(Timestamp)
    stopped_at: Mapped[datetime | None] = mapped_column(Timestamp)
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()


class StrategySignal(Base):
    __tablename__ = "strategy_signals"
    __table_args__ = partitioned(
        SCHEMA,
        "ts",
        "day",
        "Signals emitted by strategy instances.",
        one_of("signal", SIGNALS),
        sa.CheckConstraint("strength IS NULL OR strength BETWEEN 0 AND 1", name="strength_unit_interval"),
        sa.CheckConstraint("confidence IS NULL OR confidence BETWEEN 0 AND 1", name="confidence_unit_interval"),
        sa.CheckConstraint("quantity IS NULL OR quantity > 0", name="quantity_positive"),
        sa.Index(None, "instance_id", "ts"),
        sa.Index(None, "security_id", "ts"),
    )

    signal_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, server_default=sa.text("gen_random_uuid()"))
    ts: Mapped[datetime] = mapped_column(Timestamp, primary_key=True, server_default=sa.func.now())
    instance_id: Mapped[int] = mapped_column(sa.BigInteger, sa.ForeignKey(_INSTANCE_FK))
    security_id: Mapped[int] = mapped_column(sa.BigInteger, sa.ForeignKey(_SECURITY_FK))
    signal: Mapped[str] = mapped_column(sa.Text)
    strength: Mapped[float | None] = mapped_column(Float, comment="In [0, 1]")
    confidence: Mapped[float | None] = mapped_column(Float, comment="In [0, 1]")
    price: Mapped[Decimal | None] = mapped_column(Money)
    quantity: Mapped[Decimal | None] = mapped_column(Money)
    metadata_: Mapped[Any | None] = mapped_column("metadata", JSONB)


class StrategyPerformance(Base):
    __tablename__ = "strategy_performance"
    __table_args__ = plain(
        SCHEMA,
        "Daily performance per strategy instance.",
        sa.CheckConstraint("wins >= 0 AND losses >= 0 AND wins + losses <= trades", name="wins_losses_within_trades"),
    )

    instance_id: Mapped[int] = mapped_column(sa.BigInteger, sa.ForeignKey(_INSTANCE_FK), primary_key=True)
    date: Mapped[dt.date] = mapped_column(sa.Date, primary_key=True)
    trades: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    wins: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    losses: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    total_return: Mapped[Decimal | None] = mapped_column(Money, comment="Fractional return over the day")
    sharpe_ratio: Mapped[float | None] = mapped_column(Float)
    max_drawdown: Mapped[float | None] = mapped_column(Float, comment="Fraction of peak equity, >= 0")


class BacktestRun(Base):
    __tablename__ = "backtest_runs"
    __table_args__ = plain(
        SCHEMA,
        "Backtests: period, capital, cost models, status, and headline metrics as columns.",
        one_of("status", RUN_STATUSES),
        sa.CheckConstraint("initial_capital > 0", name="capital_positive"),
        sa.CheckConstraint("period_end > period_start", name="period_ordered"),
        sa.CheckConstraint("win_rate IS NULL OR win_rate BETWEEN 0 AND 1", name="win_rate_unit_interval"),
        sa.Index(None, "instance_id"),
        sa.Index(None, "run_key", unique=True),
        sa.Index(None, "strategy_id"),
    )

    run_id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    instance_id: Mapped[int | None] = mapped_column(sa.BigInteger, sa.ForeignKey(_INSTANCE_FK))
    strategy_id: Mapped[int | None] = mapped_column(sa.BigInteger, sa.ForeignKey(_STRATEGY_FK))
    parameters: Mapped[Any] = mapped_column(JSONB, server_default=sa.text("'{}'::jsonb"))
    random_seed: Mapped[int | None] = mapped_column(sa.BigInteger)
    code_version: Mapped[str | None] = mapped_column(sa.Text)
    run_key: Mapped[str | None] = mapped_column(
        sa.Text,
        comment="Hash of what defines the run (strategy, parameters, period, capital, models, seed, code version)",
    )
    content_hash: Mapped[str | None] = mapped_column(
        sa.Text, comment="Hash of the recorded results: recording the same run again must give the same one"
    )
    period_start: Mapped[datetime] = mapped_column(Timestamp)
    period_end: Mapped[datetime] = mapped_column(Timestamp)
    initial_capital: Mapped[Decimal] = mapped_column(Money)
    commission_model: Mapped[Any | None] = mapped_column(JSONB)
    slippage_model: Mapped[Any | None] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(sa.Text, server_default="pending")
    metrics: Mapped[Any | None] = mapped_column(JSONB, comment="All metrics; the headline ones are also columns")
    total_return: Mapped[Decimal | None] = mapped_column(Money)
    sharpe_ratio: Mapped[float | None] = mapped_column(Float)
    max_drawdown: Mapped[float | None] = mapped_column(Float)
    win_rate: Mapped[float | None] = mapped_column(Float)
    trade_count: Mapped[int | None] = mapped_column(sa.Integer)
    started_at: Mapped[datetime | None] = mapped_column(Timestamp)
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp)
    error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = created_at()


#: Why the result series have no foreign keys (the comment of each of their tables ends with it).
_NO_FK = (
    " No foreign keys: a per-row check cost four times the COPY itself; tradedb's writer adds the run row in the "
    "same transaction and checks security ids, and deletes a run's rows with it."
)


class BacktestEquityPoint(Base):
    __tablename__ = "backtest_equity_curve"
    __table_args__ = plain(SCHEMA, "Equity curve of a backtest run." + _NO_FK)

    run_id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    ts: Mapped[datetime] = mapped_column(Timestamp, primary_key=True)
    equity: Mapped[float] = mapped_column(Float)
    cash: Mapped[float | None] = mapped_column(Float)
    drawdown: Mapped[float | None] = mapped_column(Float)


class BacktestTrade(Base):
    __tablename__ = "backtest_trades"
    __table_args__ = plain(
        SCHEMA,
        "Simulated trades of a backtest run." + _NO_FK,
        one_of("side", SIDES),
        sa.CheckConstraint("quantity > 0", name="quantity_positive"),
        sa.CheckConstraint("price > 0", name="price_positive"),
        sa.CheckConstraint("commission >= 0", name="commission_non_negative"),
        sa.Index(None, "run_id", "executed_at"),
    )

    trade_id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    run_id: Mapped[int] = mapped_column(sa.BigInteger)
    security_id: Mapped[int] = mapped_column(sa.BigInteger)
    side: Mapped[str] = mapped_column(sa.Text)
    quantity: Mapped[float] = mapped_column(Float)
    price: Mapped[float] = mapped_column(Float)
    commission: Mapped[float] = mapped_column(Float, server_default="0")
    slippage: Mapped[float | None] = mapped_column(Float)
    pnl: Mapped[float | None] = mapped_column(Float)
    executed_at: Mapped[datetime] = mapped_column(Timestamp)
    order_id: Mapped[int | None] = mapped_column(sa.BigInteger, comment="The simulated order (backtest_orders)")


class BacktestPosition(Base):
    __tablename__ = "backtest_positions"
    __table_args__ = plain(SCHEMA, "Position history of a backtest run: a security's position from ts on." + _NO_FK)

    run_id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    security_id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    ts: Mapped[datetime] = mapped_column(Timestamp, primary_key=True)
    quantity: Mapped[float] = mapped_column(Float, comment="Signed: negative is short")
    avg_price: Mapped[float | None] = mapped_column(Float)
    market_value: Mapped[float | None] = mapped_column(Float)


class BacktestOrder(Base):
    __tablename__ = "backtest_orders"
    __table_args__ = plain(
        SCHEMA,
        "Simulated orders of a backtest run (kept apart from execution.orders: no risk checks, no positions)." + _NO_FK,
        one_of("side", SIDES),
        sa.CheckConstraint("quantity > 0", name="quantity_positive"),
    )

    run_id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    order_id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, comment="The simulator's own order id")
    ts: Mapped[datetime] = mapped_column(Timestamp)
    security_id: Mapped[int] = mapped_column(sa.BigInteger)
    side: Mapped[str] = mapped_column(sa.Text)
    order_type: Mapped[str] = mapped_column(sa.Text, server_default="market")
    quantity: Mapped[float] = mapped_column(Float)
    limit_price: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(sa.Text, server_default="filled")


class OptimizationRun(Base):
    __tablename__ = "optimization_runs"
    __table_args__ = plain(
        SCHEMA,
        "Parameter optimizations of a strategy.",
        one_of("method", OPTIMIZATION_METHODS),
        one_of("status", RUN_STATUSES),
        one_of("direction", DIRECTIONS),
        sa.Index(None, "strategy_id", "name", unique=True),
    )

    optimization_id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    strategy_id: Mapped[int] = mapped_column(sa.BigInteger, sa.ForeignKey(_STRATEGY_FK))
    method: Mapped[str] = mapped_column(sa.Text)
    objective: Mapped[str] = mapped_column(sa.Text, comment="Metric optimized, e.g. sharpe_ratio")
    direction: Mapped[str] = mapped_column(sa.Text, server_default="maximize")
    name: Mapped[str | None] = mapped_column(sa.Text, comment="Unique per strategy, e.g. the Optuna study name")
    parameter_space: Mapped[Any] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(sa.Text, server_default="pending")
    best_parameters: Mapped[Any | None] = mapped_column(JSONB)
    best_score: Mapped[float | None] = mapped_column(Float)
    started_at: Mapped[datetime | None] = mapped_column(Timestamp)
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp)
    created_at: Mapped[datetime] = created_at()


class OptimizationIteration(Base):
    __tablename__ = "optimization_iterations"
    __table_args__ = plain(
        SCHEMA,
        "One evaluated parameter set of an optimization.",
        one_of("status", ITERATION_STATUSES),
    )

    optimization_id: Mapped[int] = mapped_column(
        sa.BigInteger,
        sa.ForeignKey("strategy_engine.optimization_runs.optimization_id", ondelete="CASCADE"),
        primary_key=True,
    )
    iteration: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    parameters: Mapped[Any] = mapped_column(JSONB)
    score: Mapped[float | None] = mapped_column(Float)
    metrics: Mapped[Any | None] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(sa.Text, server_default="completed")
    duration_seconds: Mapped[float | None] = mapped_column(Float)
    backtest_run_id: Mapped[int | None] = mapped_column(
        sa.BigInteger, sa.ForeignKey("strategy_engine.backtest_runs.run_id")
    )
    created_at: Mapped[datetime] = created_at()

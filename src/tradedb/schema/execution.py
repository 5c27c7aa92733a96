"""Schema ``execution``: accounts, orders, fills and positions (exact numeric throughout)."""

from __future__ import annotations

import uuid
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

SCHEMA = "execution"

SIDES = ("buy", "sell")
ORDER_TYPES = ("market", "limit", "stop", "stop_limit")
TIME_IN_FORCE = ("day", "gtc", "ioc", "fok", "gtd")
ORDER_STATUSES = ("pending", "submitted", "partially_filled", "filled", "cancelled", "rejected", "expired")
LIQUIDITY = ("maker", "taker", "auction", "other")

_ACCOUNT_FK = "execution.accounts.account_id"
_SECURITY_FK = "shared.securities.security_id"
_ORDER_KEY_ACCOUNT, _ORDER_KEY_ID = "execution.orders.account_id", "execution.orders.order_id"


class Account(Base):
    __tablename__ = "accounts"
    __table_args__ = plain(
        SCHEMA,
        "Trading accounts; the tenant key of row-level security on execution and risk tables.",
        sa.CheckConstraint("account_id ~ '^[A-Za-z0-9_.:\\-]{1,64}$'", name="account_id_format"),
        sa.CheckConstraint("base_currency ~ '^[A-Z]{3}$'", name="base_currency_format"),
        sa.CheckConstraint("capital IS NULL OR capital > 0", name="capital_positive"),
    )

    account_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    name: Mapped[str] = mapped_column(sa.Text)
    base_currency: Mapped[str] = mapped_column(sa.String(3), server_default="USD")
    is_active: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.true())
    capital: Mapped[Decimal | None] = mapped_column(
        Money, comment="Equity the account started with, in its base currency (returns are measured on it)"
    )
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = plain(
        SCHEMA,
        "Orders and their current state; every state change is also written to order_events.",
        one_of("side", SIDES),
        one_of("order_type", ORDER_TYPES),
        one_of("time_in_force", TIME_IN_FORCE),
        one_of("status", ORDER_STATUSES),
        sa.CheckConstraint("quantity > 0", name="quantity_positive"),
        sa.CheckConstraint(
            "(limit_price IS NULL OR limit_price > 0) AND (stop_price IS NULL OR stop_price > 0)",
            name="prices_positive",
        ),
        sa.CheckConstraint(
            "(order_type = 'market' AND limit_price IS NULL AND stop_price IS NULL)"
            " OR (order_type = 'limit' AND limit_price IS NOT NULL AND stop_price IS NULL)"
            " OR (order_type = 'stop' AND stop_price IS NOT NULL AND limit_price IS NULL)"
            " OR (order_type = 'stop_limit' AND limit_price IS NOT NULL AND stop_price IS NOT NULL)",
            name="prices_match_type",
        ),
        sa.CheckConstraint("time_in_force <> 'gtd' OR expire_at IS NOT NULL", name="gtd_has_expiry"),
        sa.CheckConstraint("filled_quantity >= 0 AND filled_quantity <= quantity", name="filled_within_quantity"),
        sa.CheckConstraint("version > 0", name="version_positive"),
        # The account leads every key: a Citus cluster distributes the execution tables by it (migration 0022).
        sa.PrimaryKeyConstraint("account_id", "order_id"),
        sa.UniqueConstraint("account_id", "client_order_id"),
        sa.Index(None, "order_id"),
        sa.Index(None, "account_id", "status"),
        sa.Index(None, "security_id", "created_at"),
        sa.Index(None, "strategy_instance_id"),
    )

    order_id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity())
    client_order_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, comment="Idempotency key chosen by the client")
    account_id: Mapped[str] = mapped_column(sa.ForeignKey(_ACCOUNT_FK))
    security_id: Mapped[int] = mapped_column(sa.BigInteger, sa.ForeignKey(_SECURITY_FK))
    side: Mapped[str] = mapped_column(sa.Text)
    order_type: Mapped[str] = mapped_column(sa.Text)
    quantity: Mapped[Decimal] = mapped_column(Money)
    limit_price: Mapped[Decimal | None] = mapped_column(Money)
    stop_price: Mapped[Decimal | None] = mapped_column(Money)
    time_in_force: Mapped[str] = mapped_column(sa.Text, server_default="day")
    expire_at: Mapped[datetime | None] = mapped_column(Timestamp, comment="Expiry of a gtd order")
    status: Mapped[str] = mapped_column(sa.Text, server_default="pending")
    filled_quantity: Mapped[Decimal] = mapped_column(Money, server_default="0")
    avg_fill_price: Mapped[Decimal | None] = mapped_column(Money, comment="Quantity-weighted mean of fill prices")
    strategy_instance_id: Mapped[int | None] = mapped_column(
        sa.BigInteger, sa.ForeignKey("strategy_engine.strategy_instances.instance_id")
    )
    signal_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.Uuid, comment="Signal that caused the order (no FK: signals are time-partitioned)"
    )
    broker_order_id: Mapped[str | None] = mapped_column(sa.Text, comment="Id the broker or venue assigned")
    reject_reason: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()
    version: Mapped[int] = mapped_column(sa.Integer, server_default="1", comment="Optimistic locking counter")


_event_seq, _event_default = sequence_default(SCHEMA, "order_events", "event_id")


class OrderEvent(Base):
    __tablename__ = "order_events"
    __table_args__ = partitioned(
        SCHEMA,
        "ts",
        "day",
        "Every state change of an order, in order.",
        one_of("from_status", ORDER_STATUSES),
        one_of("to_status", ORDER_STATUSES),
        sa.Index(None, "order_id", "ts"),
        sa.PrimaryKeyConstraint("account_id", "event_id", "ts"),
        sa.ForeignKeyConstraint(["account_id", "order_id"], [_ORDER_KEY_ACCOUNT, _ORDER_KEY_ID]),
    )

    event_id: Mapped[int] = mapped_column(sa.BigInteger, server_default=_event_default)
    ts: Mapped[datetime] = mapped_column(Timestamp, server_default=sa.func.now())
    order_id: Mapped[int] = mapped_column(sa.BigInteger)
    account_id: Mapped[str] = mapped_column(sa.String(64), comment="Copied from the order, for row-level security")
    from_status: Mapped[str | None] = mapped_column(sa.Text, comment="NULL for the creation event")
    to_status: Mapped[str] = mapped_column(sa.Text)
    reason: Mapped[str | None] = mapped_column(sa.Text)
    payload: Mapped[Any | None] = mapped_column(JSONB)


class Fill(Base):
    __tablename__ = "fills"
    __table_args__ = plain(
        SCHEMA,
        "Executions of our orders; execution_id makes recording the same execution twice a no-op.",
        one_of("side", SIDES),
        one_of("liquidity", LIQUIDITY),
        sa.CheckConstraint("quantity > 0", name="quantity_positive"),
        sa.CheckConstraint("price > 0", name="price_positive"),
        sa.CheckConstraint("commission >= 0", name="commission_non_negative"),
        sa.Index(None, "order_id"),
        sa.Index(None, "account_id", "security_id", "executed_at"),
        sa.PrimaryKeyConstraint("account_id", "fill_id"),
        sa.UniqueConstraint("account_id", "execution_id"),
        sa.ForeignKeyConstraint(["account_id", "order_id"], [_ORDER_KEY_ACCOUNT, _ORDER_KEY_ID]),
    )

    fill_id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity())
    execution_id: Mapped[str] = mapped_column(sa.Text, comment="The venue's execution id")
    order_id: Mapped[int] = mapped_column(sa.BigInteger)
    account_id: Mapped[str] = mapped_column(sa.ForeignKey(_ACCOUNT_FK))
    security_id: Mapped[int] = mapped_column(sa.BigInteger, sa.ForeignKey(_SECURITY_FK))
    side: Mapped[str] = mapped_column(sa.Text)
    quantity: Mapped[Decimal] = mapped_column(Money)
    price: Mapped[Decimal] = mapped_column(Money)
    commission: Mapped[Decimal] = mapped_column(Money, server_default="0")
    commission_currency: Mapped[str | None] = mapped_column(sa.String(3))
    liquidity: Mapped[str | None] = mapped_column(sa.Text)
    executed_at: Mapped[datetime] = mapped_column(Timestamp)
    settlement_date: Mapped[date | None] = mapped_column(sa.Date)
    created_at: Mapped[datetime] = created_at()


class Position(Base):
    __tablename__ = "positions"
    __table_args__ = plain(
        SCHEMA,
        "Current position per account and security; always equal to what the fills imply.",
        sa.CheckConstraint("version > 0", name="version_positive"),
        sa.CheckConstraint("avg_price IS NULL OR avg_price >= 0", name="avg_price_non_negative"),
    )

    account_id: Mapped[str] = mapped_column(sa.ForeignKey(_ACCOUNT_FK), primary_key=True)
    security_id: Mapped[int] = mapped_column(sa.BigInteger, sa.ForeignKey(_SECURITY_FK), primary_key=True)
    quantity: Mapped[Decimal] = mapped_column(Money, server_default="0", comment="Signed: negative is short")
    avg_price: Mapped[Decimal | None] = mapped_column(Money, comment="Average cost of the open quantity")
    realized_pnl: Mapped[Decimal] = mapped_column(Money, server_default="0")
    total_commission: Mapped[Decimal] = mapped_column(Money, server_default="0")
    opened_at: Mapped[datetime | None] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = updated_at()
    version: Mapped[int] = mapped_column(sa.Integer, server_default="1")

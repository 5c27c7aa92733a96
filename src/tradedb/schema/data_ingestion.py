"""Schema ``data_ingestion``: market data and reference data loaded from vendors."""

from __future__ import annotations

import datetime as dt
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
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
    sequence_default,
    updated_at,
)

SCHEMA = "data_ingestion"

TIMEFRAMES = ("1s", "5s", "10s", "15s", "30s", "1m", "5m", "15m", "30m", "1h", "4h", "1d", "1w", "1mo")
#: new, modify (price and/or size), cancel (size off an order; the whole order when nothing is left), execute (a
#: resting order traded: its size goes down), clear (the book is emptied); hidden_execute, halt, trade (an
#: aggressor's print) and fill (a resting order traded, its size change sent as a separate cancel or modify, as
#: Databento MBO does) leave the book as it is.
BOOK_EVENT_TYPES = ("new", "modify", "cancel", "execute", "hidden_execute", "halt", "clear", "trade", "fill")
SIDES = ("buy", "sell")
CORPORATE_ACTION_KINDS = (
    "dividend",
    "special_dividend",
    "split",
    "reverse_split",
    "spin_off",
    "merger",
    "symbol_change",
)
LOAD_STATUSES = ("running", "success", "partial", "failed")
QUALITY_CHECK_TYPES = (
    "gap",
    "crossed_quote",
    "ohlc_violation",
    "outlier",
    "duplicate",
    "stale",
    "missing_value",
    "non_positive_price",
    "negative_size",
    "non_finite",
    "naive_timestamp",
    "unknown_security",
    "invalid_value",
    "unknown_order",
    "duplicate_order",
    "crossed_book",
)
QUALITY_STATUSES = ("pass", "warning", "fail")
SYMBOL_STATUSES = ("success", "failed", "no_data")

_TICK_NOTE = (
    " Prices and sizes are double precision (numeric costs too much at tick volume); security_id has no "
    "foreign key, for COPY speed: ingestion resolves it through the security master."
)


class Quote(Base):
    __tablename__ = "quotes"
    __table_args__ = partitioned(
        SCHEMA,
        "ts",
        "tick",
        "Top of book (best bid and offer) updates." + _TICK_NOTE,
        sa.CheckConstraint("bid IS NULL OR ask IS NULL OR bid <= ask", name="bid_not_above_ask"),
        sa.CheckConstraint(
            "(bid_size IS NULL OR bid_size >= 0) AND (ask_size IS NULL OR ask_size >= 0)",
            name="sizes_non_negative",
        ),
        sa.Index(None, "security_id", sa.text("ts DESC")),
    )
    __mapper_args__ = {"primary_key": ["security_id", "ts", "source"]}

    ts: Mapped[datetime] = mapped_column(Timestamp, comment="Event time at the venue")
    security_id: Mapped[int] = mapped_column(sa.BigInteger)
    bid: Mapped[float | None] = mapped_column(Float)
    ask: Mapped[float | None] = mapped_column(Float)
    bid_size: Mapped[float | None] = mapped_column(Float)
    ask_size: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str] = mapped_column(sa.String(32), comment="Vendor or feed the row came from")
    contributor: Mapped[str | None] = mapped_column(
        sa.String(64),
        comment="Who quoted (bank, venue, market maker) when a source carries several quoters' quotes; quotes "
        "of different contributors at one instant are distinct rows",
    )


class MarketTrade(Base):
    __tablename__ = "market_trades"
    __table_args__ = partitioned(
        SCHEMA,
        "ts",
        "tick",
        "Trades printed by the market (not our own fills)." + _TICK_NOTE,
        sa.CheckConstraint("price > 0", name="price_positive"),
        sa.CheckConstraint("size > 0", name="size_positive"),
        one_of("aggressor_side", SIDES),
        sa.Index(None, "security_id", sa.text("ts DESC")),
    )
    __mapper_args__ = {"primary_key": ["security_id", "ts", "source"]}

    ts: Mapped[datetime] = mapped_column(Timestamp)
    security_id: Mapped[int] = mapped_column(sa.BigInteger)
    price: Mapped[float] = mapped_column(Float)
    size: Mapped[float] = mapped_column(Float)
    trade_id: Mapped[str | None] = mapped_column(sa.Text, comment="The venue's trade id")
    aggressor_side: Mapped[str | None] = mapped_column(sa.Text, comment="Side of the taker; NULL when unknown")
    conditions: Mapped[list[str] | None] = mapped_column(ARRAY(sa.Text), comment="Venue trade condition codes")
    source: Mapped[str] = mapped_column(sa.String(32))


class Bar(Base):
    __tablename__ = "bars"
    __table_args__ = partitioned(
        SCHEMA,
        "ts",
        "month",
        "OHLCV bars; ts is the start of the bucket. Prices are double precision; security_id has no foreign key, "
        "for COPY speed: ingestion resolves it through the security master.",
        sa.PrimaryKeyConstraint("security_id", "timeframe", "source", "ts"),
        one_of("timeframe", TIMEFRAMES),
        sa.CheckConstraint("open > 0 AND high > 0 AND low > 0 AND close > 0", name="prices_positive"),
        sa.CheckConstraint("high >= GREATEST(open, close) AND low <= LEAST(open, close)", name="ohlc_consistent"),
        sa.CheckConstraint("volume >= 0", name="volume_non_negative"),
        sa.CheckConstraint("trade_count IS NULL OR trade_count >= 0", name="trade_count_non_negative"),
    )

    security_id: Mapped[int] = mapped_column(sa.BigInteger)
    timeframe: Mapped[str] = mapped_column(sa.String(4))
    source: Mapped[str] = mapped_column(sa.String(32))
    ts: Mapped[datetime] = mapped_column(Timestamp, comment="Start of the bar's bucket")
    open: Mapped[float] = mapped_column(Float)
    high: Mapped[float] = mapped_column(Float)
    low: Mapped[float] = mapped_column(Float)
    close: Mapped[float] = mapped_column(Float)
    volume: Mapped[float] = mapped_column(Float, server_default="0")
    trade_count: Mapped[int | None] = mapped_column(sa.BigInteger)
    vwap: Mapped[float | None] = mapped_column(Float, comment="Volume-weighted average price over the bucket")


class OrderBookEvent(Base):
    __tablename__ = "order_book_events"
    __table_args__ = partitioned(
        SCHEMA,
        "ts",
        "tick",
        "Level-3 order book events, for replay in backtests." + _TICK_NOTE,
        one_of("event_type", BOOK_EVENT_TYPES),
        one_of("side", SIDES),
        sa.CheckConstraint("size IS NULL OR size >= 0", name="size_non_negative"),
        sa.Index(None, "security_id", "ts"),
    )
    __mapper_args__ = {"primary_key": ["security_id", "ts", "source", "sequence"]}

    ts: Mapped[datetime] = mapped_column(Timestamp)
    security_id: Mapped[int] = mapped_column(sa.BigInteger)
    event_type: Mapped[str] = mapped_column(sa.Text)
    order_ref: Mapped[str | None] = mapped_column(sa.Text, comment="The venue's order id (text: ids exceed int64)")
    side: Mapped[str | None] = mapped_column(sa.Text)
    price: Mapped[float | None] = mapped_column(Float)
    size: Mapped[float | None] = mapped_column(Float)
    sequence: Mapped[int | None] = mapped_column(sa.BigInteger, comment="Venue sequence number, for ordering")
    source: Mapped[str] = mapped_column(sa.String(32))


class LastQuote(Base):
    __tablename__ = "last_quotes"
    __table_args__ = plain(
        SCHEMA,
        "The newest quote per security and source, kept by tradedb's quote writers in the write's transaction "
        "(latest_quotes reads it where it agrees with coverage).",
    )

    security_id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    source: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    ts: Mapped[datetime] = mapped_column(Timestamp)
    bid: Mapped[float | None] = mapped_column(Float)
    ask: Mapped[float | None] = mapped_column(Float)
    bid_size: Mapped[float | None] = mapped_column(Float)
    ask_size: Mapped[float | None] = mapped_column(Float)
    contributor: Mapped[str | None] = mapped_column(sa.String(64))
    updated_at: Mapped[datetime] = updated_at()


class OrderBookSnapshot(Base):
    __tablename__ = "order_book_snapshots"
    __table_args__ = plain(
        SCHEMA,
        "The resting orders of a book after every event up to ts, so a book at a later instant replays only the "
        "events after it. Written by tradedb book snapshot / books.write_snapshots.",
        sa.CheckConstraint("order_count >= 0", name="order_count_non_negative"),
    )

    security_id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    source: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    ts: Mapped[datetime] = mapped_column(Timestamp, primary_key=True, comment="Every event at or before ts is in")
    order_count: Mapped[int] = mapped_column(sa.Integer)
    event_count: Mapped[int] = mapped_column(sa.BigInteger, comment="Events applied since the previous snapshot")
    orders: Mapped[bytes] = mapped_column(
        sa.LargeBinary,
        comment="Arrow IPC stream: order_ref, side, price, size, since (time priority), in priority order",
    )
    created_at: Mapped[datetime] = created_at()


class CorporateAction(Base):
    __tablename__ = "corporate_actions"
    __table_args__ = plain(
        SCHEMA,
        "Dividends, splits and other corporate actions, used to adjust bars.",
        sa.UniqueConstraint("security_id", "ex_date", "kind", "source"),
        one_of("kind", CORPORATE_ACTION_KINDS),
        sa.CheckConstraint("value > 0", name="value_positive"),
    )

    action_id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    security_id: Mapped[int] = mapped_column(sa.BigInteger, sa.ForeignKey("shared.securities.security_id"))
    ex_date: Mapped[date] = mapped_column(sa.Date)
    kind: Mapped[str] = mapped_column(sa.Text)
    value: Mapped[Decimal] = mapped_column(
        Money, comment="Cash amount per share for dividends; new shares per old share for splits (2 = 2:1)"
    )
    currency: Mapped[str | None] = mapped_column(sa.String(3))
    record_date: Mapped[date | None] = mapped_column(sa.Date)
    pay_date: Mapped[date | None] = mapped_column(sa.Date)
    source: Mapped[str] = mapped_column(sa.String(32))
    created_at: Mapped[datetime] = created_at()


class CompanyInfo(Base):
    __tablename__ = "company_info"
    __table_args__ = plain(SCHEMA, "Descriptive company data per security.")

    security_id: Mapped[int] = mapped_column(
        sa.BigInteger, sa.ForeignKey("shared.securities.security_id"), primary_key=True
    )
    description: Mapped[str | None] = mapped_column(sa.Text)
    website: Mapped[str | None] = mapped_column(sa.Text)
    employees: Mapped[int | None] = mapped_column(sa.Integer)
    country: Mapped[str | None] = mapped_column(sa.String(2))
    city: Mapped[str | None] = mapped_column(sa.Text)
    source: Mapped[str | None] = mapped_column(sa.String(32))
    updated_at: Mapped[datetime] = updated_at()


class KeyStatistics(Base):
    __tablename__ = "key_statistics"
    __table_args__ = plain(SCHEMA, "Fundamental statistics per security, date and source.")

    security_id: Mapped[int] = mapped_column(
        sa.BigInteger, sa.ForeignKey("shared.securities.security_id"), primary_key=True
    )
    as_of: Mapped[date] = mapped_column(sa.Date, primary_key=True)
    source: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    market_cap: Mapped[Decimal | None] = mapped_column(Money)
    pe_ratio: Mapped[float | None] = mapped_column(Float)
    forward_pe: Mapped[float | None] = mapped_column(Float)
    eps: Mapped[Decimal | None] = mapped_column(Money)
    dividend_yield: Mapped[float | None] = mapped_column(Float)
    beta: Mapped[float | None] = mapped_column(Float)
    shares_outstanding: Mapped[int | None] = mapped_column(sa.BigInteger)
    float_shares: Mapped[int | None] = mapped_column(sa.BigInteger)
    high_52w: Mapped[Decimal | None] = mapped_column(Money, comment="52-week high")
    low_52w: Mapped[Decimal | None] = mapped_column(Money, comment="52-week low")
    data: Mapped[Any | None] = mapped_column(JSONB, comment="Further vendor fields")


class InstitutionalHolder(Base):
    __tablename__ = "institutional_holders"
    __table_args__ = plain(
        SCHEMA,
        "Institutional holdings per security as reported.",
        sa.UniqueConstraint("security_id", "holder", "reported_on", "source"),
        sa.CheckConstraint("shares IS NULL OR shares >= 0", name="shares_non_negative"),
        sa.CheckConstraint("pct_held IS NULL OR pct_held BETWEEN 0 AND 1", name="pct_held_fraction"),
        sa.Index("ix_institutional_holders_latest", "security_id", postgresql_where=sa.text("is_latest")),
    )

    holding_id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    security_id: Mapped[int] = mapped_column(sa.BigInteger, sa.ForeignKey("shared.securities.security_id"))
    holder: Mapped[str] = mapped_column(sa.Text)
    shares: Mapped[int | None] = mapped_column(sa.BigInteger)
    value: Mapped[Decimal | None] = mapped_column(Money)
    pct_held: Mapped[float | None] = mapped_column(Float, comment="Fraction of shares outstanding, in [0, 1]")
    reported_on: Mapped[date] = mapped_column(sa.Date)
    source: Mapped[str] = mapped_column(sa.String(32))
    is_latest: Mapped[bool] = mapped_column(
        sa.Boolean,
        server_default=sa.false(),
        comment="This holder's newest report for the security and source (kept by the writer; history stays)",
    )


class DelistedSymbol(Base):
    __tablename__ = "delisted_symbols"
    __table_args__ = plain(SCHEMA, "Securities that stopped trading, with their last known price.")

    security_id: Mapped[int] = mapped_column(
        sa.BigInteger, sa.ForeignKey("shared.securities.security_id"), primary_key=True
    )
    delisted_on: Mapped[date] = mapped_column(sa.Date)
    last_price: Mapped[Decimal | None] = mapped_column(Money)
    reason: Mapped[str | None] = mapped_column(sa.Text)
    notes: Mapped[str | None] = mapped_column(sa.Text)


class SymbolDataStatus(Base):
    __tablename__ = "symbol_data_status"
    __table_args__ = plain(
        SCHEMA,
        "Outcome of the latest load attempt per security, date and source.",
        one_of("status", SYMBOL_STATUSES),
    )

    security_id: Mapped[int] = mapped_column(
        sa.BigInteger, sa.ForeignKey("shared.securities.security_id"), primary_key=True
    )
    date: Mapped[dt.date] = mapped_column(sa.Date, primary_key=True)
    source: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    status: Mapped[str] = mapped_column(sa.Text)
    error: Mapped[str | None] = mapped_column(sa.Text)
    attempts: Mapped[int] = mapped_column(sa.Integer, server_default="1")
    last_attempt: Mapped[datetime] = mapped_column(Timestamp, server_default=sa.func.now())


class LoadRun(Base):
    __tablename__ = "load_runs"
    __table_args__ = plain(
        SCHEMA,
        "One row per ingest: what was loaded (source, table, file), the data's time range, rows and outcome.",
        one_of("status", LOAD_STATUSES),
        sa.CheckConstraint("rows_loaded >= 0 AND rows_rejected >= 0", name="rows_non_negative"),
        sa.CheckConstraint("finished_at IS NULL OR finished_at >= started_at", name="finished_after_start"),
        sa.Index(None, "table_name", "source", "started_at"),
    )

    run_id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    source: Mapped[str] = mapped_column(sa.String(32))
    table_name: Mapped[str] = mapped_column(sa.Text, comment="quotes, market_trades, bars, securities, ...")
    timeframe: Mapped[str | None] = mapped_column(sa.String(4), comment="Bar timeframe; NULL for other tables")
    target: Mapped[str | None] = mapped_column(sa.Text, comment="What was read: a file path, a vendor request")
    range_start: Mapped[datetime | None] = mapped_column(Timestamp, comment="Oldest data time loaded")
    range_end: Mapped[datetime | None] = mapped_column(Timestamp, comment="Newest data time loaded")
    rows_loaded: Mapped[int] = mapped_column(sa.BigInteger, server_default="0")
    rows_rejected: Mapped[int] = mapped_column(sa.BigInteger, server_default="0")
    status: Mapped[str] = mapped_column(sa.Text, server_default="running")
    error: Mapped[str | None] = mapped_column(sa.Text)
    started_at: Mapped[datetime] = mapped_column(Timestamp, server_default=sa.func.now())
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp)


_dq_seq, _dq_default = sequence_default(SCHEMA, "data_quality_logs", "check_id")


class DataQualityLog(Base):
    __tablename__ = "data_quality_logs"
    __table_args__ = partitioned(
        SCHEMA,
        "checked_at",
        "month",
        "Findings of data quality checks, including rows quarantined on ingest.",
        one_of("check_type", QUALITY_CHECK_TYPES),
        one_of("status", QUALITY_STATUSES),
        sa.Index(None, "security_id", "checked_at"),
    )

    check_id: Mapped[int] = mapped_column(sa.BigInteger, server_default=_dq_default, primary_key=True)
    checked_at: Mapped[datetime] = mapped_column(Timestamp, primary_key=True, server_default=sa.func.now())
    security_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    table_name: Mapped[str | None] = mapped_column(sa.Text, comment="Target table of the checked data")
    source: Mapped[str | None] = mapped_column(sa.String(32))
    check_type: Mapped[str] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.Text)
    row_ts: Mapped[datetime | None] = mapped_column(Timestamp, comment="Time of the offending data row")
    details: Mapped[Any | None] = mapped_column(JSONB, comment="What was found, and the rejected row")


ARCHIVED_TABLES = ("quotes", "market_trades", "bars")


class Archive(Base):
    __tablename__ = "archives"
    __table_args__ = plain(
        SCHEMA,
        "Parquet files of partitions moved out of PostgreSQL by `tradedb archive`: one row per file (a partition "
        "and a range of securities), verified before its partition was dropped. Reads of the range read the file.",
        one_of("table_name", ARCHIVED_TABLES),
        sa.CheckConstraint("range_start < range_end", name="range_ordered"),
        sa.CheckConstraint("first_security_id <= last_security_id", name="securities_ordered"),
        sa.CheckConstraint("row_count > 0 AND file_bytes > 0", name="not_empty"),
        sa.UniqueConstraint("table_name", "range_start", "seq"),
        sa.Index(None, "table_name", "range_end", "range_start"),
    )

    archive_id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    table_name: Mapped[str] = mapped_column(sa.Text, comment="quotes, market_trades or bars")
    partition_name: Mapped[str] = mapped_column(sa.Text, comment="The partition the file was made from (dropped)")
    range_start: Mapped[datetime] = mapped_column(Timestamp, comment="The partition's lower bound (inclusive)")
    range_end: Mapped[datetime] = mapped_column(Timestamp, comment="The partition's upper bound (exclusive)")
    seq: Mapped[int] = mapped_column(sa.Integer, comment="The file's place among its partition's files")
    first_security_id: Mapped[int] = mapped_column(sa.BigInteger)
    last_security_id: Mapped[int] = mapped_column(sa.BigInteger)
    location: Mapped[str] = mapped_column(sa.Text, comment="The archive's folder or s3:// URL (no credentials)")
    path: Mapped[str] = mapped_column(sa.Text, comment="The file, relative to location")
    row_count: Mapped[int] = mapped_column(sa.BigInteger)
    file_bytes: Mapped[int] = mapped_column(sa.BigInteger)
    file_sha256: Mapped[str] = mapped_column(sa.Text, comment="SHA-256 of the file's bytes, checked on every read")
    rows_sha256: Mapped[str] = mapped_column(
        sa.Text, comment="SHA-256 of the rows (column by column), equal for the partition and the file read back"
    )
    archived_at: Mapped[datetime] = created_at()


class Coverage(Base):
    __tablename__ = "coverage"
    __table_args__ = plain(
        SCHEMA,
        "What market data is stored: first and last time and row count per security, table, source and timeframe. "
        "Maintained by tradedb's writers in the same transaction as the data, and by retention.",
        sa.CheckConstraint("row_count >= 0", name="row_count_non_negative"),
        sa.CheckConstraint("first_ts <= last_ts", name="first_not_after_last"),
        one_of("table_name", ("quotes", "market_trades", "bars", "order_book_events")),
    )

    security_id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    table_name: Mapped[str] = mapped_column(sa.Text, primary_key=True, comment="quotes, market_trades, bars, ...")
    source: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    timeframe: Mapped[str] = mapped_column(
        sa.String(4), primary_key=True, server_default="", comment="Bar timeframe; empty for tick data"
    )
    first_ts: Mapped[datetime] = mapped_column(Timestamp)
    last_ts: Mapped[datetime] = mapped_column(Timestamp)
    row_count: Mapped[int] = mapped_column(sa.BigInteger)
    updated_at: Mapped[datetime] = updated_at()

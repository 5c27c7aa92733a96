"""Schema ``shared``: reference data and platform tables every service reads."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, ExcludeConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tradedb.schema._base import (
    Base,
    Money,
    Symbol,
    Timestamp,
    created_at,
    one_of,
    partitioned,
    plain,
    sequence_default,
    updated_at,
)

SCHEMA = "shared"

ASSET_TYPES = ("equity", "etf", "index", "future", "option", "fx", "crypto", "bond", "fund")
SECURITY_STATUSES = ("active", "delisted", "suspended")
EXCHANGE_STATUSES = ("active", "expired", "updated")
AUDIT_OPERATIONS = ("INSERT", "UPDATE", "DELETE", "TRUNCATE")


class Exchange(Base):
    __tablename__ = "exchanges"
    __table_args__ = plain(
        SCHEMA,
        "Trading venues by ISO 10383 market identifier code (MIC); loadable from the ISO MIC list.",
        sa.CheckConstraint("mic ~ '^[A-Z0-9]{4}$'", name="mic_format"),
        one_of("status", EXCHANGE_STATUSES),
    )

    mic: Mapped[str] = mapped_column(sa.String(4), primary_key=True, comment="ISO 10383 MIC, e.g. XNAS")
    operating_mic: Mapped[str | None] = mapped_column(
        sa.String(4),
        comment="MIC of the operating market this segment belongs to (itself for operating MICs)",
    )
    name: Mapped[str] = mapped_column(sa.Text)
    acronym: Mapped[str | None] = mapped_column(sa.Text)
    country: Mapped[str | None] = mapped_column(sa.String(2), comment="ISO 3166 alpha-2 country code")
    city: Mapped[str | None] = mapped_column(sa.Text)
    timezone: Mapped[str | None] = mapped_column(sa.Text, comment="IANA time zone of the venue's sessions")
    currency: Mapped[str | None] = mapped_column(sa.String(3), comment="ISO 4217 trading currency")
    status: Mapped[str] = mapped_column(sa.Text, server_default="active")
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()


class Security(Base):
    __tablename__ = "securities"
    __table_args__ = plain(
        SCHEMA,
        "Security master: one row per instrument listing (symbol on a venue).",
        # Among listings that still trade, a symbol names one listing per venue; a delisted listing gives its
        # ticker up for reuse (its identifiers keep the dates it held it).
        sa.Index(
            "uq_securities_symbol_exchange_mic",
            "symbol",
            "exchange_mic",
            unique=True,
            postgresql_nulls_not_distinct=True,
            postgresql_where=sa.text("status <> 'delisted'"),
        ),
        sa.CheckConstraint("symbol ~ '^[^[:space:]]+$'", name="symbol_format"),
        one_of("asset_type", ASSET_TYPES),
        one_of("status", SECURITY_STATUSES),
        sa.CheckConstraint("isin IS NULL OR isin ~ '^[A-Z]{2}[A-Z0-9]{9}[0-9]$'", name="isin_format"),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_format"),
        sa.CheckConstraint("market_cap IS NULL OR market_cap >= 0", name="market_cap_non_negative"),
        sa.CheckConstraint(
            "delisted_on IS NULL OR listed_on IS NULL OR delisted_on >= listed_on", name="listing_dates"
        ),
        sa.Index(None, "isin"),
    )

    security_id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    symbol: Mapped[str] = mapped_column(
        Symbol, comment="Ticker as the venue writes it, up to 32 characters (BRK.B, ABR$D, BTC/USDT)"
    )
    exchange_mic: Mapped[str | None] = mapped_column(
        sa.ForeignKey("shared.exchanges.mic"), comment="Listing venue; NULL for instruments without a MIC"
    )
    asset_type: Mapped[str] = mapped_column(sa.Text)
    currency: Mapped[str] = mapped_column(sa.String(3), server_default="USD", comment="ISO 4217 currency")
    name: Mapped[str | None] = mapped_column(sa.Text)
    sector: Mapped[str | None] = mapped_column(sa.Text)
    industry: Mapped[str | None] = mapped_column(sa.Text)
    market_cap: Mapped[Decimal | None] = mapped_column(Money, comment="Market capitalisation in `currency`")
    isin: Mapped[str | None] = mapped_column(sa.String(12), comment="ISO 6166 ISIN")
    figi: Mapped[str | None] = mapped_column(sa.String(12), comment="OpenFIGI identifier")
    cik: Mapped[str | None] = mapped_column(sa.String(10), comment="SEC Central Index Key")
    status: Mapped[str] = mapped_column(sa.Text, server_default="active")
    listed_on: Mapped[date | None] = mapped_column(sa.Date)
    delisted_on: Mapped[date | None] = mapped_column(sa.Date)
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()


#: Identifier schemes: a venue's own ticker (``ticker``, unique per MIC, the scope), the three US conventions of
#: one listing (NASDAQ ``ABR-D``, CQS ``ABRpD``, ACT/CMS ``ABR$D``, each unique nationally), global codes, and
#: vendor symbols.
IDENTIFIER_SCHEMES = (
    "ticker",
    "nasdaq",
    "cqs",
    "act",
    "isin",
    "cusip",
    "figi",
    "cik",
    "sedol",
    "yahoo",
    "google",
    "databento",
    "bloomberg",
    "ric",
)
#: Schemes that name an instrument or an issuer, not one listing: several listings may share one at a time.
SHARED_SCHEMES = ("isin", "cusip", "cik", "sedol")
_VALIDITY = sa.text("daterange(valid_from, valid_to)")
_NOT_SHARED = "scheme NOT IN (" + ", ".join(f"'{s}'" for s in SHARED_SCHEMES) + ")"


class SecurityIdentifier(Base):
    __tablename__ = "security_identifiers"
    __table_args__ = plain(
        SCHEMA,
        "Symbology: every name a security goes by, per scheme, with the dates it held it (renames, reused tickers).",
        one_of("scheme", IDENTIFIER_SCHEMES),
        sa.CheckConstraint("value ~ '^[^[:space:]]+$'", name="value_format"),
        sa.CheckConstraint("valid_from < valid_to", name="valid_range"),
        # One holder per identifier at a time (for listing-level schemes) ...
        # key_hash first: a gist index is searched by its leading column; a bigint that tells rows apart makes
        # writes three times cheaper than leading with the texts (bench/reference.py), which follow for exactness.
        ExcludeConstraint(
            (sa.column("key_hash"), "="),
            (sa.column("value"), "="),
            (sa.column("scheme"), "="),
            (sa.column("scope"), "="),
            (_VALIDITY, "&&"),
            using="gist",
            name="security_identifiers_one_holder",
            where=sa.text(_NOT_SHARED),
        ),
        # ... and no security holds a shared identifier twice over the same days (the constraint above already
        # refuses that for the others; each row is in one gist index, which halves the cost of a write).
        ExcludeConstraint(
            (sa.column("key_hash"), "="),
            (sa.column("security_id"), "="),
            (sa.column("value"), "="),
            (sa.column("scheme"), "="),
            (sa.column("scope"), "="),
            (_VALIDITY, "&&"),
            using="gist",
            name="security_identifiers_no_repeat",
            where=sa.text("scheme IN (" + ", ".join(f"'{s}'" for s in SHARED_SCHEMES) + ")"),
        ),
        sa.Index(None, "value"),
        sa.Index(None, "security_id"),
    )

    identifier_id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    security_id: Mapped[int] = mapped_column(sa.BigInteger, sa.ForeignKey("shared.securities.security_id"))
    scheme: Mapped[str] = mapped_column(sa.Text)
    value: Mapped[str] = mapped_column(sa.String(64), comment="The identifier as the scheme spells it")
    scope: Mapped[str] = mapped_column(
        sa.String(32),
        server_default="",
        comment="Where the identifier is unique: the MIC for tickers, the dataset for vendor ids, '' when global",
    )
    valid_from: Mapped[date | None] = mapped_column(sa.Date, comment="First day held; NULL: since always")
    valid_to: Mapped[date | None] = mapped_column(sa.Date, comment="First day no longer held; NULL: still held")
    source: Mapped[str | None] = mapped_column(sa.String(32), comment="Who said so (a listing file, a vendor)")
    created_at: Mapped[datetime] = created_at()
    key_hash: Mapped[int | None] = mapped_column(
        sa.BigInteger,
        sa.Computed(
            "hashtextextended((((scheme || ' ') || (scope)::text) || ' ') || (value)::text, 0)", persisted=True
        ),
        comment="Hash of scheme, scope and value: leads the exclusion constraints' gist index (a bigint is "
        "cheaper there than three texts, which are still compared exactly)",
    )


class IndexMember(Base):
    __tablename__ = "index_members"
    __table_args__ = plain(
        SCHEMA,
        "Index membership over time: a security belongs to an index from member_from until member_to.",
        sa.CheckConstraint("index_name ~ '^[^[:space:]].*$'", name="index_name_format"),
        sa.CheckConstraint("member_from < member_to", name="member_range"),
        ExcludeConstraint(
            (sa.column("security_id"), "="),
            (sa.column("index_name"), "="),
            (sa.text("daterange(member_from, member_to)"), "&&"),
            using="gist",
            name="index_members_no_overlap",
        ),
        sa.Index(None, "security_id"),
    )

    membership_id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    index_name: Mapped[str] = mapped_column(sa.String(64), comment="The index, e.g. 'S&P 500', 'DAX'")
    security_id: Mapped[int] = mapped_column(sa.BigInteger, sa.ForeignKey("shared.securities.security_id"))
    member_from: Mapped[date | None] = mapped_column(sa.Date, comment="Date added; NULL: before records begin")
    member_to: Mapped[date | None] = mapped_column(sa.Date, comment="First day no longer a member; NULL: still one")
    source: Mapped[str | None] = mapped_column(sa.String(32))
    created_at: Mapped[datetime] = created_at()


class SystemConfig(Base):
    __tablename__ = "system_config"
    __table_args__ = plain(
        SCHEMA,
        "Platform settings; secrets are stored only encrypted (value_encrypted with key_id), never in value.",
        sa.CheckConstraint("NOT is_secret OR value IS NULL", name="secret_not_in_clear"),
        sa.CheckConstraint("value_encrypted IS NULL OR key_id IS NOT NULL", name="encrypted_has_key"),
    )

    key: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    value: Mapped[Any | None] = mapped_column(JSONB, comment="Clear value; always NULL for secrets")
    description: Mapped[str | None] = mapped_column(sa.Text)
    is_secret: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.false())
    value_encrypted: Mapped[bytes | None] = mapped_column(
        sa.LargeBinary, comment="AES-GCM ciphertext of a secret value, encrypted in the application"
    )
    key_id: Mapped[str | None] = mapped_column(sa.Text, comment="Id of the key that encrypted value_encrypted")
    updated_at: Mapped[datetime] = updated_at()


class MaintenanceState(Base):
    __tablename__ = "maintenance_state"
    __table_args__ = plain(
        SCHEMA,
        "Maintenance mode's flag, kept equal to system_config maintenance_mode by a trigger; what the maintenance "
        "guard reads (a Citus cluster copies it to every node).",
        sa.CheckConstraint("id", name="one_row"),
    )

    id: Mapped[bool] = mapped_column(
        sa.Boolean, primary_key=True, server_default=sa.true(), comment="Always true: one row"
    )
    active: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.false())


_audit_seq, _audit_default = sequence_default(SCHEMA, "audit_log", "audit_id")


class AuditLog(Base):
    __tablename__ = "audit_log"
    __table_args__ = partitioned(
        SCHEMA,
        "changed_at",
        "month",
        "Append-only, hash-chained trail of changes to audited tables.",
        one_of("operation", AUDIT_OPERATIONS),
        sa.Index(None, "table_schema", "table_name", "changed_at"),
    )

    audit_id: Mapped[int] = mapped_column(
        sa.BigInteger, server_default=_audit_default, primary_key=True, comment="Chain order"
    )
    changed_at: Mapped[datetime] = mapped_column(Timestamp, primary_key=True, server_default=sa.func.now())
    table_schema: Mapped[str] = mapped_column(sa.Text)
    table_name: Mapped[str] = mapped_column(sa.Text)
    operation: Mapped[str] = mapped_column(sa.Text)
    row_key: Mapped[Any | None] = mapped_column(JSONB, comment="Primary key of the changed row")
    old_values: Mapped[Any | None] = mapped_column(JSONB)
    new_values: Mapped[Any | None] = mapped_column(JSONB)
    db_user: Mapped[str] = mapped_column(sa.Text, server_default=sa.text("current_user"))
    app_user: Mapped[str | None] = mapped_column(sa.Text, comment="Application user from the transaction setting")
    prev_hash: Mapped[bytes | None] = mapped_column(
        sa.LargeBinary, comment="row_hash of the previous entry (the chain before the ledger)"
    )
    row_hash: Mapped[bytes | None] = mapped_column(
        sa.LargeBinary, comment="sha256 over this row and its txid (before the ledger: over prev_hash and this row)"
    )
    txid: Mapped[int | None] = mapped_column(
        sa.BigInteger, index=True, comment="Writing transaction; NULL before the ledger"
    )


class AuditBlock(Base):
    __tablename__ = "audit_blocks"
    __table_args__ = plain(
        SCHEMA, "The audit ledger's blocks: committed transactions chained in the order they were sealed."
    )

    block_id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    prev_hash: Mapped[bytes | None] = mapped_column(sa.LargeBinary, comment="block_hash of the block before")
    block_hash: Mapped[bytes] = mapped_column(
        sa.LargeBinary, comment="sha256 over prev_hash, the counts and the transactions' hashes in order"
    )
    transactions: Mapped[int] = mapped_column(sa.Integer)
    row_count: Mapped[int] = mapped_column(sa.BigInteger)
    horizon: Mapped[int] = mapped_column(
        sa.BigInteger, comment="Oldest transaction still running at sealing: the next seal looks from here"
    )
    sealed_at: Mapped[datetime] = mapped_column(Timestamp, server_default=sa.func.now())


class AuditTransaction(Base):
    __tablename__ = "audit_transactions"
    __table_args__ = plain(
        SCHEMA,
        "Sealed transactions of the audit ledger, with a hash over their audit rows.",
        sa.Index(None, "block_id", "ordinal"),
    )

    txid: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    block_id: Mapped[int] = mapped_column(
        sa.BigInteger, sa.ForeignKey(f"{SCHEMA}.audit_blocks.block_id", deferrable=True, initially="DEFERRED")
    )
    ordinal: Mapped[int] = mapped_column(sa.Integer, comment="Position in the block")
    row_count: Mapped[int] = mapped_column(sa.Integer)
    tx_hash: Mapped[bytes] = mapped_column(sa.LargeBinary, comment="sha256 over txid and the row hashes")


_outbox_seq, _outbox_default = sequence_default(SCHEMA, "event_outbox", "event_id")


class EventOutbox(Base):
    __tablename__ = "event_outbox"
    __table_args__ = partitioned(
        SCHEMA,
        "created_at",
        "day",
        "Transactional outbox: events written with the change that caused them, published afterwards.",
        sa.Index("ix_event_outbox_undelivered", "event_id", postgresql_where=sa.text("delivered_at IS NULL")),
        sa.Index(
            "ix_event_outbox_undelivered_aggregate",
            "aggregate_type",
            "aggregate_id",
            "seq",
            postgresql_where=sa.text("delivered_at IS NULL"),
        ),
        sa.Index(
            "ix_event_outbox_stream_position",
            "aggregate_type",
            "stream_position",
            postgresql_where=sa.text("stream_position IS NOT NULL"),
        ),
        sa.CheckConstraint("seq > 0", name="seq_positive"),
    )

    event_id: Mapped[int] = mapped_column(
        sa.BigInteger,
        server_default=_outbox_default,
        primary_key=True,
        comment="Write order; an aggregate's events have increasing ids",
    )
    created_at: Mapped[datetime] = mapped_column(
        Timestamp, primary_key=True, server_default=sa.text("clock_timestamp()")
    )
    aggregate_type: Mapped[str] = mapped_column(sa.Text, comment="The stream: order, position, market_data, ...")
    aggregate_id: Mapped[str] = mapped_column(sa.Text)
    seq: Mapped[int] = mapped_column(sa.BigInteger, comment="1, 2, 3... per aggregate: gaps and repeats show")
    event_type: Mapped[str] = mapped_column(sa.Text)
    payload: Mapped[Any] = mapped_column(JSONB)
    delivered_at: Mapped[datetime | None] = mapped_column(
        Timestamp, comment="When the relay published it (NULL: not yet)"
    )
    stream_position: Mapped[int | None] = mapped_column(
        sa.BigInteger, comment="Position in its PostgreSQL stream (events without Redis); gap-free per stream"
    )


class EventSequence(Base):
    __tablename__ = "event_sequences"
    __table_args__ = plain(SCHEMA, "Last sequence number given to each aggregate's events (its row lock orders them).")

    aggregate_type: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    aggregate_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    last_seq: Mapped[int] = mapped_column(sa.BigInteger)


class EventStream(Base):
    __tablename__ = "event_streams"
    __table_args__ = plain(SCHEMA, "Last position given in each PostgreSQL stream (events without Redis).")

    stream: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    last_position: Mapped[int] = mapped_column(sa.BigInteger, server_default="0")


class EventConsumerGroup(Base):
    __tablename__ = "event_consumer_groups"
    __table_args__ = plain(SCHEMA, "Consumer groups of the PostgreSQL streams: where each group is.")

    stream: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    group_name: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    position: Mapped[int] = mapped_column(sa.BigInteger, server_default="0", comment="Last position handled")
    attempts: Mapped[int] = mapped_column(sa.Integer, server_default="0", comment="Failed attempts at the next event")
    updated_at: Mapped[datetime] = mapped_column(Timestamp, server_default=sa.func.now())


class EventInbox(Base):
    __tablename__ = "event_inbox"
    __table_args__ = plain(
        SCHEMA, "Events a consumer group handled: written with the handler's changes, so each is handled once."
    )

    group_name: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    event_id: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(Timestamp, server_default=sa.func.now())


class EventDeadLetter(Base):
    __tablename__ = "event_dead_letters"
    __table_args__ = plain(SCHEMA, "Events a consumer group gave up on after its attempts (PostgreSQL streams).")

    dead_letter_id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    group_name: Mapped[str] = mapped_column(sa.Text)
    stream: Mapped[str] = mapped_column(sa.Text)
    event_id: Mapped[int] = mapped_column(sa.BigInteger)
    attempts: Mapped[int] = mapped_column(sa.Integer)
    error: Mapped[str] = mapped_column(sa.Text)
    event: Mapped[Any] = mapped_column(JSONB)
    failed_at: Mapped[datetime] = mapped_column(Timestamp, server_default=sa.func.now())

"""reference data: symbology over time, index membership, ticker reuse, holders' latest flag, an ingest log

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-29 13:00:00

``shared.security_identifiers`` holds every name a security goes by (tickers per venue, the three US conventions,
ISINs, vendor symbols) with the dates it held it; exclusion constraints (``btree_gist``, a trusted extension the
database owner may create) refuse two holders of one identifier on one day (and, for identifiers listings share
such as ISINs, one security holding one twice). ``shared.index_members`` gives index
membership from/to dates. A delisted listing gives its ticker up: the unique key on (symbol, venue) becomes a
unique index over listings that are not delisted, under the same name. ``load_runs``, which nothing wrote before
this revision, becomes a log with one row per ingest. The security master is small (tens of thousands of rows):
its index is built inside the migration's transaction rather than concurrently.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "shared"
D = "data_ingestion"
TS = sa.DateTime(timezone=True)
SCHEMES = (
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
SHARED_SCHEMES = ("isin", "cusip", "cik", "sedol")
LOAD_STATUSES = ("running", "success", "partial", "failed")
KEY_HASH = "hashtextextended((((scheme || ' ') || (scope)::text) || ' ') || (value)::text, 0)"


def _listed(values: Sequence[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS btree_gist WITH SCHEMA shared")
    op.create_table(
        "security_identifiers",
        sa.Column("identifier_id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("security_id", sa.BigInteger(), nullable=False),
        sa.Column("scheme", sa.Text(), nullable=False),
        sa.Column("value", sa.String(64), nullable=False, comment="The identifier as the scheme spells it"),
        sa.Column(
            "scope",
            sa.String(32),
            server_default="",
            nullable=False,
            comment="Where the identifier is unique: the MIC for tickers, the dataset for vendor ids, '' when global",
        ),
        sa.Column("valid_from", sa.Date(), nullable=True, comment="First day held; NULL: since always"),
        sa.Column("valid_to", sa.Date(), nullable=True, comment="First day no longer held; NULL: still held"),
        sa.Column("source", sa.String(32), nullable=True, comment="Who said so (a listing file, a vendor)"),
        sa.Column("created_at", TS, server_default=sa.text("now()"), nullable=False),
        sa.Column(
            "key_hash",
            sa.BigInteger(),
            sa.Computed(KEY_HASH, persisted=True),
            nullable=True,
            comment="Hash of scheme, scope and value: leads the exclusion constraints' gist index (a bigint is "
            "cheaper there than three texts, which are still compared exactly)",
        ),
        sa.CheckConstraint(f"scheme IN ({_listed(SCHEMES)})", name=op.f("ck_security_identifiers_scheme")),
        sa.CheckConstraint("value ~ '^[^[:space:]]+$'", name=op.f("ck_security_identifiers_value_format")),
        sa.CheckConstraint("valid_from < valid_to", name=op.f("ck_security_identifiers_valid_range")),
        sa.ForeignKeyConstraint(
            ["security_id"],
            ["shared.securities.security_id"],
            name=op.f("fk_security_identifiers_security_id_securities"),
        ),
        sa.PrimaryKeyConstraint("identifier_id", name=op.f("pk_security_identifiers")),
        schema=S,
        comment="Symbology: every name a security goes by, per scheme, with the dates it held it "
        "(renames, reused tickers).",
    )
    op.execute(
        "ALTER TABLE shared.security_identifiers ADD CONSTRAINT security_identifiers_one_holder EXCLUDE USING gist "
        "(key_hash WITH =, value WITH =, scheme WITH =, scope WITH =, daterange(valid_from, valid_to) WITH &&) "
        f"WHERE (scheme NOT IN ({_listed(SHARED_SCHEMES)}))"
    )
    op.execute(
        "ALTER TABLE shared.security_identifiers ADD CONSTRAINT security_identifiers_no_repeat EXCLUDE USING gist "
        "(key_hash WITH =, security_id WITH =, value WITH =, scheme WITH =, scope WITH =, "
        "daterange(valid_from, valid_to) WITH &&) "
        f"WHERE (scheme IN ({_listed(SHARED_SCHEMES)}))"
    )
    op.create_index(op.f("ix_security_identifiers_value"), "security_identifiers", ["value"], schema=S)
    op.create_index(op.f("ix_security_identifiers_security_id"), "security_identifiers", ["security_id"], schema=S)

    op.create_table(
        "index_members",
        sa.Column("membership_id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("index_name", sa.String(64), nullable=False, comment="The index, e.g. 'S&P 500', 'DAX'"),
        sa.Column("security_id", sa.BigInteger(), nullable=False),
        sa.Column("member_from", sa.Date(), nullable=True, comment="Date added; NULL: before records begin"),
        sa.Column("member_to", sa.Date(), nullable=True, comment="First day no longer a member; NULL: still one"),
        sa.Column("source", sa.String(32), nullable=True),
        sa.Column("created_at", TS, server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("index_name ~ '^[^[:space:]].*$'", name=op.f("ck_index_members_index_name_format")),
        sa.CheckConstraint("member_from < member_to", name=op.f("ck_index_members_member_range")),
        sa.ForeignKeyConstraint(
            ["security_id"], ["shared.securities.security_id"], name=op.f("fk_index_members_security_id_securities")
        ),
        sa.PrimaryKeyConstraint("membership_id", name=op.f("pk_index_members")),
        schema=S,
        comment="Index membership over time: a security belongs to an index from member_from until member_to.",
    )
    op.execute(
        "ALTER TABLE shared.index_members ADD CONSTRAINT index_members_no_overlap EXCLUDE USING gist "
        "(security_id WITH =, index_name WITH =, daterange(member_from, member_to) WITH &&)"
    )
    op.create_index(op.f("ix_index_members_security_id"), "index_members", ["security_id"], schema=S)

    op.drop_constraint("uq_securities_symbol_exchange_mic", "securities", schema=S, type_="unique")
    op.execute(
        "CREATE UNIQUE INDEX uq_securities_symbol_exchange_mic ON shared.securities (symbol, exchange_mic) "
        "NULLS NOT DISTINCT WHERE status <> 'delisted'"
    )

    op.add_column(
        "institutional_holders",
        sa.Column(
            "is_latest",
            sa.Boolean(),
            server_default=sa.false(),
            nullable=False,
            comment="This holder's newest report for the security and source (kept by the writer; history stays)",
        ),
        schema=D,
    )
    op.create_index(
        "ix_institutional_holders_latest",
        "institutional_holders",
        ["security_id"],
        schema=D,
        postgresql_where=sa.text("is_latest"),
    )

    op.drop_table("load_runs", schema=D)
    op.create_table(
        "load_runs",
        sa.Column("run_id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("table_name", sa.Text(), nullable=False, comment="quotes, market_trades, bars, securities, ..."),
        sa.Column("timeframe", sa.String(4), nullable=True, comment="Bar timeframe; NULL for other tables"),
        sa.Column("target", sa.Text(), nullable=True, comment="What was read: a file path, a vendor request"),
        sa.Column("range_start", TS, nullable=True, comment="Oldest data time loaded"),
        sa.Column("range_end", TS, nullable=True, comment="Newest data time loaded"),
        sa.Column("rows_loaded", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("rows_rejected", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("status", sa.Text(), server_default="running", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", TS, server_default=sa.text("now()"), nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.CheckConstraint(f"status IN ({_listed(LOAD_STATUSES)})", name=op.f("ck_load_runs_status")),
        sa.CheckConstraint("rows_loaded >= 0 AND rows_rejected >= 0", name=op.f("ck_load_runs_rows_non_negative")),
        sa.CheckConstraint(
            "finished_at IS NULL OR finished_at >= started_at", name=op.f("ck_load_runs_finished_after_start")
        ),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_load_runs")),
        schema=D,
        comment="One row per ingest: what was loaded (source, table, file), the data's time range, rows and outcome.",
    )
    op.create_index(
        op.f("ix_load_runs_table_name_source_started_at"), "load_runs", ["table_name", "source", "started_at"], schema=D
    )


def downgrade() -> None:
    op.drop_table("load_runs", schema=D)
    op.create_table(
        "load_runs",
        sa.Column("security_id", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("dataset", sa.Text(), nullable=False, comment="quotes, trades, bars, ..."),
        sa.Column(
            "timeframe", sa.String(4), server_default="", nullable=False, comment="Bar timeframe; empty for tick data"
        ),
        sa.Column("last_run", TS, nullable=True),
        sa.Column("last_success", TS, nullable=True),
        sa.Column("last_data_ts", TS, nullable=True, comment="Newest data time loaded so far"),
        sa.Column("records_loaded", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("status", sa.Text(), server_default="success", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(f"status IN ({_listed(LOAD_STATUSES)})", name=op.f("ck_load_runs_status")),
        sa.CheckConstraint("records_loaded >= 0", name=op.f("ck_load_runs_records_non_negative")),
        sa.ForeignKeyConstraint(
            ["security_id"], ["shared.securities.security_id"], name=op.f("fk_load_runs_security_id_securities")
        ),
        sa.PrimaryKeyConstraint("security_id", "source", "dataset", "timeframe", name=op.f("pk_load_runs")),
        schema=D,
        comment="Incremental load bookkeeping per security, source, dataset and timeframe.",
    )
    op.drop_index("ix_institutional_holders_latest", "institutional_holders", schema=D)
    op.drop_column("institutional_holders", "is_latest", schema=D)
    op.execute("DROP INDEX shared.uq_securities_symbol_exchange_mic")
    op.create_unique_constraint(
        "uq_securities_symbol_exchange_mic",
        "securities",
        ["symbol", "exchange_mic"],
        schema=S,
        postgresql_nulls_not_distinct=True,
    )
    op.drop_table("index_members", schema=S)
    op.drop_table("security_identifiers", schema=S)
    # btree_gist stays: other objects of the database may have come to use it.

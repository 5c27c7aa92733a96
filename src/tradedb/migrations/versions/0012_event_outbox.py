"""events: a time-partitioned outbox with per-aggregate sequence numbers, PostgreSQL streams, inbox, dead letters

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29 06:10:00

Nothing wrote ``shared.event_outbox`` before this revision, so it is replaced by a table partitioned by day. Writers
go through ``shared.emit_events`` (SECURITY DEFINER: service roles only read ``shared``, and no service can forge a
sequence number or mark an event delivered). A statement trigger NOTIFYs ``tradedb_events`` so relays and consumers
wake at commit.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "shared"
TS = sa.DateTime(timezone=True)

# Both plpgsql: its plans are cached for the session (a SQL function's are made again on every call).
EMIT_EVENTS = """
CREATE FUNCTION shared.emit_events(events jsonb) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    -- events: [[aggregate_type, aggregate_id, event_type, payload], ...] (one JSON document: cheaper to send
    -- than arrays whose text would need escaping).
    WITH batch AS (
        SELECT e->>0 AS aggregate_type, e->>1 AS aggregate_id, e->>2 AS event_type, e->3 AS payload, n
        FROM jsonb_array_elements(events) WITH ORDINALITY AS b(e, n)
    ), counted AS (
        -- Locks each aggregate's counter until commit (in a fixed order, so two writers never deadlock here):
        -- an aggregate's sequence numbers commit in order, and its event ids follow them.
        INSERT INTO shared.event_sequences AS s (aggregate_type, aggregate_id, last_seq)
        SELECT b.aggregate_type, b.aggregate_id, count(*) FROM batch b GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE SET last_seq = s.last_seq + excluded.last_seq
        RETURNING s.aggregate_type, s.aggregate_id, s.last_seq
    ), numbered AS (
        SELECT b.*, c.last_seq - count(*) OVER w + row_number() OVER (w ORDER BY b.n) AS seq
        FROM batch b JOIN counted c ON c.aggregate_type = b.aggregate_type AND c.aggregate_id = b.aggregate_id
        WINDOW w AS (PARTITION BY b.aggregate_type, b.aggregate_id)
    )
    INSERT INTO shared.event_outbox (aggregate_type, aggregate_id, seq, event_type, payload)
    SELECT x.aggregate_type, x.aggregate_id, x.seq, x.event_type, x.payload FROM numbered x ORDER BY x.n;
END
$fn$
"""

#: Events whose sequence number is the version of the row they are about (orders, positions): bumped under that
#: row's lock by every change, so no counter is needed.
EMIT_VERSIONED = """
CREATE FUNCTION shared.emit_versioned(events jsonb) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    -- events: [[aggregate_type, aggregate_id, event_type, payload, seq], ...]
    INSERT INTO shared.event_outbox (aggregate_type, aggregate_id, seq, event_type, payload)
    SELECT e->>0, e->>1, (e->>4)::bigint, e->>2, e->3
    FROM jsonb_array_elements(events) WITH ORDINALITY AS b(e, n) ORDER BY n;
END
$fn$
"""

NOTIFY = """
CREATE FUNCTION shared.event_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM pg_notify('tradedb_events', '');
    RETURN NULL;
END
$fn$
"""

INBOX_CLAIM = """
CREATE FUNCTION shared.claim_inbox(group_name text, event_id bigint) RETURNS boolean
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
    INSERT INTO shared.event_inbox (group_name, event_id) VALUES (group_name, event_id)
    ON CONFLICT DO NOTHING RETURNING true
$fn$
"""


def _old_outbox() -> None:
    op.create_table(
        "event_outbox",
        sa.Column("event_id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=True, comment="Partitioning/ordering key for consumers"),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", TS, server_default=sa.text("now()"), nullable=False),
        sa.Column("published_at", TS, nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_event_outbox_attempts_non_negative")),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_event_outbox")),
        schema=S,
        comment="Transactional outbox: events written with the change that caused them, published afterwards.",
    )
    op.create_index(
        "ix_event_outbox_unpublished",
        "event_outbox",
        ["created_at"],
        unique=False,
        schema=S,
        postgresql_where=sa.text("published_at IS NULL"),
    )


def upgrade() -> None:
    op.drop_table("event_outbox", schema=S)
    op.execute(sa.schema.CreateSequence(sa.Sequence("event_outbox_event_id_seq", schema=S)))
    op.create_table(
        "event_outbox",
        sa.Column(
            "event_id",
            sa.BigInteger(),
            server_default=sa.text("nextval('shared.event_outbox_event_id_seq'::regclass)"),
            nullable=False,
            comment="Write order; an aggregate's events have increasing ids",
        ),
        sa.Column("created_at", TS, server_default=sa.text("clock_timestamp()"), nullable=False),
        sa.Column("aggregate_type", sa.Text(), nullable=False, comment="The stream: order, position, market_data, ..."),
        sa.Column("aggregate_id", sa.Text(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False, comment="1, 2, 3... per aggregate: gaps and repeats show"),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("delivered_at", TS, nullable=True, comment="When the relay published it (NULL: not yet)"),
        sa.Column(
            "stream_position",
            sa.BigInteger(),
            nullable=True,
            comment="Position in its PostgreSQL stream (events without Redis); gap-free per stream",
        ),
        sa.CheckConstraint("seq > 0", name=op.f("ck_event_outbox_seq_positive")),
        sa.PrimaryKeyConstraint("event_id", "created_at", name=op.f("pk_event_outbox")),
        schema=S,
        comment="Transactional outbox: events written with the change that caused them, published afterwards.",
        postgresql_partition_by="RANGE (created_at)",
    )
    op.create_index(
        "ix_event_outbox_undelivered",
        "event_outbox",
        ["event_id"],
        unique=False,
        schema=S,
        postgresql_where=sa.text("delivered_at IS NULL"),
    )
    op.create_index(
        "ix_event_outbox_undelivered_aggregate",
        "event_outbox",
        ["aggregate_type", "aggregate_id", "seq"],
        unique=False,
        schema=S,
        postgresql_where=sa.text("delivered_at IS NULL"),
    )
    op.create_index(
        "ix_event_outbox_stream_position",
        "event_outbox",
        ["aggregate_type", "stream_position"],
        unique=False,
        schema=S,
        postgresql_where=sa.text("stream_position IS NOT NULL"),
    )
    op.execute(
        'CREATE TABLE IF NOT EXISTS "shared"."event_outbox_default" PARTITION OF "shared"."event_outbox" DEFAULT'
    )
    op.create_table(
        "event_sequences",
        sa.Column("aggregate_type", sa.Text(), nullable=False),
        sa.Column("aggregate_id", sa.Text(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("aggregate_type", "aggregate_id", name=op.f("pk_event_sequences")),
        schema=S,
        comment="Last sequence number given to each aggregate's events (its row lock orders them).",
    )
    op.create_table(
        "event_streams",
        sa.Column("stream", sa.Text(), nullable=False),
        sa.Column("last_position", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("stream", name=op.f("pk_event_streams")),
        schema=S,
        comment="Last position given in each PostgreSQL stream (events without Redis).",
    )
    op.create_table(
        "event_consumer_groups",
        sa.Column("stream", sa.Text(), nullable=False),
        sa.Column("group_name", sa.Text(), nullable=False),
        sa.Column("position", sa.BigInteger(), server_default="0", nullable=False, comment="Last position handled"),
        sa.Column(
            "attempts", sa.Integer(), server_default="0", nullable=False, comment="Failed attempts at the next event"
        ),
        sa.Column("updated_at", TS, server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("stream", "group_name", name=op.f("pk_event_consumer_groups")),
        schema=S,
        comment="Consumer groups of the PostgreSQL streams: where each group is.",
    )
    op.create_table(
        "event_inbox",
        sa.Column("group_name", sa.Text(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("processed_at", TS, server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("group_name", "event_id", name=op.f("pk_event_inbox")),
        schema=S,
        comment="Events a consumer group handled: written with the handler's changes, so each is handled once.",
    )
    op.create_table(
        "event_dead_letters",
        sa.Column("dead_letter_id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("group_name", sa.Text(), nullable=False),
        sa.Column("stream", sa.Text(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("event", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("failed_at", TS, server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("dead_letter_id", name=op.f("pk_event_dead_letters")),
        schema=S,
        comment="Events a consumer group gave up on after its attempts (PostgreSQL streams).",
    )
    op.execute(EMIT_EVENTS)
    op.execute(EMIT_VERSIONED)
    op.execute(INBOX_CLAIM)
    op.execute(NOTIFY)
    op.execute(
        "CREATE TRIGGER event_outbox_notify AFTER INSERT ON shared.event_outbox"
        " FOR EACH STATEMENT EXECUTE FUNCTION shared.event_outbox_notify()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS event_outbox_notify ON shared.event_outbox")
    op.execute("DROP FUNCTION IF EXISTS shared.event_outbox_notify()")
    op.execute("DROP FUNCTION IF EXISTS shared.claim_inbox(text, bigint)")
    op.execute("DROP FUNCTION IF EXISTS shared.emit_versioned(jsonb)")
    op.execute("DROP FUNCTION IF EXISTS shared.emit_events(jsonb)")
    for table in ("event_dead_letters", "event_inbox", "event_consumer_groups", "event_streams", "event_sequences"):
        op.drop_table(table, schema=S)
    op.drop_table("event_outbox", schema=S)
    op.execute(sa.schema.DropSequence(sa.Sequence("event_outbox_event_id_seq", schema=S)))
    _old_outbox()

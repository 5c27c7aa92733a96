"""notification deliveries: one per channel and event, attempted until sent or failed, every attempt logged

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-29 20:00:00

The dispatcher turns each event a channel subscribes to into one ``notification_deliveries`` row (unique per
channel and event, so an event delivered twice to the dispatcher is notified once), then attempts it with
exponential backoff until it is sent or the attempts run out; ``notification_logs`` gets a row per attempt. The new
table refuses writes in maintenance mode, as every table of the notification schema does (0017).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0019"
down_revision: str | Sequence[str] | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

N = "notification"
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "notification_deliveries",
        sa.Column("delivery_id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("config_id", sa.BigInteger(), nullable=False),
        sa.Column("event_key", sa.Text(), nullable=False, comment="The event's stream:aggregate:seq (its identity)"),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column(
            "payload",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            comment="The event as delivered, sent to webhooks",
        ),
        sa.Column("status", sa.Text(), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", TS, server_default=sa.text("now()"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", TS, server_default=sa.text("now()"), nullable=False),
        sa.Column("sent_at", TS, nullable=True),
        sa.CheckConstraint("status IN ('pending', 'sent', 'failed')", name=op.f("ck_notification_deliveries_status")),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_notification_deliveries_attempts_non_negative")),
        sa.ForeignKeyConstraint(
            ["config_id"],
            ["notification.notification_configs.config_id"],
            name=op.f("fk_notification_deliveries_config_id_notification_configs"),
        ),
        sa.PrimaryKeyConstraint("delivery_id", name=op.f("pk_notification_deliveries")),
        sa.UniqueConstraint("config_id", "event_key", name=op.f("uq_notification_deliveries_config_id_event_key")),
        schema=N,
        comment="One notification of one event to one channel: created once per (channel, event), attempted until "
        "sent or failed; every attempt is in notification_logs.",
    )
    op.create_index(
        "ix_notification_deliveries_due",
        "notification_deliveries",
        ["next_attempt_at"],
        unique=False,
        schema=N,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.add_column(
        "notification_logs",
        sa.Column("delivery_id", sa.BigInteger(), nullable=True, comment="The delivery this attempt was of"),
        schema=N,
    )
    op.execute(
        "CREATE TRIGGER maintenance_mode BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE "
        "ON notification.notification_deliveries FOR EACH STATEMENT EXECUTE FUNCTION shared.refuse_in_maintenance()"
    )


def downgrade() -> None:
    op.drop_column("notification_logs", "delivery_id", schema=N)
    op.drop_index("ix_notification_deliveries_due", table_name="notification_deliveries", schema=N)
    op.drop_table("notification_deliveries", schema=N)

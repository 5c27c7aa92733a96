"""Schema ``notification``: channels and the log of what was sent."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from tradedb.schema._base import (
    Base,
    Timestamp,
    created_at,
    one_of,
    partitioned,
    plain,
    sequence_default,
    updated_at,
)
from tradedb.schema.names import CHANNELS

SCHEMA = "notification"

STATUSES = ("pending", "sent", "failed")


class NotificationConfig(Base):
    __tablename__ = "notification_configs"
    __table_args__ = plain(
        SCHEMA,
        "Notification channels; credentials only in secret_encrypted (AES-GCM, encrypted in the application).",
        sa.UniqueConstraint("owner", "name"),
        one_of("channel", CHANNELS),
        sa.CheckConstraint("secret_encrypted IS NULL OR key_id IS NOT NULL", name="encrypted_has_key"),
    )

    config_id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    owner: Mapped[str] = mapped_column(sa.Text, comment="Service, team or user the channel belongs to")
    name: Mapped[str] = mapped_column(sa.Text)
    channel: Mapped[str] = mapped_column(sa.Text)
    settings: Mapped[Any] = mapped_column(JSONB, server_default=sa.text("'{}'::jsonb"), comment="No secrets here")
    secret_encrypted: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    key_id: Mapped[str | None] = mapped_column(sa.Text)
    is_active: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.true())
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()


DELIVERY_STATUSES = ("pending", "sent", "failed")


class NotificationDelivery(Base):
    __tablename__ = "notification_deliveries"
    __table_args__ = plain(
        SCHEMA,
        "One notification of one event to one channel: created once per (channel, event), attempted until sent or "
        "failed; every attempt is in notification_logs.",
        sa.UniqueConstraint("config_id", "event_key"),
        one_of("status", DELIVERY_STATUSES),
        sa.CheckConstraint("attempts >= 0", name="attempts_non_negative"),
        sa.Index("ix_notification_deliveries_due", "next_attempt_at", postgresql_where=sa.text("status = 'pending'")),
    )

    delivery_id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    config_id: Mapped[int] = mapped_column(sa.BigInteger, sa.ForeignKey("notification.notification_configs.config_id"))
    event_key: Mapped[str] = mapped_column(sa.Text, comment="The event's stream:aggregate:seq (its identity)")
    event_type: Mapped[str] = mapped_column(sa.Text)
    subject: Mapped[str] = mapped_column(sa.Text)
    message: Mapped[str] = mapped_column(sa.Text)
    payload: Mapped[Any] = mapped_column(JSONB, comment="The event as delivered, sent to webhooks")
    status: Mapped[str] = mapped_column(sa.Text, server_default="pending")
    attempts: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(Timestamp, server_default=sa.func.now())
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = created_at()
    sent_at: Mapped[datetime | None] = mapped_column(Timestamp)


_log_seq, _log_default = sequence_default(SCHEMA, "notification_logs", "log_id")


class NotificationLog(Base):
    __tablename__ = "notification_logs"
    __table_args__ = partitioned(
        SCHEMA,
        "sent_at",
        "month",
        "Every notification attempt and its outcome.",
        one_of("status", STATUSES),
        sa.CheckConstraint("attempts >= 0", name="attempts_non_negative"),
        sa.Index(None, "config_id", "sent_at"),
    )

    log_id: Mapped[int] = mapped_column(sa.BigInteger, server_default=_log_default, primary_key=True)
    sent_at: Mapped[datetime] = mapped_column(Timestamp, primary_key=True, server_default=sa.func.now())
    config_id: Mapped[int] = mapped_column(sa.BigInteger, sa.ForeignKey("notification.notification_configs.config_id"))
    status: Mapped[str] = mapped_column(sa.Text)
    subject: Mapped[str | None] = mapped_column(sa.Text)
    message: Mapped[str] = mapped_column(sa.Text)
    error: Mapped[str | None] = mapped_column(sa.Text)
    attempts: Mapped[int] = mapped_column(sa.Integer, server_default="1")
    delivery_id: Mapped[int | None] = mapped_column(sa.BigInteger, comment="The delivery this attempt was of")

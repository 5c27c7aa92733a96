"""Notifications: channels, and a dispatcher from events to webhooks, Slack, SMS and email (``db.notifications``).

The dispatcher consumes the outbox's events (``db.events``, consumer group ``tradedb-notifications``; the risk
stream by default) and, in the inbox's transaction, turns each event a channel takes into one
``notification_deliveries`` row (unique per channel and event: an event delivered twice is notified once). It then
attempts the due deliveries one at a time, each locked while it is sent (two dispatchers never send one delivery),
retrying a failed one with exponential backoff until it is sent or ``max_attempts`` ran out (then ``failed``);
``notification_logs`` gets a row per attempt. A send that succeeded but whose recording was lost (a crash in
between) is sent again: receivers get ``Idempotency-Key`` (webhooks) or a stable ``Message-ID`` (email) to drop it.
"""

# WARNING: generated from api_async.py by tools/async_to_sync.py; edit the async source and run
# `python tools/async_to_sync.py`. A unit test fails when this file is stale.

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from psycopg import Connection
from psycopg.errors import UniqueViolation
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from tradedb.db.inputs import check_id
from tradedb.errors import DuplicateError, NotFoundError, NotificationError, ValidationError
from tradedb.events.envelope import Event
from tradedb.masking import mask_secrets
from tradedb.notify import _rules as rules
from tradedb.notify import senders
from tradedb.notify._sql import (
    ACTIVE_CHANNELS,
    ADD_CHANNEL,
    ATTEMPTED,
    ATTEMPTS,
    CHANNELS,
    CLAIM,
    DELIVERIES,
    ENQUEUE,
    LOG_ATTEMPT,
    NEXT_DUE,
    SET_ACTIVE,
    SET_SECRET,
)
from tradedb.security.secrets import Keyring, notification_context

if TYPE_CHECKING:
    from tradedb.db.connections import Connections
    from tradedb.events.api import Events

Row = dict[str, Any]
GROUP = "tradedb-notifications"


@dataclass
class DispatchReport:
    """What a dispatch did: events read, deliveries created, and attempts by outcome."""

    events: int = 0
    enqueued: int = 0
    sent: int = 0
    failed: int = 0
    retrying: int = 0


class Notifications:
    """The notifications API of one Database (``db.notifications``)."""

    def __init__(self, db: Connections, events: Events) -> None:
        self._db = db
        self._events = events

    # --- channels -----------------------------------------------------------------------------------------

    def add_channel(
        self,
        owner: str,
        name: str,
        channel: str,
        *,
        settings: Mapping[str, Any] | None = None,
        secret: str | None = None,
    ) -> Row:
        """Add a channel: ``webhook`` (settings.url), ``slack`` (the secret is its webhook URL), ``sms``
        (settings.url of the gateway, settings.to in E.164; the secret is its token) or ``email`` (settings.host,
        port, from, to, starttls, username; the secret is the SMTP password). ``settings.events`` (patterns, default
        ``risk.*``) and ``settings.min_severity`` (default ``high``) choose what it is sent. The secret is stored
        only encrypted (TRADEDB_ENCRYPTION_KEYS)."""
        rules.check_name(owner, "owner")
        rules.check_name(name, "name")
        checked = rules.check_channel(channel, settings, secret)
        keyring = Keyring.from_settings(self._db.settings) if secret is not None else None
        with self._db.transaction() as conn:
            cursor = conn.cursor(row_factory=dict_row)
            try:
                cursor.execute(
                    ADD_CHANNEL, {"owner": owner, "name": name, "channel": channel, "settings": Jsonb(checked)}
                )
            except UniqueViolation:
                raise DuplicateError(f"owner {owner!r} already has a channel named {name!r}") from None
            row = cursor.fetchone()
            assert row is not None
            if keyring is not None and secret is not None:
                kid, blob = keyring.encrypt(secret, notification_context(row["config_id"]))
                cursor.execute(SET_SECRET, (blob, kid, row["config_id"]))
        return self.channel(row["config_id"])

    def channel(self, config_id: int) -> Row:
        """Return a channel (without its secret: ``has_secret`` says whether one is set)."""
        check_id(config_id, "config_id")
        found = self._db.fetch_one(CHANNELS, {"owner": None, "all": True, "config": config_id}, readonly=False)
        if found is None:
            raise NotFoundError(f"unknown notification channel {config_id}")
        return found

    def channels(self, owner: str | None = None, *, include_inactive: bool = False) -> list[Row]:
        """Return the channels (of one owner), without their secrets."""
        if owner is not None:
            rules.check_name(owner, "owner")
        params = {"owner": owner, "all": include_inactive, "config": None}
        return self._db.fetch_all(CHANNELS, params, readonly=False)

    def disable_channel(self, config_id: int) -> Row:
        """Stop sending to a channel (its pending deliveries fail at their next attempt)."""
        return self._set_active(config_id, False)

    def enable_channel(self, config_id: int) -> Row:
        """Send to a disabled channel again."""
        return self._set_active(config_id, True)

    def _set_active(self, config_id: int, active: bool) -> Row:
        check_id(config_id, "config_id")
        if self._db.fetch_one(SET_ACTIVE, (active, config_id), readonly=False) is None:
            raise NotFoundError(f"unknown notification channel {config_id}")
        return self.channel(config_id)

    # --- dispatching --------------------------------------------------------------------------------------

    def dispatch(
        self, streams: Sequence[str] = ("risk",), *, retry: rules.Retry | None = None, wait: bool = False
    ) -> DispatchReport:
        """Read the new events of ``streams``, create their deliveries, then attempt every due delivery.

        ``retry`` (default ``Retry()``: 5 attempts, 2 s doubling up to 5 min) says how failures are retried;
        ``wait=True`` waits out the backoff of failed deliveries, until each is sent or failed.
        """
        policy = (retry or rules.Retry()).checked()
        report = DispatchReport()

        def enqueue(event: Event, conn: Connection[Any] | None) -> None:
            assert conn is not None  # the inbox's transaction: deliveries are created once per event
            report.events += 1
            self._enqueue(conn, event, report)

        self._events.consume(GROUP, enqueue, list(streams), until_idle=True)
        self.deliver(report, retry=policy, wait=wait)
        return report

    def _enqueue(self, conn: Connection[Any], event: Event, report: DispatchReport) -> None:
        cursor = conn.cursor(row_factory=dict_row)
        cursor.execute(ACTIVE_CHANNELS)
        channels = cursor.fetchall()
        told = rules.notice(event.stream, event.aggregate_id, event.seq, event.type, event.payload)
        for channel in channels:
            if not rules.wants(channel["settings"], event.type, event.payload):
                continue
            params = {
                "config": channel["config_id"],
                "key": told.event_key,
                "type": told.event_type,
                "subject": told.subject,
                "message": told.message,
                "payload": Jsonb(told.payload),
            }
            cursor.execute(ENQUEUE, params)
            report.enqueued += cursor.rowcount

    def deliver(
        self, report: DispatchReport | None = None, *, retry: rules.Retry | None = None, wait: bool = False
    ) -> DispatchReport:
        """Attempt every due delivery once (``wait=True``: until each is sent or failed); return the outcomes."""
        policy = (retry or rules.Retry()).checked()
        report = report or DispatchReport()
        keyring: Keyring | None = None
        while True:
            with self._db.transaction() as conn:
                cursor = conn.cursor(row_factory=dict_row)
                cursor.execute(CLAIM)
                due = cursor.fetchone()
                if due is not None:
                    if due["secret_encrypted"] is not None and keyring is None:
                        keyring = Keyring.from_settings(self._db.settings)
                    self._attempt(cursor.connection, due, keyring, policy, report)
                    continue
                wait_for = (conn.execute(NEXT_DUE)).fetchone()
            if not wait or wait_for is None or wait_for[0] is None:
                return report
            time.sleep(min(max(float(wait_for[0]), 0.0), policy.max_delay) + 0.01)

    def _attempt(
        self,
        conn: Connection[Any],
        due: Row,
        keyring: Keyring | None,
        policy: rules.Retry,
        report: DispatchReport,
    ) -> None:
        attempt = due["attempts"] + 1
        error: str | None = None
        try:
            if not due["is_active"]:
                raise NotificationError(f"channel {due['config_id']} is disabled")
            secret = None
            if due["secret_encrypted"] is not None:
                assert keyring is not None
                secret = keyring.decrypt(
                    due["key_id"], bytes(due["secret_encrypted"]), notification_context(due["config_id"])
                )
            notice = {**due, "attempt": attempt}
            senders.send(due["channel"], due["settings"], secret, notice)
        except NotificationError as exc:
            error = mask_secrets(exc.message)
        if error is None:
            status, report.sent = "sent", report.sent + 1
        elif attempt >= policy.max_attempts or not due["is_active"]:
            status, report.failed = "failed", report.failed + 1
        else:
            status, report.retrying = "pending", report.retrying + 1
        params = {
            "delivery": due["delivery_id"],
            "config": due["config_id"],
            "attempt": attempt,
            "status": status,
            "log_status": "sent" if error is None else "failed",
            "error": error,
            "delay": policy.delay(attempt),
            "subject": due["subject"],
            "message": due["message"],
        }
        conn.execute(ATTEMPTED, params)
        conn.execute(LOG_ATTEMPT, params)

    # --- looking ------------------------------------------------------------------------------------------

    def deliveries(self, *, status: str | None = None, config_id: int | None = None, limit: int = 100) -> list[Row]:
        """Return deliveries, newest first."""
        if status is not None and status not in ("pending", "sent", "failed"):
            raise ValidationError(f"status must be pending, sent or failed; got {status!r}")
        if config_id is not None:
            check_id(config_id, "config_id")
        check_id(limit, "limit")
        params = {"status": status, "config": config_id, "limit": limit}
        return self._db.fetch_all(DELIVERIES, params, readonly=False)

    def attempts(self, *, delivery_id: int | None = None, config_id: int | None = None) -> list[Row]:
        """Return the logged attempts (of one delivery or channel), oldest first."""
        for value, name in ((delivery_id, "delivery_id"), (config_id, "config_id")):
            if value is not None:
                check_id(value, name)
        return self._db.fetch_all(ATTEMPTS, {"delivery": delivery_id, "config": config_id}, readonly=False)

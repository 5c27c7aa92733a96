"""Notifications against real servers: the database, a local HTTP receiver and a local SMTP server (aiosmtpd)."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from pydantic import SecretStr

import tradedb
from tests.conftest import TestDatabase, run_cli
from tradedb import DuplicateError, ValidationError
from tradedb.notify import Retry
from tradedb.security import secrets as crypto

FAST = Retry(max_attempts=4, base_delay=0.05, max_delay=1.0)


@dataclass
class Receiver:
    """A local HTTP server that records every POST; the first ``fail_first`` requests get 503."""

    fail_first: int = 0
    always_fail: bool = False
    requests: list[tuple[float, dict[str, str], bytes]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((time.monotonic(), dict(self.headers), body))
                failing = receiver.always_fail or len(receiver.requests) <= receiver.fail_first
                self.send_response(503 if failing else 200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()


class Mailbox:
    """aiosmtpd's handler: keeps every message."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    mailbox, port = Mailbox(), free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield mailbox, port
    controller.stop()


@pytest.fixture
def db(fresh_db: TestDatabase) -> Iterator[tradedb.Database]:
    settings = fresh_db.settings.model_copy(update={"encryption_keys": SecretStr(f"k1:{crypto.generate_key()}")})
    with tradedb.connect(fresh_db.url, settings=settings, max_size=2) as handle:
        yield handle


def breach(db: tradedb.Database, account: str = "N-1") -> None:
    """A drawdown limit breached by a mark: one risk.limit_breach event (severity high) in the outbox."""
    db.accounts.create(account, "book")
    security = db.securities.add(f"N{uuid.uuid4().hex[:5].upper()}", exchange="XNAS")
    db.risk.set_limit(account, "max_drawdown", 10)
    placed = db.execution.submit_order(
        account_id=account, security_id=security, side="buy", quantity=10, order_type="limit", limit_price=100
    )
    db.execution.record_fill(f"N-{uuid.uuid4().hex}", placed["order_id"], 10, 100)
    assert db.risk.check(account, marks={security: 90}).breaches


def test_channels_keep_their_secrets_encrypted_and_refuse_bad_settings(db: tradedb.Database) -> None:
    hook = db.notifications.add_channel(
        "risk-desk", "hook", "webhook", settings={"url": "https://example.test/h"}, secret="s3cret-token"
    )
    assert hook["has_secret"] is True and "secret_encrypted" not in hook
    stored = db.fetch_one(
        "SELECT secret_encrypted, key_id FROM notification.notification_configs WHERE config_id = %s",
        (hook["config_id"],),
    )
    assert stored is not None and stored["key_id"] == "k1" and b"s3cret-token" not in bytes(stored["secret_encrypted"])
    assert crypto.get_notification_secret(db, hook["config_id"]) == "s3cret-token"
    before = db.notifications.channels(include_inactive=True)
    cases: list[tuple[str, dict[str, Any], str | None, str]] = [
        ("webhook", {"url": "ftp://example.test/h"}, None, "http:// or https://"),
        ("webhook", {"url": "not a url"}, None, "http:// or https://"),
        ("sms", {"url": "https://sms.test", "to": "0044 20"}, None, "E.164"),
        ("email", {"host": "smtp.test", "from": "risk@desk.test", "to": ["nobody"]}, None, "email address"),
        ("email", {"host": "smtp.test", "from": "a@b.test", "to": "c@d.test"}, "pw", "settings.username"),
        ("slack", {}, None, "webhook URL"),
        ("pager", {}, None, "channel must be one of"),
        ("webhook", {"url": "https://x.test", "min_severity": "urgent"}, None, "min_severity"),
        ("webhook", {"url": "https://x.test", "retries": 3}, None, "unknown settings"),
    ]
    for channel, settings, secret, message in cases:
        with pytest.raises(ValidationError, match=message):
            db.notifications.add_channel("risk-desk", f"bad-{channel}", channel, settings=settings, secret=secret)
    with pytest.raises(DuplicateError, match="already has a channel named 'hook'"):
        db.notifications.add_channel("risk-desk", "hook", "webhook", settings={"url": "https://example.test/h"})
    assert db.notifications.channels(include_inactive=True) == before  # nothing written


def test_a_breach_is_sent_once_to_a_webhook_and_by_email(
    db: tradedb.Database, receiver: Receiver, smtp: tuple[Mailbox, int]
) -> None:
    mailbox, port = smtp
    hook = db.notifications.add_channel("risk", "hook", "webhook", settings={"url": receiver.url}, secret="sign-key")
    mail = db.notifications.add_channel(
        "risk",
        "mail",
        "email",
        settings={
            "host": "127.0.0.1",
            "port": port,
            "from": "tradedb@desk.test",
            "to": ["risk@desk.test"],
        },
    )
    quiet = db.notifications.add_channel(
        "risk", "only-critical", "webhook", settings={"url": receiver.url, "min_severity": "critical"}
    )
    breach(db)
    report = db.notifications.dispatch(retry=FAST)
    assert (report.enqueued, report.sent, report.failed) == (2, 2, 0)
    [(_, headers, body)] = receiver.requests
    sent = json.loads(body)
    assert sent["type"] == "risk.limit_breach" and "max_drawdown of account N-1 is 10 USD" in sent["message"]
    signature = "sha256=" + hmac.new(b"sign-key", body, hashlib.sha256).hexdigest()
    assert headers["X-Tradedb-Signature"] == signature and headers["Idempotency-Key"].endswith(f"/{hook['config_id']}")
    [email] = mailbox.messages
    assert email["To"] == "risk@desk.test" and "max_drawdown" in email["Subject"] + email.get_payload()
    # Every attempt is logged; dispatching again (and the event read again) sends nothing twice.
    assert [a["status"] for a in db.notifications.attempts(config_id=hook["config_id"])] == ["sent"]
    assert db.notifications.attempts(config_id=quiet["config_id"]) == []
    with db.transaction() as conn:
        conn.execute("UPDATE shared.event_consumer_groups SET position = 0 WHERE group_name = 'tradedb-notifications'")
    again = db.notifications.dispatch(retry=FAST)
    assert (again.enqueued, again.sent) == (0, 0)
    assert len(receiver.requests) == 1 and len(mailbox.messages) == 1
    assert {d["status"] for d in db.notifications.deliveries()} == {"sent"}
    assert mail["has_secret"] is False


def test_a_failing_receiver_is_retried_with_backoff_until_it_takes_it(db: tradedb.Database, receiver: Receiver) -> None:
    receiver.fail_first = 2
    hook = db.notifications.add_channel("risk", "flaky", "webhook", settings={"url": receiver.url})
    breach(db)
    first = db.notifications.dispatch(retry=FAST)
    assert (first.sent, first.retrying) == (0, 1)  # one attempt now, the next after the backoff
    done = db.notifications.deliver(retry=FAST, wait=True)
    assert done.sent == 1
    times = [t for t, _, _ in receiver.requests]
    assert len(times) == 3
    assert times[1] - times[0] >= 0.05 and times[2] - times[1] >= 0.1  # 0.05 s, then twice that
    assert [h["X-Tradedb-Attempt"] for _, h, _ in receiver.requests] == ["1", "2", "3"]
    logged = db.notifications.attempts(config_id=hook["config_id"])
    assert [(a["status"], a["attempts"]) for a in logged] == [("failed", 1), ("failed", 2), ("sent", 3)]
    assert logged[0]["error"] == "HTTP 503 Service Unavailable"


def test_a_receiver_that_is_down_is_retried_to_the_limit_then_recorded_as_failed(db: tradedb.Database) -> None:
    port = free_port()  # nobody listens on it
    hook = db.notifications.add_channel(
        "risk", "down", "webhook", settings={"url": f"http://127.0.0.1:{port}/hook"}, secret="never-shown"
    )
    breach(db)
    report = db.notifications.dispatch(retry=FAST, wait=True)
    assert (report.sent, report.failed) == (0, 1)
    [delivery] = db.notifications.deliveries(config_id=hook["config_id"])
    assert (delivery["status"], delivery["attempts"]) == ("failed", FAST.max_attempts)
    assert "cannot reach the receiver" in delivery["last_error"] and "never-shown" not in delivery["last_error"]
    logged = db.notifications.attempts(delivery_id=delivery["delivery_id"])
    assert [a["status"] for a in logged] == ["failed"] * FAST.max_attempts


def test_cli_manages_channels_and_dispatches(fresh_db: TestDatabase, receiver: Receiver) -> None:
    env = fresh_db.env(TRADEDB_ENCRYPTION_KEYS=f"k1:{crypto.generate_key()}")
    added = run_cli("notify", "add", "risk", "hook", "webhook", "--setting", f"url={receiver.url}", env=env)
    assert added.returncode == 0, added.stderr
    bad = run_cli("notify", "add", "risk", "bad", "webhook", "--setting", "url=ftp://x", env=env)
    assert bad.returncode == 8 and "http:// or https://" in bad.stderr
    listed = run_cli("notify", "channels", env=env)
    assert "hook" in listed.stdout and "webhook" in listed.stdout
    with tradedb.connect(fresh_db.url, settings=fresh_db.settings, max_size=1) as db:
        breach(db)
    sent = run_cli("notify", "dispatch", env=env)
    assert sent.returncode == 0, sent.stderr
    assert "sent 1" in sent.stdout and len(receiver.requests) == 1
    shown = run_cli("notify", "deliveries", env=env)
    assert "risk.limit_breach" in shown.stdout and "sent" in shown.stdout


def test_slack_and_sms_channels_post_to_their_urls(db: tradedb.Database, receiver: Receiver) -> None:
    db.notifications.add_channel("risk", "slack", "slack", secret=receiver.url)  # the secret is the webhook URL
    db.notifications.add_channel(
        "risk", "pager", "sms", settings={"url": receiver.url, "to": "+14155550123"}, secret="gateway-token"
    )
    breach(db)
    report = db.notifications.dispatch(retry=FAST)
    assert (report.enqueued, report.sent) == (2, 2)
    bodies = {tuple(sorted(json.loads(body))): (headers, json.loads(body)) for _, headers, body in receiver.requests}
    slack_headers, slack = bodies[("text",)]
    assert (
        slack["text"].startswith("*[tradedb] high: risk.limit_breach on N-1*\n")
        and "Authorization" not in slack_headers
    )
    sms_headers, sms = bodies[("message", "to")]
    assert sms["to"] == "+14155550123" and sms_headers["Authorization"] == "Bearer gateway-token"
    assert "max_drawdown" in sms["message"]

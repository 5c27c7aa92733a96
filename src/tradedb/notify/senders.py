"""Sending one notification over a channel: webhook, Slack and SMS by HTTP POST, email by SMTP (blocking I/O).

Errors are described without URLs (a Slack URL is its credential) and never with a secret; a failed send raises
``NotificationError``, which the dispatcher records and retries.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import ssl
import urllib.error
import urllib.request
from email.message import EmailMessage
from typing import Any

from tradedb.errors import NotificationError as SendError

TIMEOUT = 10.0


def _post(url: str, body: dict[str, Any], headers: dict[str, str]) -> None:
    data = json.dumps(body, default=str).encode()
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        raise SendError(f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise SendError(f"cannot reach the receiver: {exc.reason}") from None
    except (TimeoutError, OSError) as exc:
        raise SendError(f"cannot reach the receiver: {type(exc).__name__}: {exc}") from None


def send(channel: str, settings: dict[str, Any], secret: str | None, notice: dict[str, Any]) -> None:
    """Send ``notice`` (event_key, subject, message, payload, delivery_id, attempt) over one channel."""
    if channel == "webhook":
        body = {**notice["payload"], "subject": notice["subject"], "message": notice["message"]}
        headers = {
            "Idempotency-Key": f"{notice['event_key']}/{notice['config_id']}",
            "X-Tradedb-Event": notice["payload"]["type"],
            "X-Tradedb-Attempt": str(notice["attempt"]),
        }
        if secret:
            raw = json.dumps(body, default=str).encode()
            headers["X-Tradedb-Signature"] = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
        _post(settings["url"], body, headers)
    elif channel == "slack":
        assert secret is not None
        _post(secret, {"text": f"*{notice['subject']}*\n{notice['message']}"}, {})
    elif channel == "sms":
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        _post(settings["url"], {"to": settings["to"], "message": f"{notice['subject']}: {notice['message']}"}, headers)
    else:
        _email(settings, secret, notice)


def _email(settings: dict[str, Any], secret: str | None, notice: dict[str, Any]) -> None:
    message = EmailMessage()
    message["Subject"] = notice["subject"]
    message["From"] = settings["from"]
    message["To"] = ", ".join(settings["to"])
    message["Message-ID"] = f"<{notice['event_key'].replace(':', '.')}.{notice['config_id']}@tradedb>"
    message.set_content(notice["message"])
    try:
        with smtplib.SMTP(settings["host"], settings["port"], timeout=TIMEOUT) as smtp:
            if settings.get("starttls"):
                smtp.starttls(context=ssl.create_default_context())
            if settings.get("username") and secret:
                smtp.login(settings["username"], secret)
            smtp.send_message(message)
    except smtplib.SMTPException as exc:
        raise SendError(f"SMTP: {type(exc).__name__}: {exc}") from None
    except OSError as exc:
        raise SendError(f"cannot reach the SMTP server: {type(exc).__name__}: {exc}") from None

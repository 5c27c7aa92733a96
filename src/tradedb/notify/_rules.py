"""Notifications without I/O: channel validation, which events a channel takes, what it says, and the backoff."""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tradedb.errors import ValidationError
from tradedb.schema.names import CHANNELS, SEVERITIES

DEFAULT_EVENTS = ("risk.*",)
DEFAULT_MIN_SEVERITY = "high"
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
_PHONE = re.compile(r"\+[1-9][0-9]{6,14}")  # E.164
_NAME = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")


def check_name(value: Any, what: str) -> str:
    """Return an owner or channel name (letters, digits, ``_ . : -``), or raise ValidationError."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValidationError(f"{what} must be 1 to 64 letters, digits or _ . : - ; got {value!r}")
    return value


def check_url(value: Any, what: str) -> str:
    """Return an http(s) URL with a host, or raise ValidationError (never echoing it: it may hold a token)."""
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(f"{what} must be an http:// or https:// URL with a host")
    return str(value)


def _email(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _EMAIL.fullmatch(value):
        raise ValidationError(f"{what} must be an email address, got {value!r}")
    return value


def check_channel(channel: Any, settings: Mapping[str, Any] | None, secret: Any) -> dict[str, Any]:
    """Validate a channel's settings (and whether it needs a secret); return the settings to store."""
    if channel not in CHANNELS:
        raise ValidationError(f"channel must be one of {', '.join(CHANNELS)}; got {channel!r}")
    if settings is not None and not isinstance(settings, Mapping):
        raise ValidationError("settings must be a mapping")
    given = dict(settings or {})
    if secret is not None and (not isinstance(secret, str) or not secret):
        raise ValidationError("secret must be a non-empty string")
    events = given.get("events", list(DEFAULT_EVENTS))
    if not isinstance(events, list) or not events or not all(isinstance(e, str) and e for e in events):
        raise ValidationError("settings.events must be a non-empty list of event types or patterns (risk.*)")
    severity = given.get("min_severity", DEFAULT_MIN_SEVERITY)
    if severity not in SEVERITIES:
        raise ValidationError(f"settings.min_severity must be one of {', '.join(SEVERITIES)}; got {severity!r}")
    checked: dict[str, Any] = {"events": events, "min_severity": severity}
    if channel == "webhook":
        checked["url"] = check_url(given.get("url"), "settings.url")
    elif channel == "sms":
        checked["url"] = check_url(given.get("url"), "settings.url (the SMS gateway)")
        if not isinstance(given.get("to"), str) or not _PHONE.fullmatch(given["to"]):
            raise ValidationError(
                f"settings.to must be a phone number in E.164 form (+14155550123), got {given.get('to')!r}"
            )
        checked["to"] = given["to"]
    elif channel == "slack":
        if secret is None:
            raise ValidationError("a slack channel's secret is its incoming-webhook URL")
        check_url(secret, "the slack webhook URL (the secret)")
    else:
        host, port = given.get("host"), given.get("port", 25)
        if not isinstance(host, str) or not host:
            raise ValidationError("settings.host must name the SMTP server")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ValidationError(f"settings.port must be a TCP port, got {port!r}")
        recipients = given.get("to")
        if isinstance(recipients, str):
            recipients = [recipients]
        if not isinstance(recipients, list) or not recipients:
            raise ValidationError("settings.to must list at least one email address")
        checked |= {
            "host": host,
            "port": port,
            "from": _email(given.get("from"), "settings.from"),
            "to": [_email(r, "settings.to") for r in recipients],
            "starttls": bool(given.get("starttls", False)),
        }
        if given.get("username") is not None:
            checked["username"] = str(given["username"])
        if secret is not None and "username" not in checked:
            raise ValidationError("an email channel's secret is the SMTP password: give settings.username too")
    unknown = sorted(set(given) - set(checked) - {"username"})
    if unknown:
        raise ValidationError(f"unknown settings for a {channel} channel: {', '.join(unknown)}")
    return checked


def severity_of(payload: Mapping[str, Any]) -> str:
    """An event's severity (risk events carry one; others count as high)."""
    value = payload.get("severity")
    return value if value in SEVERITIES else "high"


def wants(settings: Mapping[str, Any], event_type: str, payload: Mapping[str, Any]) -> bool:
    """Whether a channel with ``settings`` takes an event."""
    patterns = settings.get("events", DEFAULT_EVENTS)
    if not any(fnmatch.fnmatchcase(event_type, p) for p in patterns):
        return False
    floor = SEVERITIES.index(settings.get("min_severity", DEFAULT_MIN_SEVERITY))
    return SEVERITIES.index(severity_of(payload)) >= floor


@dataclass(frozen=True)
class Notice:
    """What a channel is told about an event."""

    event_key: str
    event_type: str
    subject: str
    message: str
    payload: dict[str, Any]


def notice(stream: str, aggregate_id: str, seq: int, event_type: str, payload: Mapping[str, Any]) -> Notice:
    """The subject and message of an event (its ``message`` when it has one, else its payload as JSON)."""
    severity = severity_of(payload)
    subject = f"[tradedb] {severity}: {event_type} on {aggregate_id}"
    text = payload.get("message")
    message = text if isinstance(text, str) and text else json.dumps(dict(payload), sort_keys=True, default=str)
    body = {"stream": stream, "aggregate_id": aggregate_id, "seq": seq, "type": event_type, "payload": dict(payload)}
    return Notice(f"{stream}:{aggregate_id}:{seq}", event_type, subject, message, body)


@dataclass(frozen=True)
class Retry:
    """How failed deliveries are retried: up to ``max_attempts`` in all, waiting ``base_delay`` seconds after the
    first failure and twice as long after each next one, at most ``max_delay``."""

    max_attempts: int = 5
    base_delay: float = 2.0
    max_delay: float = 300.0

    def checked(self) -> Retry:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ValidationError(f"max_attempts must be a positive integer, got {self.max_attempts!r}")
        if not 0 <= self.base_delay <= self.max_delay:
            raise ValidationError("base_delay must be >= 0 and at most max_delay")
        return self

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based)."""
        return float(min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))

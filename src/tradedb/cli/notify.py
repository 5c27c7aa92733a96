"""``tradedb notify ...``: notification channels, the dispatcher from events to them, and what was sent."""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated, Any

import typer
from rich.table import Table

from tradedb.cli._common import _cell, _database, app, out
from tradedb.errors import ValidationError
from tradedb.notify import Retry

notify_app = typer.Typer(
    help="Notification channels (webhook, Slack, SMS, email) and the dispatcher from events to them.",
    no_args_is_help=True,
)
app.add_typer(notify_app, name="notify")


def _settings(pairs: list[str]) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValidationError(f"--setting takes KEY=VALUE, got {pair!r}")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw  # plain text
        if key in settings:  # a repeated key collects a list (several email recipients)
            settings[key] = [*(settings[key] if isinstance(settings[key], list) else [settings[key]]), value]
        else:
            settings[key] = value
    return settings


@notify_app.command("add")
def add(
    owner: str,
    name: str,
    channel: Annotated[str, typer.Argument(help="webhook, slack, sms or email.")],
    setting: Annotated[
        list[str] | None,
        typer.Option(
            "--setting",
            help="KEY=VALUE (url, to, host, port, from, starttls, username, events, min_severity); repeat a key "
            "for a list.",
        ),
    ] = None,
    secret_stdin: Annotated[
        bool, typer.Option("--secret-stdin", help="Read the channel's secret from standard input (never argv).")
    ] = False,
) -> None:
    """Add a channel; its secret is stored encrypted (TRADEDB_ENCRYPTION_KEYS)."""
    secret = sys.stdin.readline().strip() if secret_stdin else None
    with _database() as db:
        row = db.notifications.add_channel(owner, name, channel, settings=_settings(setting or []), secret=secret)
    out.print(f"channel {row['config_id']}: {row['owner']}/{row['name']} ({row['channel']})")


@notify_app.command("channels")
def channels(
    owner: Annotated[str | None, typer.Option(help="Only this owner's channels.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Include disabled channels.")] = False,
) -> None:
    """List channels (never their secrets)."""
    with _database() as db:
        rows = db.notifications.channels(owner, include_inactive=all_)
    table = Table("id", "owner", "name", "channel", "events", "min severity", "secret", "active", title="channels")
    for r in rows:
        settings = r["settings"]
        table.add_row(
            str(r["config_id"]),
            r["owner"],
            r["name"],
            r["channel"],
            ", ".join(settings.get("events", [])),
            settings.get("min_severity", ""),
            "yes" if r["has_secret"] else "no",
            "yes" if r["is_active"] else "no",
        )
    out.print(table)


@notify_app.command("disable")
def disable(config_id: int) -> None:
    """Stop sending to a channel."""
    with _database() as db:
        db.notifications.disable_channel(config_id)
    out.print(f"channel {config_id} disabled")


@notify_app.command("enable")
def enable(config_id: int) -> None:
    """Send to a disabled channel again."""
    with _database() as db:
        db.notifications.enable_channel(config_id)
    out.print(f"channel {config_id} enabled")


@notify_app.command("dispatch")
def dispatch(
    streams: Annotated[str, typer.Option(help="Comma-separated streams whose events are notified.")] = "risk",
    wait: Annotated[bool, typer.Option("--wait", help="Wait out retries until every delivery is done.")] = False,
    follow: Annotated[bool, typer.Option("--follow", help="Keep dispatching every --interval seconds.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between rounds with --follow.")] = 1.0,
    max_attempts: Annotated[int, typer.Option(help="Attempts per delivery before it fails.")] = 5,
    base_delay: Annotated[float, typer.Option(help="Seconds before the first retry (doubling).")] = 2.0,
) -> None:
    """Turn new events into deliveries and attempt the due ones (once, or until stopped with --follow)."""
    retry = Retry(max_attempts=max_attempts, base_delay=base_delay)
    with _database() as db:
        while True:
            report = db.notifications.dispatch(streams.split(","), retry=retry, wait=wait)
            out.print(
                f"read {report.events} event(s), created {report.enqueued} deliver(ies): sent {report.sent}, "
                f"retrying {report.retrying}, failed {report.failed}"
            )
            if not follow:
                return
            time.sleep(interval)


@notify_app.command("deliveries")
def deliveries(
    status: Annotated[str | None, typer.Option(help="pending, sent or failed.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
) -> None:
    """List deliveries: which event went to which channel, how many attempts, the last error."""
    with _database() as db:
        rows = db.notifications.deliveries(status=status, limit=limit)
    table = Table("id", "channel", "event", "type", "status", "attempts", "last error", "sent", title="deliveries")
    for r in rows:
        table.add_row(
            str(r["delivery_id"]),
            str(r["config_id"]),
            r["event_key"],
            r["event_type"],
            r["status"],
            str(r["attempts"]),
            r["last_error"] or "",
            _cell(r["sent_at"]),
        )
    out.print(table)

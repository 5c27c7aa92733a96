"""CLI commands for events: ``tradedb events relay|tail|status|dead-letters``."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.table import Table

from tradedb.cli._common import _database, _print_json, app, err, out

events_app = typer.Typer(
    help="Events to other services: the relay, what flows, where consumers are.", no_args_is_help=True
)
app.add_typer(events_app, name="events")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@events_app.command("relay")
def relay(
    batch: Annotated[int, typer.Option(help="Events per claim.")] = 1000,
    depth: Annotated[int, typer.Option(help="Claims per transaction (Redis takes one while the next is claimed).")] = 2,
    poll: Annotated[float, typer.Option(help="Seconds between polls when no notification comes.")] = 1.0,
    until_idle: Annotated[bool, typer.Option("--until-idle", help="Stop when the outbox is drained.")] = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not keep the Redis quote/position cache.")] = False,
    heartbeat: Annotated[
        Path | None, typer.Option(help="Touch this file on every turn (tradedb health --live --heartbeat).")
    ] = None,
) -> None:
    """Publish the outbox (to Redis Streams, or into the PostgreSQL streams without Redis) until stopped.

    SIGTERM or Ctrl-C stops it after the batch in hand; several relays may run at once."""
    with _database() as db:
        worker = db.events.relay(batch=batch, depth=depth, poll=poll, cache=not no_cache)
        worker.heartbeat = heartbeat

        def stop(signum: int, frame: FrameType | None) -> None:
            worker.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        err.print(f"relay: publishing to {db.events.backend}", highlight=False)
        stats = worker.run(until_idle=until_idle)
    err.print(
        f"relay: delivered {stats.delivered} events in {stats.batches} batches "
        f"({stats.cached} cache entries, {stats.failures} failed attempts)",
        highlight=False,
    )


@events_app.command("tail")
def tail(
    stream: Annotated[str | None, typer.Option(help="Only this stream (order, position, market_data, ...).")] = None,
    limit: Annotated[int, typer.Option(help="How many of the newest events.")] = 20,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new events.")] = False,
) -> None:
    """The newest events of the outbox, one JSON object per line (delivered or not)."""
    with _database() as db:
        after = 0
        while True:
            events = db.events.tail(stream, limit=limit, after=after)
            for event in events:
                out.print(json.dumps(event.as_dict(), default=str), highlight=False, soft_wrap=True)
                after = max(after, event.event_id)
            if not follow:
                return
            limit = 1000
            time.sleep(0.5)


@events_app.command("status")
def status(as_json: JsonOpt = False) -> None:
    """Undelivered events and the oldest one's age, stream lengths, consumer groups and their lag, dead letters."""
    with _database() as db:
        report = db.events.status()
    if as_json:
        _print_json(report)
        return
    age = report["oldest_undelivered_seconds"]
    out.print(
        f"backend: {report['backend']}" + (f" ({report['redis']})" if report["redis"] else ""),
        highlight=False,
    )
    out.print(
        f"undelivered: {report['undelivered']}" + (f", oldest {age:.1f} s old" if age is not None else ""),
        highlight=False,
    )
    streams = Table("stream", "length")
    for s in report["streams"]:
        streams.add_row(s["stream"], str(s["length"]))
    out.print(streams)
    groups = Table("group", "stream", "lag", "pending", "dead letters")
    for g in report["groups"]:
        groups.add_row(
            g["group"], g["stream"], str(g["lag"]), str(g["pending"]), str(report["dead_letters"].get(g["group"], 0))
        )
    out.print(groups)


@events_app.command("dead-letters")
def dead_letters(
    group: Annotated[str, typer.Argument(help="The consumer group.")],
    limit: Annotated[int, typer.Option(help="How many, oldest first.")] = 100,
) -> None:
    """What a consumer group gave up on, one JSON object per line."""
    with _database() as db:
        for letter in db.events.dead_letters(group, limit=limit):
            out.print(json.dumps(letter, default=str), highlight=False, soft_wrap=True)

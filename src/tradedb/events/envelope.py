"""Events as consumers see them, and their names in Redis (no I/O).

A Redis stream entry carries an event's fields as text; a PostgreSQL stream is the outbox itself, read by
position. Either way a consumer gets the same :class:`Event`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tradedb.db.outbox_rules import NAME, STREAMS
from tradedb.errors import UnknownStream, ValidationError

KEY_PREFIX = "tradedb:events:"
DEAD_PREFIX = "tradedb:dead:"
QUOTE_PREFIX = "tradedb:quote:"
POSITIONS_PREFIX = "tradedb:positions:"
GROUP = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")
#: The fields of a Redis stream entry, in the order the relay writes them.
FIELDS = ("event_id", "aggregate_id", "seq", "type", "payload", "occurred_at")


@dataclass(frozen=True)
class Event:
    """One delivered event. ``seq`` counts the aggregate's events from 1: a consumer that remembers the last
    ``seq`` it saw per aggregate sees gaps and repeats. ``position`` is where it sits in its stream (a Redis entry
    id, or the PostgreSQL stream position as text)."""

    event_id: int
    stream: str
    aggregate_id: str
    seq: int
    type: str
    payload: dict[str, Any]
    occurred_at: datetime
    position: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "stream": self.stream,
            "aggregate_id": self.aggregate_id,
            "seq": self.seq,
            "type": self.type,
            "payload": self.payload,
            "occurred_at": self.occurred_at.isoformat(),
            "position": self.position,
        }


def stream_key(stream: str) -> str:
    """The Redis key of a stream: ``tradedb:events:order``."""
    return KEY_PREFIX + stream


def dead_key(group: str) -> str:
    """The Redis key of a consumer group's dead-letter stream."""
    return DEAD_PREFIX + group


def redis_fields(row: Mapping[str, Any]) -> dict[Any, Any]:
    """The fields (all text) of the Redis stream entry of an outbox row (whose payload the claim read as text)."""
    return {
        "event_id": str(row["event_id"]),
        "aggregate_id": row["aggregate_id"],
        "seq": str(row["seq"]),
        "type": row["event_type"],
        "payload": row["payload"],
        "occurred_at": row["created_at"].isoformat(),
    }


def from_redis(key: str, entry_id: str, fields: Mapping[str, str]) -> Event:
    """The event of a Redis stream entry; an entry that is not a tradedb event raises ValidationError."""
    try:
        return Event(
            event_id=int(fields["event_id"]),
            stream=key.removeprefix(KEY_PREFIX),
            aggregate_id=fields["aggregate_id"],
            seq=int(fields["seq"]),
            type=fields["type"],
            payload=json.loads(fields["payload"]),
            occurred_at=datetime.fromisoformat(fields["occurred_at"]),
            position=entry_id,
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise ValidationError(f"stream entry {entry_id} of {key} is not a tradedb event: {exc!r}") from None


def from_row(row: Mapping[str, Any]) -> Event:
    """The event of an outbox row (position: its PostgreSQL stream position, empty when it has none)."""
    return Event(
        event_id=row["event_id"],
        stream=row["aggregate_type"],
        aggregate_id=row["aggregate_id"],
        seq=row["seq"],
        type=row["event_type"],
        payload=row["payload"],
        occurred_at=row["created_at"],
        position="" if row["stream_position"] is None else str(row["stream_position"]),
    )


def check_group(group: str) -> str:
    if not isinstance(group, str) or not GROUP.match(group):
        raise ValidationError(f"group must be 1 to 100 letters, digits, '_', '.' or '-'; got {group!r}")
    return group


def check_streams(streams: Sequence[str] | str | None, known: Iterable[str]) -> list[str]:
    """The streams asked for (default: every known one); an unknown name raises UnknownStream."""
    known = sorted(set(known) | set(STREAMS))
    if streams is None:
        return known
    if isinstance(streams, str):
        streams = [streams]
    wanted = list(dict.fromkeys(streams))
    if not wanted:
        raise ValidationError("streams is empty: name at least one, or pass None for all")
    for name in wanted:
        if not isinstance(name, str) or not NAME.match(name):
            raise ValidationError(f"stream names are lowercase letters, digits and '_'; got {name!r}")
        if name not in known:
            raise UnknownStream(f"unknown stream {name!r}; the streams are {', '.join(known)}")
    return wanted


def check_count(value: Any, what: str, high: int | None = None) -> int:
    """``value`` when it is an integer from 1 (to ``high``); else a ValidationError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (high is not None and value > high):
        wanted = "a positive integer" if high is None else f"an integer from 1 to {high}"
        raise ValidationError(f"{what} must be {wanted}; got {value!r}")
    return value


def check_positive(value: Any, what: str, *, allow_zero: bool = False) -> Any:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ValidationError(f"{what} must be a {'non-negative' if allow_zero else 'positive'} number; got {value!r}")
    return value

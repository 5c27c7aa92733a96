"""What an event written to the transactional outbox is, checked before it is written (no I/O).

An event belongs to a stream (its aggregate type: ``order``, ``position``, ``market_data``...) and an aggregate
(``order`` 42); ``shared.emit_events`` gives it the aggregate's next sequence number in the writer's transaction,
``shared.emit_versioned`` takes the version of the row it is about (orders, positions).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from tradedb.errors import ValidationError

NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
#: A payload larger than this is refused: events say what changed, they do not carry the data.
MAX_PAYLOAD_BYTES = 64 * 1024

#: The streams tradedb's own writers emit to (``db.events.emit`` may not: nobody forges an order's events).
STREAMS = ("order", "position", "risk", "market_data", "strategy_instance", "backtest")
#: Of those, the streams whose sequence numbers are the version of the row the event is about (bumped under the
#: row's lock by every change, each of which emits): no counter row to write on the fill path.
VERSIONED = ("order", "position")

EMIT = "SELECT shared.emit_events(%s::jsonb)"
EMIT_VERSIONED = "SELECT shared.emit_versioned(%s::jsonb)"


@dataclass(frozen=True)
class NewEvent:
    """An event to write: ``payload`` is its JSON text; ``seq`` given for VERSIONED streams, else counted."""

    stream: str
    aggregate_id: str
    type: str
    payload: str
    seq: int | None = None


def numeric_text(value: Decimal) -> str:
    """A Decimal as PostgreSQL prints a numeric: plain notation, its scale kept, no negative zero (``str`` would
    print ``0E-10`` where SQL writes ``0.0000000000``)."""
    return format(value.copy_abs() if value.is_zero() else value, "f")


def _plain(value: Any) -> Any:
    """JSON has no Decimal, datetime or UUID: money stays exact as text, times as ISO 8601."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise TypeError(f"non-finite decimal {value}")
        return numeric_text(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def payload_text(payload: Mapping[str, Any]) -> str:
    """The JSON text of a payload; a payload that is not a JSON object of finite values raises ValidationError."""
    if not isinstance(payload, Mapping):
        raise ValidationError(f"an event payload is a mapping (a JSON object), not {type(payload).__name__}")
    try:
        text = json.dumps(payload, default=_plain, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"event payload is not JSON: {exc}") from None
    if len(text) > MAX_PAYLOAD_BYTES:
        raise ValidationError(f"event payload is {len(text)} bytes; at most {MAX_PAYLOAD_BYTES}")
    return text


def new_event(
    stream: str, aggregate_id: Any, type: str, payload: Mapping[str, Any], *, seq: int | None = None
) -> NewEvent:
    """Check an event's names and payload and return it ready to write."""
    if not isinstance(stream, str) or not NAME.match(stream):
        raise ValidationError(f"stream must be lowercase letters, digits and '_' (at most 63); got {stream!r}")
    if isinstance(aggregate_id, bool) or not isinstance(aggregate_id, str | int) or str(aggregate_id) == "":
        raise ValidationError(f"aggregate_id must be a non-empty string or an integer; got {aggregate_id!r}")
    if not isinstance(type, str) or not EVENT_TYPE.match(type) or len(type) > 100:
        raise ValidationError(f"event type must look like 'order.created'; got {type!r}")
    if (seq is None) == (stream in VERSIONED):
        raise ValidationError(f"events of {stream!r} {'need' if seq is None else 'take no'} a version as seq")
    return NewEvent(stream, str(aggregate_id), type, payload_text(payload), seq)


def emit_sql(events: list[NewEvent]) -> str:
    """EMIT_VERSIONED when every event brings its seq, else EMIT (which counts them)."""
    if all(e.seq is not None for e in events):
        return EMIT_VERSIONED
    if any(e.seq is not None for e in events):
        raise ValidationError("emit versioned and counted events in separate calls")
    return EMIT


def emit_params(events: list[NewEvent]) -> tuple[str]:
    """The one parameter of ``emit_sql``: the events as a JSON array of [stream, aggregate_id, type, payload,
    seq or null] (the payloads are JSON text already)."""
    items = (
        f"[{json.dumps(e.stream)},{json.dumps(e.aggregate_id)},{json.dumps(e.type)},{e.payload},"
        f"{'null' if e.seq is None else e.seq}]"
        for e in events
    )
    return ("[" + ",".join(items) + "]",)

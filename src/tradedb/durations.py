"""The "30d" notation of durations (retention, gaps, windows): a whole number and a unit s, m, h, d or w."""

from __future__ import annotations

import re
from datetime import timedelta

from tradedb.errors import ValidationError

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")


def duration(count: str, unit: str) -> timedelta:
    """``count`` of ``unit`` (s, m, h, d or w) as a timedelta."""
    return timedelta(**{_UNITS[unit]: int(count)})


def parse_duration(text: str, *, units: str = "smhdw", what: str = "duration") -> timedelta | None:
    """Parse ``"30d"`` with one of ``units``; return None when ``text`` does not have that form."""
    match = _DURATION.match(text)
    if not match or match.group(2) not in units:
        return None
    return duration(match.group(1), match.group(2))


def parse_retention_entries(text: str) -> dict[str, timedelta]:
    """Parse ``"quotes=30d,market_trades=12w"`` (units h, d, w) into {name: positive span}; names not checked."""
    out: dict[str, timedelta] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, span = part.partition("=")
        value = parse_duration(span, units="hdw")
        if not sep or value is None:
            raise ValidationError(f"retention entry {part!r}: expected table=<number><h|d|w>, e.g. quotes=30d")
        if value <= timedelta(0):
            raise ValidationError(f"retention of {name.strip()} must be positive")
        out[name.strip()] = value
    return out


_SPAN = re.compile(r"^\s*(\d+)\s*(s|sec|m|min|h|d|w|ms|us)\s*$")
_SPAN_UNITS = {"sec": "s", "min": "m"}


def parse_span(text: object, *, what: str) -> timedelta:
    """Parse a positive span such as ``"5min"``, ``"5m"``, ``"30s"``, ``"1h"`` or ``"250ms"``; raise
    ValidationError naming ``what`` otherwise."""
    match = _SPAN.match(text) if isinstance(text, str) else None
    if match is None or int(match.group(1)) <= 0:
        raise ValidationError(f"{what} {text!r} is not a positive span such as 30s, 5min, 1h or 250ms")
    count, unit = match.group(1), _SPAN_UNITS.get(match.group(2), match.group(2))
    if unit == "ms":
        return timedelta(milliseconds=int(count))
    if unit == "us":
        return timedelta(microseconds=int(count))
    return duration(count, unit)

"""Validation of values every feature takes: numbers, ids, choices, times (input errors are ValidationError)."""

from __future__ import annotations

import math
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from tradedb.errors import ValidationError


def to_decimal(value: Any, name: str, *, positive: bool = False, non_negative: bool = False) -> Decimal:
    """Convert ``value`` to a finite Decimal (floats via their shortest repr), or raise ValidationError."""
    if isinstance(value, bool) or value is None:
        raise ValidationError(f"{name} must be a number, got {value!r}")
    try:
        if isinstance(value, float):
            if not math.isfinite(value):
                raise ValidationError(f"{name} must be finite, got {value!r}")
            number = Decimal(repr(value))
        else:
            number = Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        raise ValidationError(f"{name} must be a number, got {value!r}") from None
    if not number.is_finite():
        raise ValidationError(f"{name} must be finite, got {value!r}")
    if positive and number <= 0:
        raise ValidationError(f"{name} must be > 0, got {number}")
    if non_negative and number < 0:
        raise ValidationError(f"{name} must be >= 0, got {number}")
    return number


def one_of(value: Any, name: str, allowed: tuple[str, ...]) -> str:
    """Return ``value`` when it is one of ``allowed``, else raise ValidationError."""
    if not isinstance(value, str) or value not in allowed:
        raise ValidationError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def check_id(value: Any, name: str) -> int:
    """Return a positive integer id, or raise ValidationError."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValidationError(f"{name} must be a positive integer, got {value!r}")
    return value


def check_time(value: Any, name: str) -> datetime:
    """Return a timezone-aware datetime, or raise ValidationError."""
    if not isinstance(value, datetime):
        raise ValidationError(f"{name} must be a datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(f"{name} must carry a time zone (naive datetimes are ambiguous): {value!r}")
    return value


def check_day(value: Any, what: str) -> date | None:
    """Return a date (or None) from a date or an ISO ``YYYY-MM-DD`` string, or raise ValidationError."""
    if value is None or (isinstance(value, date) and not isinstance(value, datetime)):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValidationError(f"{what} must be a date (YYYY-MM-DD), got {value!r}")

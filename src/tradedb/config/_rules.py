"""Platform settings without I/O: the known keys of ``shared.system_config``, their types and validation."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tradedb.db.inputs import to_decimal
from tradedb.errors import ValidationError

#: The schemas whose tables refuse writes in maintenance mode (migration 0017 guards their tables; verify checks).
GUARDED_SCHEMAS = ("execution", "risk_management", "strategy_engine", "data_ingestion", "analytics", "notification")


def _boolean(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "on", "yes", "1", "false", "off", "no", "0"}:
        return value.strip().lower() in {"true", "on", "yes", "1"}
    raise ValidationError(f"{key} is true or false, got {value!r}")


def _positive_amount_or_none(value: Any, key: str) -> Decimal | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in {"none", "null", "off"}):
        return None
    return to_decimal(value, key, positive=True)


def _text(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{key} is non-empty text, got {value!r}")
    return value


@dataclass(frozen=True)
class Key:
    """A known setting: how its values are checked, and what it does."""

    parse: Callable[[Any, str], Any]
    description: str
    read_only: bool = False


KNOWN: dict[str, Key] = {
    "maintenance_mode": Key(
        _boolean, "When true, the trading services' tables refuse writes (reads go on); shared and logging do not"
    ),
    "default_risk_limit": Key(
        _positive_amount_or_none,
        "max_position_notional (account currency) given to every new account; null: none",
    ),
    "system_version": Key(_text, "tradedb version that first set up this database", read_only=True),
}


def check_key(key: Any) -> str:
    """Return a plausible setting name, or raise ValidationError."""
    if not isinstance(key, str) or not key or len(key) > 128 or key != key.strip():
        raise ValidationError(f"a setting's key is 1 to 128 characters without surrounding spaces, got {key!r}")
    return key


def parse_value(key: str, value: Any) -> Any:
    """The value a known key holds (typed), or ``value`` itself when it is JSON (keys tradedb does not know)."""
    if key in KNOWN:
        return KNOWN[key].parse(value, key)
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        raise ValidationError(
            f"the value of {key} must be JSON (a number, text, true/false, a list or a map)"
        ) from None
    return value


def to_json(value: Any) -> str:
    """A typed value as JSON text; amounts as exact JSON numbers (their digits, never a float's)."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return json.dumps(value)


def from_json(key: str, text: str | None) -> Any:
    """A stored value (JSON text) as its key's type; numbers are exact (Decimal) unless integral."""
    if text is None:
        return None
    value = json.loads(text, parse_float=Decimal)
    if key in KNOWN and value is not None:
        return KNOWN[key].parse(value, key)
    return value

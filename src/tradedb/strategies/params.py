"""Typed strategy parameters: specifications, and validation that says what is wrong and what would be right.

``validate(specs, values)`` checks every parameter and returns, per parameter, whether it is valid, a message, the
normalized value (``5`` is a valid float and becomes ``5.0``; ``"7"`` a valid int) and a suggested value: the
value clamped into [min, max] and onto the step grid, the nearest allowed value, or the default of a missing one.
Unknown names are reported too (with the nearest known name as the suggestion).
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, get_args

from tradedb.errors import ParameterError, ValidationError

ParamType = Literal["int", "float", "decimal", "bool", "str", "enum", "date", "json"]
PARAM_TYPES: tuple[str, ...] = get_args(ParamType)
#: The stored name of each type (strategy_parameters.param_type says "string" for str).
STORED_TYPE = {"str": "string"}
_NUMERIC = ("int", "float", "decimal")
_TRUE = {"true", "t", "yes", "y", "1", "on"}
_FALSE = {"false", "f", "no", "n", "0", "off"}


@dataclass(frozen=True)
class Param:
    """The specification of one parameter. ``choices`` are the allowed values (required for ``enum``, allowed for
    any type); ``min``/``max``/``step`` apply to numeric types; ``display_order`` defaults to the position in the
    list given to ``register``."""

    name: str
    type: ParamType
    required: bool = False
    default: Any = None
    min: Any = None
    max: Any = None
    step: Any = None
    choices: Sequence[Any] | None = None
    optimizable: bool = False
    display_order: int | None = None
    description: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValidationError(f"parameter name {self.name!r} must be an identifier (letters, digits, _)")
        if self.type not in PARAM_TYPES:
            raise ValidationError(f"parameter {self.name}: type {self.type!r} is not one of {', '.join(PARAM_TYPES)}")
        bounds = {"min": self.min, "max": self.max, "step": self.step}
        for key, bound in bounds.items():
            if bound is None:
                continue
            if self.type not in _NUMERIC:
                raise ValidationError(f"parameter {self.name}: {key} applies to int, float and decimal parameters only")
            number = _to_decimal(bound)
            if number is None:
                raise ValidationError(f"parameter {self.name}: {key} {bound!r} is not a finite number")
            object.__setattr__(self, key, _coerce_bound(self.type, number))
        if self.step is not None and self.step <= 0:
            raise ValidationError(f"parameter {self.name}: step must be positive")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValidationError(f"parameter {self.name}: min {self.min} is above max {self.max}")
        if self.type == "enum" and not self.choices:
            raise ValidationError(f"parameter {self.name}: an enum needs choices")
        if self.choices is not None:
            if not self.choices:
                raise ValidationError(f"parameter {self.name}: choices is empty")
            checked = []
            for choice in self.choices:
                ok, value, message = _normalize(self, choice, use_choices=False)
                if not ok:
                    raise ValidationError(f"parameter {self.name}: choice {choice!r} {message}")
                checked.append(value)
            object.__setattr__(self, "choices", tuple(checked))
        if self.default is not None:
            check = check_value(self, self.default)
            if not check.valid:
                raise ValidationError(f"parameter {self.name}: default {self.default!r} {check.message}")
            object.__setattr__(self, "default", check.value)

    def to_json(self, value: Any) -> Any:
        """``value`` (normalized) as JSON: decimals as strings (exact), dates as ISO text."""
        return _json_value(self.type, value)


@dataclass(frozen=True)
class ParamCheck:
    """The outcome for one parameter."""

    name: str
    valid: bool
    message: str | None
    value: Any
    suggested: Any


@dataclass(frozen=True)
class Validation:
    """The outcome for a whole parameter set (``checks`` in display order, unknown names last)."""

    checks: dict[str, ParamCheck] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return all(c.valid for c in self.checks.values())

    @property
    def errors(self) -> dict[str, str]:
        return {name: c.message or "invalid" for name, c in self.checks.items() if not c.valid}

    def values(self) -> dict[str, Any]:
        """The normalized values (missing optional parameters take their default; None defaults are left out)."""
        return {n: c.value for n, c in self.checks.items() if c.valid and c.value is not None}

    def raise_for_errors(self, what: str) -> None:
        if not self.valid:
            listed = "; ".join(f"{name}: {message}" for name, message in self.errors.items())
            raise ParameterError(f"invalid parameters for {what}: {listed}", self.checks)


def ordered(specs: Iterable[Param]) -> list[Param]:
    """Specs in display order (the given order where none is set); names must be unique."""
    result: list[Param] = []
    seen: set[str] = set()
    for position, spec in enumerate(specs):
        if not isinstance(spec, Param):
            raise ValidationError(f"parameters must be Param specifications, got {type(spec).__name__}")
        if spec.name in seen:
            raise ValidationError(f"parameter {spec.name} is specified twice")
        seen.add(spec.name)
        order = position if spec.display_order is None else spec.display_order
        result.append(Param(**{**spec.__dict__, "display_order": order}))
    return sorted(result, key=lambda s: (s.display_order or 0, s.name))


def validate(specs: Sequence[Param], values: Mapping[str, Any] | None) -> Validation:
    """Check ``values`` against ``specs``; see the module docstring."""
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise ValidationError(f"parameters must be a mapping of name to value, got {type(values).__name__}")
    checks: dict[str, ParamCheck] = {}
    for spec in specs:
        if spec.name in values and values[spec.name] is not None:
            checks[spec.name] = check_value(spec, values[spec.name])
        elif spec.required:
            checks[spec.name] = ParamCheck(spec.name, False, "is required", None, spec.default)
        else:
            checks[spec.name] = ParamCheck(spec.name, True, None, spec.default, spec.default)
    known = [s.name for s in specs]
    for name in values:
        if name not in checks:
            close = difflib.get_close_matches(str(name), known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            checks[str(name)] = ParamCheck(str(name), False, f"is not a parameter{hint}", None, None)
    return Validation(checks)


def check_value(spec: Param, raw: Any) -> ParamCheck:
    """Check one present value against its spec."""
    ok, value, message = _normalize(spec, raw, use_choices=True)
    if not ok:
        number = None if isinstance(raw, bool) else _to_decimal(raw)
        if spec.type == "int" and number is not None:  # a fraction: the nearest whole number on the grid
            return ParamCheck(spec.name, False, message, None, _onto_grid(spec, int(number.to_integral_value())))
        return ParamCheck(spec.name, False, message, None, _suggest_for_bad_type(spec))
    if spec.choices is not None and value not in spec.choices:
        nearest = _nearest_choice(spec, value)
        return ParamCheck(spec.name, False, f"{value!r} is not one of {list(spec.choices)!r}", None, nearest)
    if spec.type in _NUMERIC:
        suggested = _onto_grid(spec, value)
        if spec.min is not None and value < spec.min:
            return ParamCheck(spec.name, False, f"{value} is below the minimum {spec.min}", None, suggested)
        if spec.max is not None and value > spec.max:
            return ParamCheck(spec.name, False, f"{value} is above the maximum {spec.max}", None, suggested)
        if suggested != value:
            return ParamCheck(spec.name, False, f"{value} is not on the step grid (step {spec.step})", None, suggested)
    return ParamCheck(spec.name, True, None, value, value)


def from_json(spec: Param, value: Any) -> Any:
    """A stored JSON value back to the parameter's Python type."""
    if value is None:
        return None
    ok, normalized, _ = _normalize(spec, value, use_choices=False)
    return normalized if ok else value


def canonical_json(value: Any) -> str:
    """Stable JSON text (sorted keys, no spaces): the basis of run keys and content hashes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


# --- normalization ----------------------------------------------------------------------------------------------


def _normalize(spec: Param, raw: Any, *, use_choices: bool) -> tuple[bool, Any, str | None]:
    kind = spec.type
    if kind == "enum":
        # An enum's values are whatever its choices are (strings, numbers); text naming a choice exactly (as a
        # command line gives "20" for the choice 20) is that choice.
        if use_choices and spec.choices and raw not in spec.choices and isinstance(raw, str):
            return True, next((c for c in spec.choices if str(c) == raw), raw), None
        return True, raw, None
    if kind == "bool":
        if isinstance(raw, bool):
            return True, raw, None
        if isinstance(raw, int) and raw in (0, 1):
            return True, bool(raw), None
        if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
            return True, raw.strip().lower() in _TRUE, None
        return False, None, f"{raw!r} is not a boolean"
    if kind == "str":
        return (True, raw, None) if isinstance(raw, str) else (False, None, f"{raw!r} is not a string")
    if kind == "date":
        if isinstance(raw, datetime):
            if raw.time() != datetime.min.time():
                return False, None, f"{raw!r} has a time of day; a date parameter takes a date"
            return True, raw.date(), None
        if isinstance(raw, date):
            return True, raw, None
        if isinstance(raw, str):
            try:
                return True, date.fromisoformat(raw.strip()), None
            except ValueError:
                pass
        return False, None, f"{raw!r} is not a date (YYYY-MM-DD)"
    if kind == "json":
        try:
            json.dumps(raw)
        except (TypeError, ValueError):
            return False, None, f"{raw!r} is not JSON-serializable"
        return True, raw, None
    # numeric
    if isinstance(raw, bool):
        return False, None, f"{raw!r} is a boolean, not a number"
    number = _to_decimal(raw)
    if number is None:
        return False, None, f"{raw!r} is not a finite number"
    if kind == "int":
        if number != number.to_integral_value():
            return False, None, f"{raw!r} is not a whole number"
        return True, int(number), None
    if kind == "float":
        return True, float(raw) if isinstance(raw, int | float) else float(number), None
    return True, number, None


def _to_decimal(raw: Any) -> Decimal | None:
    if isinstance(raw, bool):
        return None
    try:
        if isinstance(raw, float):
            number = Decimal(repr(raw)) if math.isfinite(raw) else None
        elif isinstance(raw, int | Decimal):
            number = Decimal(raw)
        elif isinstance(raw, str):
            number = Decimal(raw.strip())
        else:
            return None
    except (InvalidOperation, ValueError):
        return None
    if number is None or not number.is_finite():
        return None
    return number


def _coerce_bound(kind: str, number: Decimal) -> Any:
    if kind == "int":
        return int(number) if number == number.to_integral_value() else float(number)
    if kind == "float":
        return float(number)
    return number


def _onto_grid(spec: Param, value: Any) -> Any:
    """``value`` clamped into [min, max] and, with a step, moved to the nearest grid point inside the range."""
    low, high, step = spec.min, spec.max, spec.step
    result = value
    if low is not None and result < low:
        result = low
    if high is not None and result > high:
        result = high
    if step is not None:
        base = low if low is not None else 0
        exact = Decimal(str(result))
        d_step, d_base = Decimal(str(step)), Decimal(str(base))
        k = ((exact - d_base) / d_step).to_integral_value()
        snapped = d_base + k * d_step
        if high is not None and snapped > Decimal(str(high)):
            snapped -= d_step
        if low is not None and snapped < Decimal(str(low)):
            snapped += d_step
        result = _coerce_bound(spec.type, snapped) if spec.type != "int" else int(snapped)
        if spec.type == "int" and snapped != snapped.to_integral_value():  # a fractional step on an int
            result = value
    if spec.type == "float":
        return float(result)
    if spec.type == "int":
        return int(result)
    return result


def _nearest_choice(spec: Param, value: Any) -> Any:
    assert spec.choices is not None
    numbers = [_to_decimal(c) for c in spec.choices]
    target = _to_decimal(value)
    if target is not None and all(n is not None for n in numbers):
        return min(spec.choices, key=lambda c: abs((_to_decimal(c) or Decimal(0)) - target))
    text = str(value).lower()
    for choice in spec.choices:
        if str(choice).lower() == text:
            return choice
    close = difflib.get_close_matches(str(value), [str(c) for c in spec.choices], n=1, cutoff=0.0)
    return next(c for c in spec.choices if str(c) == close[0]) if close else spec.choices[0]


def _suggest_for_bad_type(spec: Param) -> Any:
    if spec.default is not None:
        return spec.default
    if spec.choices:
        return spec.choices[0]
    if spec.type in _NUMERIC and spec.min is not None:
        return spec.min
    return None


def _json_value(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "decimal" and isinstance(value, Decimal):
        return str(value)
    if kind == "date" and isinstance(value, date):
        return value.isoformat()
    return value


def to_row(spec: Param) -> dict[str, Any]:
    """A spec as a ``strategy_parameters`` row (JSON values as Python; the caller wraps them)."""
    return {
        "name": spec.name,
        "param_type": STORED_TYPE.get(spec.type, spec.type),
        "is_required": spec.required,
        "default_value": spec.to_json(spec.default),
        "min_value": None if spec.min is None else Decimal(str(spec.min)),
        "max_value": None if spec.max is None else Decimal(str(spec.max)),
        "step": None if spec.step is None else Decimal(str(spec.step)),
        "allowed_values": None if spec.choices is None else [spec.to_json(c) for c in spec.choices],
        "is_optimizable": spec.optimizable,
        "display_order": spec.display_order or 0,
        "description": spec.description,
    }


def from_row(row: Mapping[str, Any]) -> Param:
    """A ``strategy_parameters`` row as a spec."""
    kind = {v: k for k, v in STORED_TYPE.items()}.get(row["param_type"], row["param_type"])
    base = Param(row["name"], kind, choices=row["allowed_values"])
    return Param(
        row["name"],
        kind,
        required=row["is_required"],
        default=from_json(base, row["default_value"]),
        min=row["min_value"],
        max=row["max_value"],
        step=row["step"],
        choices=row["allowed_values"],
        optimizable=row["is_optimizable"],
        display_order=row["display_order"],
        description=row["description"],
    )


def json_values(specs: Sequence[Param], values: Mapping[str, Any]) -> dict[str, Any]:
    """Normalized values as JSON (decimals as text, dates as ISO text)."""
    by_name = {s.name: s for s in specs}
    return {name: by_name[name].to_json(value) for name, value in values.items()}

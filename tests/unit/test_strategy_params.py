"""Typed strategy parameters: validation outcomes, normalization and suggestions (no database)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradedb.errors import ParameterError, ValidationError
from tradedb.strategies import Param
from tradedb.strategies.params import canonical_json, from_row, ordered, to_row, validate

SPECS = ordered(
    [
        Param("fast", "int", required=True, min=2, max=50),
        Param("slow", "int", default=30, min=5, max=200, step=5),
        Param("size", "float", default=1.0, min=0),
        Param("fee", "decimal", default="0.0005"),
        Param("mode", "enum", choices=["long", "both"], default="long"),
        Param("lookback", "int", choices=[5, 10, 20]),
        Param("start", "date"),
        Param("hedge", "bool", default=False),
        Param("label", "str"),
    ]
)


def outcome(values: dict[str, Any]) -> dict[str, tuple[bool, Any, Any]]:
    return {n: (c.valid, c.value, c.suggested) for n, c in validate(SPECS, values).checks.items()}


def test_a_whole_number_is_a_valid_float_and_text_numbers_are_read() -> None:
    # The validator this replaces rejected 5 as a float.
    got = outcome({"fast": "7", "size": 5, "fee": 0.001, "hedge": "yes", "start": "2024-01-02"})
    assert got["fast"] == (True, 7, 7)
    assert got["size"] == (True, 5.0, 5.0)
    assert isinstance(got["size"][1], float)
    assert got["fee"] == (True, Decimal("0.001"), Decimal("0.001"))
    assert got["hedge"] == (True, True, True)
    assert got["start"] == (True, date(2024, 1, 2), date(2024, 1, 2))


def test_missing_optional_parameters_take_their_defaults_and_a_missing_required_one_is_named() -> None:
    checks = validate(SPECS, {})
    assert not checks.valid
    assert checks.errors == {"fast": "is required"}
    values = validate(SPECS, {"fast": 3}).values()
    assert values == {"fast": 3, "slow": 30, "size": 1.0, "fee": Decimal("0.0005"), "mode": "long", "hedge": False}


@pytest.mark.parametrize(
    ("values", "name", "message", "suggested"),
    [
        ({"fast": 1}, "fast", "below the minimum 2", 2),
        ({"fast": 51}, "fast", "above the maximum 50", 50),
        ({"fast": 3, "slow": 33}, "slow", "not on the step grid", 35),
        ({"fast": 3, "slow": 201}, "slow", "above the maximum 200", 200),
        ({"fast": 3, "mode": "Both"}, "mode", "not one of", "both"),
        ({"fast": 3, "lookback": 12}, "lookback", "not one of", 10),
        ({"fast": 3.7}, "fast", "not a whole number", 4),
        ({"fast": True}, "fast", "boolean, not a number", 2),
        ({"fast": 3, "size": float("nan")}, "size", "not a finite number", 1.0),
        ({"fast": 3, "start": datetime(2024, 1, 2, 9, 30)}, "start", "time of day", None),
        ({"fast": 3, "label": 5}, "label", "not a string", None),
        ({"fast": 3, "fsat": 3}, "fsat", "did you mean fast?", None),
    ],
)
def test_each_bad_value_is_named_with_a_suggestion(
    values: dict[str, Any], name: str, message: str, suggested: Any
) -> None:
    check = validate(SPECS, values).checks[name]
    assert not check.valid
    assert check.message is not None and message in check.message
    assert check.suggested == suggested


def test_invalid_parameters_raise_one_error_naming_every_bad_one() -> None:
    with pytest.raises(ParameterError) as caught:
        validate(SPECS, {"fast": 0, "slow": 7}).raise_for_errors("ma v1")
    assert "fast: 0 is below the minimum 2" in caught.value.message
    assert "slow: 7 is not on the step grid" in caught.value.message
    assert set(caught.value.checks) >= {"fast", "slow"}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "x", "type": "int", "min": 5, "max": 1}, "above max"),
        ({"name": "x", "type": "str", "min": 1}, "applies to int, float and decimal"),
        ({"name": "x", "type": "enum"}, "needs choices"),
        ({"name": "x", "type": "int", "default": "a"}, "default 'a'"),
        ({"name": "x y", "type": "int"}, "identifier"),
        ({"name": "x", "type": "complex"}, "not one of"),
        ({"name": "x", "type": "int", "step": 0}, "step must be positive"),
    ],
)
def test_a_bad_specification_is_refused(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Param(**spec)


def test_specs_round_trip_through_their_stored_rows() -> None:
    for spec in SPECS:
        row = to_row(spec)
        restored = from_row(
            {
                **row,
                "default_value": row["default_value"],
                "allowed_values": row["allowed_values"],
            }
        )
        assert restored == spec


def test_canonical_json_does_not_depend_on_key_order() -> None:
    assert canonical_json({"b": 1, "a": [1, 2]}) == canonical_json({"a": [1, 2], "b": 1})


@given(
    low=st.integers(-1000, 1000),
    width=st.integers(0, 1000),
    step=st.integers(1, 50),
    value=st.integers(-5000, 5000),
)
def test_a_suggested_numeric_value_is_itself_valid(low: int, width: int, step: int, value: int) -> None:
    spec = Param("n", "int", min=low, max=low + width, step=step)
    check = validate([spec], {"n": value}).checks["n"]
    if check.valid:
        assert check.value == value
        return
    again = validate([spec], {"n": check.suggested}).checks["n"]
    assert again.valid, (check, again)
    # The nearest grid point inside the range: no other valid value is closer.
    best = min(range(low, low + width + 1, step), key=lambda v: (abs(v - value), v))
    assert abs(check.suggested - value) == abs(best - value)

"""Risk and accounts logic without I/O: validation, valuation, the session and high-water state, breaches."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradedb import ValidationError
from tradedb.accounts import ISO_4217, check_account, check_currency
from tradedb.analytics import DayFill, daily_performance
from tradedb.execution._rules import reduces_position
from tradedb.risk import RiskState
from tradedb.risk._rules import advance, breaches, limit_input, total_pnl, value_position

D = Decimal
MONEY = st.decimals(min_value=-(10**9), max_value=10**9, places=4)


def test_currencies_and_account_ids() -> None:
    assert {"USD", "EUR", "JPY", "GBP", "CHF"} <= ISO_4217 and len(ISO_4217) > 150
    assert check_currency("EUR") == "EUR"
    for bad in ("usd", "EURO", "XYZ", "", None, 840):
        with pytest.raises(ValidationError, match="ISO 4217"):
            check_currency(bad)
    assert check_account("desk-1:fx.A_2") == "desk-1:fx.A_2"
    for bad_id in ("", "with space", "x" * 65, None, "naïve"):
        with pytest.raises(ValidationError, match="account_id"):
            check_account(bad_id)


def test_limit_validation_names_the_problem() -> None:
    limit = limit_input("A", "max_daily_loss", "250.5", None, True)
    assert (limit.limit_type, limit.limit_value, limit.halt_on_breach) == ("max_daily_loss", D("250.5"), True)
    assert limit_input("A", "max_order_quantity", 5, 7).security_id == 7
    cases: list[tuple[tuple[Any, ...], str]] = [
        (("nope", 1), "limit_type must be one of"),
        (("max_drawdown", 0), "must be > 0"),
        (("max_drawdown", -1), "must be > 0"),
        (("max_drawdown", float("nan")), "finite"),
        (("max_drawdown", True), "must be a number"),
        (("max_drawdown", 1, 3), "account-wide"),
        (("max_order_quantity", 1, 0), "security_id"),
        (("max_order_quantity", 1, None, 1), "halt_on_breach"),
    ]
    for args, message in cases:
        with pytest.raises(ValidationError, match=message):
            limit_input("A", *args)


def position(quantity: Any, avg: Any, realized: Any = 0, currency: str = "USD") -> dict[str, Any]:
    return {
        "security_id": 1,
        "quantity": D(quantity),
        "avg_price": None if avg is None else D(avg),
        "realized_pnl": D(realized),
        "currency": currency,
    }


def test_valuation_of_long_short_flat_and_unpriced_positions() -> None:
    long = value_position(position(10, 100, realized=-2), "USD", D(103))
    assert (long.market_value, long.unrealized_pnl, long.unpriced) == (D(1030), D(30), None)
    short = value_position(position(-4, 50), "USD", D(55))
    assert (short.market_value, short.unrealized_pnl) == (D(-220), D(-20))
    flat = value_position(position(0, None, realized=12), "USD", None)
    assert (flat.market_value, flat.unrealized_pnl, flat.unpriced) == (D(0), D(0), None)
    unpriced = value_position(position(3, 10), "USD", None)
    assert unpriced.unrealized_pnl is None and unpriced.unpriced == "no price"
    foreign = value_position(position(3, 10, currency="EUR"), "USD", D(11))
    assert foreign.unrealized_pnl is None and "EUR" in str(foreign.unpriced)
    assert total_pnl([long, short, flat, unpriced, foreign]) == D(-2) + 30 - 20 + 12


def test_the_session_rolls_over_and_the_high_water_mark_only_rises() -> None:
    day1, day2 = date(2026, 11, 27), date(2026, 11, 28)
    first = advance(None, D(50), day1)
    assert first == RiskState(day1, D(50), D(50), D(50))
    up = advance(first, D(80), day1)
    down = advance(up, D(20), day1)
    assert (down.session_start_pnl, down.high_water_pnl, down.daily_loss, down.drawdown) == (D(50), D(80), D(30), D(60))
    next_day = advance(down, D(10), day2)
    # The new session starts from the last PnL of the previous one.
    assert (next_day.session_start_pnl, next_day.daily_loss, next_day.drawdown) == (D(20), D(10), D(70))


@given(st.lists(MONEY, min_size=1, max_size=40))
def test_high_water_and_drawdown_match_a_running_maximum(pnls: list[Decimal]) -> None:
    state = None
    for pnl in pnls:
        state = advance(state, pnl, date(2026, 1, 1))
    assert state is not None
    assert state.high_water_pnl == max(pnls)
    assert state.drawdown == max(pnls) - pnls[-1]
    assert state.daily_loss == max(pnls[0] - pnls[-1], D(0))


def limit(kind: str, value: Any, *, halts: bool = False, active: bool = True, limit_id: int = 1) -> dict[str, Any]:
    return {
        "limit_id": limit_id,
        "limit_type": kind,
        "limit_value": D(value),
        "halt_on_breach": halts,
        "is_active": active,
    }


def test_breaches_are_strictly_beyond_the_limit() -> None:
    state = RiskState(date(2026, 1, 1), D(0), D(100), D(-100))  # daily loss 100, drawdown 200
    found = breaches(
        [
            limit("max_daily_loss", 100, limit_id=1),
            limit("max_daily_loss", 99, halts=True, limit_id=2),
            limit("max_drawdown", 150, limit_id=3),
            limit("max_drawdown", 10, active=False, limit_id=4),
            limit("max_order_quantity", 1, limit_id=5),
        ],
        state,
    )
    assert [(b.limit_id, b.measured, b.severity) for b in found] == [(2, D(100), "critical"), (3, D(200), "high")]
    assert "trading halted" in found[0].message("A", "USD")


@pytest.mark.parametrize(
    ("held", "after", "reduces"),
    [(10, 5, True), (10, 0, True), (10, -1, False), (10, 11, False), (-10, -4, True), (-10, 2, False), (0, -1, False)],
)
def test_only_orders_toward_zero_reduce(held: int, after: int, reduces: bool) -> None:
    assert reduces_position(D(held), D(after)) is reduces


def test_performance_refuses_returns_on_no_equity() -> None:
    day = date(2026, 1, 5)
    fills = [DayFill(1, "buy", D(10), D(100), D(0), day)]
    # Capital 500, a 10 x 100 position that falls to 40: equity -100 at the close, so the next day has no return.
    rows = daily_performance(D(500), fills, {(1, day): D(40)}, [day])
    assert rows[0].equity == D(-100) and rows[0].max_drawdown == 1.2
    with pytest.raises(ValidationError, match="equity fell to -100"):
        daily_performance(D(500), fills, {(1, day): D(40)}, [day, date(2026, 1, 6)])
    assert daily_performance(D(500), [], {}, [day])[0].equity == D(500)

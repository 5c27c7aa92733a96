"""Execution logic without a database: validation, the state machine, and position math against a reference."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradedb import InvalidTransition, ValidationError
from tradedb.execution import _rules as base

Q = Decimal("1e-10")


def reference(fills: list[tuple[str, Decimal, Decimal, Decimal]]) -> tuple[Decimal, Decimal | None, Decimal, Decimal]:
    """An independent average-cost book: split every fill into a closing part and an opening part."""
    qty, cost, pnl, fees = Decimal(0), Decimal(0), Decimal(0), Decimal(0)  # cost = average price of |qty|
    for side, size, price, commission in fills:
        fees += commission
        pnl -= commission
        sign = 1 if side == "buy" else -1
        opposite = qty != 0 and (qty > 0) != (sign > 0)
        closing = min(size, abs(qty)) if opposite else Decimal(0)
        if closing:
            pnl += closing * (price - cost) * (1 if qty > 0 else -1)
            qty += sign * closing
        opening = size - closing
        if opening:
            if qty == 0:
                cost = price.quantize(Q, rounding=ROUND_HALF_EVEN)
            else:
                cost = ((abs(qty) * cost + opening * price) / (abs(qty) + opening)).quantize(
                    Q, rounding=ROUND_HALF_EVEN
                )
            qty += sign * opening
    return qty, (cost if qty != 0 else None), pnl, fees


trades = st.lists(
    st.tuples(
        st.sampled_from(["buy", "sell"]),
        st.decimals(min_value=Decimal("0.001"), max_value=Decimal(5000), places=3),
        st.decimals(min_value=Decimal("0.0001"), max_value=Decimal(100000), places=4),
        st.decimals(min_value=Decimal(0), max_value=Decimal(25), places=2),
    ),
    max_size=40,
)


@given(trades)
def test_position_math_matches_the_reference(fills: list[tuple[str, Decimal, Decimal, Decimal]]) -> None:
    state = base.normalized(base.replay(fills))
    assert (state.quantity, state.avg_price, state.realized_pnl, state.total_commission) == reference(fills)


def test_flip_through_zero() -> None:
    state = base.replay(
        [("buy", Decimal(10), Decimal(100), Decimal(0)), ("sell", Decimal(15), Decimal(110), Decimal(1))]
    )
    assert state.quantity == -5
    assert state.avg_price == Decimal(110)
    assert state.realized_pnl == Decimal(100) - 1


def test_closing_exactly_clears_the_average() -> None:
    state = base.normalized(
        base.replay([("sell", Decimal(3), Decimal(50), Decimal(0)), ("buy", Decimal(3), Decimal(40), Decimal(0))])
    )
    assert (state.quantity, state.avg_price, state.realized_pnl) == (Decimal(0), None, Decimal(30))


@pytest.mark.parametrize(
    ("current", "target", "ok"),
    [
        ("pending", "submitted", True),
        ("submitted", "cancelled", True),
        ("partially_filled", "cancelled", True),
        ("pending", "rejected", True),
        ("filled", "cancelled", False),
        ("cancelled", "submitted", False),
        ("submitted", "pending", False),
        ("submitted", "filled", False),
        ("expired", "expired", False),
    ],
)
def test_transitions(current: str, target: str, ok: bool) -> None:
    if ok:
        base.check_transition(current, target)
    else:
        with pytest.raises(InvalidTransition):
            base.check_transition(current, target)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"quantity": 0}, "quantity must be > 0"),
        ({"quantity": -1}, "quantity must be > 0"),
        ({"quantity": float("nan")}, "quantity must be finite"),
        ({"quantity": "abc"}, "quantity must be a number"),
        ({"quantity": True}, "quantity must be a number"),
        ({"side": "hold"}, "side must be one of"),
        ({"order_type": "limit"}, "needs limit_price"),
        ({"order_type": "market", "limit_price": 10}, "takes no limit_price"),
        ({"order_type": "stop_limit", "limit_price": 10}, "needs stop_price"),
        ({"order_type": "limit", "limit_price": 0}, "limit_price must be > 0"),
        ({"time_in_force": "gtd"}, "needs expire_at"),
        ({"time_in_force": "gtd", "expire_at": datetime(2030, 1, 1)}, "time zone"),
        ({"time_in_force": "forever"}, "time_in_force must be one of"),
        ({"security_id": 0}, "security_id must be a positive integer"),
        ({"account_id": ""}, "account_id"),
        ({"client_order_id": "not-a-uuid"}, "UUID"),
    ],
)
def test_order_validation(fields: dict[str, object], message: str) -> None:
    request = {"account_id": "A1", "security_id": 1, "side": "buy", "quantity": 1, **fields}
    with pytest.raises(ValidationError, match=message):
        base.order_request(**request)


def test_valid_order_and_float_conversion() -> None:
    coid = uuid.uuid4()
    request = base.order_request(
        account_id="A1",
        security_id=7,
        side="sell",
        quantity=0.1,
        order_type="limit",
        limit_price="99.5",
        time_in_force="gtd",
        expire_at=datetime(2030, 1, 1, tzinfo=UTC),
        client_order_id=str(coid),
    )
    assert request.quantity == Decimal("0.1")  # the float's shortest repr, not its binary expansion
    assert request.client_order_id == coid
    assert request.signed_quantity() == Decimal("-0.1")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"quantity": 0}, "quantity"),
        ({"price": "-1"}, "price"),
        ({"commission": -1}, "commission"),
        ({"execution_id": " "}, "execution_id"),
        ({"liquidity": "sideways"}, "liquidity"),
    ],
)
def test_fill_validation(kwargs: dict[str, object], message: str) -> None:
    values: dict[str, object] = {"execution_id": "E1", "order_id": 1, "quantity": 1, "price": 1, **kwargs}
    with pytest.raises(ValidationError, match=message):
        base.fill_input(
            values.pop("execution_id"), values.pop("order_id"), values.pop("quantity"), values.pop("price"), **values
        )


def test_an_execution_id_may_be_a_uuid() -> None:
    execution = uuid.UUID("12345678-1234-5678-1234-567812345678")
    fill = base.fill_input(execution, 1, 1, 1)
    assert fill.execution_id == "12345678-1234-5678-1234-567812345678"
    with pytest.raises(ValidationError, match="execution_id"):
        base.fill_input(12345, 1, 1, 1)


def exact_average(old_qty: Decimal, old_avg: Decimal | None, add_qty: Decimal, add_price: Decimal) -> Decimal:
    """The quantity-weighted average by Fraction, rounded half-even (Python's round of a Fraction)."""
    quotient = (Fraction(old_qty) * Fraction(old_avg or 0) + Fraction(add_qty) * Fraction(add_price)) / Fraction(
        old_qty + add_qty
    )
    return Decimal(round(quotient * 10**base.PRICE_PLACES)).scaleb(-base.PRICE_PLACES, Context(prec=200))


def test_average_rounds_the_exact_quotient_not_a_28_digit_one() -> None:
    # Divided with 28 digits, this price becomes ...5000 exactly and rounds to even (down); it is above the half.
    price = Decimal("1.000000000050000000000000000001")
    assert base.average(Decimal(0), None, Decimal(1), price) == Decimal("1.0000000001")
    assert base.average(Decimal(1), Decimal("0.00000000005"), Decimal(1), Decimal(0)) == 0  # a true half: to even
    assert base.average(Decimal(1), Decimal("0.00000000015"), Decimal(1), Decimal(0)) == Decimal("1E-10")


#: Strategies for (old quantity, old average or None, added quantity, added price) of ``average``.
LOTS = (
    st.decimals(min_value=0, max_value=Decimal(10**12), places=6),
    st.one_of(st.none(), st.decimals(min_value=Decimal("0.0000000001"), max_value=Decimal(10**9), places=10)),
    st.decimals(min_value=Decimal("0.000001"), max_value=Decimal(10**12), places=6),
    st.decimals(min_value=Decimal("0.0000000001"), max_value=Decimal(10**9), places=12),
)


@given(*LOTS)
def test_average_matches_exact_rational_rounding(
    old_qty: Decimal, old_avg: Decimal | None, add_qty: Decimal, add_price: Decimal
) -> None:
    assert base.average(old_qty, old_avg, add_qty, add_price) == exact_average(old_qty, old_avg, add_qty, add_price)

"""Execution logic without I/O: input validation, the order state machine, and exact position arithmetic.

Money and quantities are ``Decimal`` throughout. Rounding (documented in docs/execution.md):
- average prices (position average cost, order average fill price) are rounded to ``PRICE_PLACES`` decimal
  places, half-even, each time they change;
- quantities, commissions and realized PnL are exact (sums and products of the inputs and the rounded averages).
Commissions accumulate in ``total_commission`` and are subtracted from ``realized_pnl`` (realized PnL is net).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal, localcontext
from typing import Any

from tradedb.accounts import check_account
from tradedb.db.inputs import check_id, check_time, one_of, to_decimal
from tradedb.db.outbox_rules import NewEvent, new_event, numeric_text
from tradedb.errors import (
    InvalidTransition,
    ValidationError,
)

PRICE_PLACES = 10
_ZERO = Decimal(0)
#: Sums and products without rounding (no division is done in this context), as PostgreSQL's numeric computes them.
_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)

SIDES = ("buy", "sell")
ORDER_TYPES = ("market", "limit", "stop", "stop_limit")
TIME_IN_FORCE = ("day", "gtc", "ioc", "fok", "gtd")
LIQUIDITY = ("maker", "taker", "auction", "other")

#: Legal transitions an operator or gateway may request; fills drive partially_filled and filled.
TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"submitted", "cancelled", "rejected", "expired"}),
    "submitted": frozenset({"cancelled", "rejected", "expired"}),
    "partially_filled": frozenset({"cancelled", "expired"}),
    "filled": frozenset(),
    "cancelled": frozenset(),
    "rejected": frozenset(),
    "expired": frozenset(),
}
FILLABLE = frozenset({"pending", "submitted", "partially_filled"})
FILL_DRIVEN = frozenset({"partially_filled", "filled"})


# --- input validation ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderRequest:
    """A validated order submission."""

    client_order_id: uuid.UUID
    account_id: str
    security_id: int
    side: str
    order_type: str
    quantity: Decimal
    limit_price: Decimal | None
    stop_price: Decimal | None
    time_in_force: str
    expire_at: datetime | None
    strategy_instance_id: int | None
    signal_id: uuid.UUID | None

    def signed_quantity(self) -> Decimal:
        """Return the position change if the order fills completely."""
        return self.quantity if self.side == "buy" else -self.quantity

    def same_request(self, row: dict[str, Any]) -> bool:
        """Tell whether a stored order row is this very request (idempotent resubmission)."""
        fields = (
            "account_id",
            "security_id",
            "side",
            "order_type",
            "quantity",
            "limit_price",
            "stop_price",
            "time_in_force",
            "expire_at",
            "strategy_instance_id",
            "signal_id",
        )
        return all(row[f] == getattr(self, f) for f in fields)


def order_request(
    *,
    account_id: Any,
    security_id: Any,
    side: Any,
    quantity: Any,
    order_type: Any = "market",
    limit_price: Any = None,
    stop_price: Any = None,
    time_in_force: Any = "day",
    expire_at: Any = None,
    client_order_id: Any = None,
    strategy_instance_id: Any = None,
    signal_id: Any = None,
) -> OrderRequest:
    """Validate an order submission; raise ValidationError naming the first bad field."""
    kind = one_of(order_type, "order_type", ORDER_TYPES)
    limit = None if limit_price is None else to_decimal(limit_price, "limit_price", positive=True)
    stop = None if stop_price is None else to_decimal(stop_price, "stop_price", positive=True)
    needs_limit = kind in ("limit", "stop_limit")
    needs_stop = kind in ("stop", "stop_limit")
    if needs_limit != (limit is not None):
        raise ValidationError(f"a {kind} order {'needs' if needs_limit else 'takes no'} limit_price")
    if needs_stop != (stop is not None):
        raise ValidationError(f"a {kind} order {'needs' if needs_stop else 'takes no'} stop_price")
    tif = one_of(time_in_force, "time_in_force", TIME_IN_FORCE)
    expiry = None if expire_at is None else check_time(expire_at, "expire_at")
    if (tif == "gtd") != (expiry is not None):
        raise ValidationError("time_in_force 'gtd' needs expire_at, and only gtd takes it")
    try:
        coid = (
            uuid.uuid4()
            if client_order_id is None
            else (client_order_id if isinstance(client_order_id, uuid.UUID) else uuid.UUID(str(client_order_id)))
        )
        signal = (
            None
            if signal_id is None
            else (signal_id if isinstance(signal_id, uuid.UUID) else uuid.UUID(str(signal_id)))
        )
    except ValueError:
        raise ValidationError("client_order_id and signal_id must be UUIDs") from None
    return OrderRequest(
        client_order_id=coid,
        account_id=check_account(account_id),
        security_id=check_id(security_id, "security_id"),
        side=one_of(side, "side", SIDES),
        order_type=kind,
        quantity=to_decimal(quantity, "quantity", positive=True),
        limit_price=limit,
        stop_price=stop,
        time_in_force=tif,
        expire_at=expiry,
        strategy_instance_id=None
        if strategy_instance_id is None
        else check_id(strategy_instance_id, "strategy_instance_id"),
        signal_id=signal,
    )


# --- the state machine -----------------------------------------------------------------------------------------


def check_transition(current: str, target: str) -> None:
    """Raise InvalidTransition unless an order in ``current`` may be moved to ``target`` by request."""
    if target in FILL_DRIVEN:
        raise InvalidTransition(f"orders become {target} by recording fills, not by a transition")
    if target not in TRANSITIONS:
        raise InvalidTransition(f"unknown order status {target!r}")
    if target not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "none: it is final"
        raise InvalidTransition(f"an order that is {current} cannot become {target} (allowed: {allowed})")


def status_after_fill(quantity: Decimal, filled: Decimal) -> str:
    """Return the order status once ``filled`` of ``quantity`` is filled."""
    return "filled" if filled == quantity else "partially_filled"


def reduces_position(held: Decimal, after: Decimal) -> bool:
    """Whether going from ``held`` to ``after`` only reduces the position (toward zero, never through it)."""
    return held != 0 and abs(after) < abs(held) and (after == 0 or (after > 0) == (held > 0))


def average(old_qty: Decimal, old_avg: Decimal | None, add_qty: Decimal, add_price: Decimal) -> Decimal:
    """Return the quantity-weighted average of two lots, rounded half-even to PRICE_PLACES from the exact quotient
    (as ``execution.fill_average`` does: a quotient first rounded to 28 digits could round a half that is not one)."""
    with localcontext(_EXACT):
        total = old_qty + add_qty
        scaled = (old_qty * (old_avg or _ZERO) + add_qty * add_price).scaleb(PRICE_PLACES)
        quotient, rest = divmod(scaled, total)
        twice = 2 * rest
        if twice > total or (twice == total and quotient % 2 == 1):
            quotient += 1
        return quotient.scaleb(-PRICE_PLACES)


# --- positions -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PositionState:
    """A position: signed quantity, average cost of the open quantity, net realized PnL, commissions paid."""

    quantity: Decimal = Decimal(0)
    avg_price: Decimal | None = None
    realized_pnl: Decimal = Decimal(0)
    total_commission: Decimal = Decimal(0)


def apply_fill(
    position: PositionState, side: str, quantity: Decimal, price: Decimal, commission: Decimal = Decimal(0)
) -> PositionState:
    """Return the position after a fill: average cost on increases, realized PnL on reductions and flips."""
    with localcontext(_EXACT):
        return _apply_fill(position, side, quantity, price, commission)


def _apply_fill(
    position: PositionState, side: str, quantity: Decimal, price: Decimal, commission: Decimal
) -> PositionState:
    signed = quantity if side == "buy" else -quantity
    held = position.quantity
    realized = position.realized_pnl - commission
    commissions = position.total_commission + commission
    if held == 0 or (held > 0) == (signed > 0):
        new_qty = held + signed
        avg = average(abs(held), position.avg_price, quantity, price)
        return PositionState(new_qty, avg, realized, commissions)
    closing = min(quantity, abs(held))
    direction = Decimal(1) if held > 0 else Decimal(-1)
    realized += closing * (price - (position.avg_price or Decimal(0))) * direction
    remaining = quantity - closing
    if remaining == 0:
        new_qty = held + signed
        return PositionState(new_qty, position.avg_price if new_qty != 0 else None, realized, commissions)
    # Flip through zero: the rest opens a new position at the fill price.
    flipped = remaining if signed > 0 else -remaining
    return PositionState(flipped, average(Decimal(0), None, Decimal(1), price), realized, commissions)


def replay(fills: list[tuple[str, Decimal, Decimal, Decimal]]) -> PositionState:
    """Return the position implied by fills (side, quantity, price, commission) in application order."""
    state = PositionState()
    for side, quantity, price, commission in fills:
        state = apply_fill(state, side, quantity, price, commission)
    return state


def position_differences(stored: PositionState, implied: PositionState) -> list[str]:
    """Describe how a stored position differs from what its fills imply (empty when equal)."""
    differences = []
    for field in ("quantity", "avg_price", "realized_pnl", "total_commission"):
        a, b = getattr(stored, field), getattr(implied, field)
        if a != b:
            differences.append(f"{field} is {a} but the fills imply {b}")
    return differences


def normalized(state: PositionState) -> PositionState:
    """Return ``state`` with a flat position's average price cleared (how it is stored)."""
    return replace(state, avg_price=None) if state.quantity == 0 else state


# --- fills and results --------------------------------------------------------------------------------------

Row = dict[str, Any]


@dataclass(frozen=True)
class FillInput:
    """A validated fill."""

    execution_id: str
    order_id: int
    quantity: Decimal
    price: Decimal
    commission: Decimal
    executed_at: datetime | None
    liquidity: str | None
    settlement_date: date | None
    #: The order's account, when the caller knows it: checked, and a cluster routes the fill by it.
    account_id: str | None = None

    def matches(self, row: Mapping[str, Any]) -> bool:
        """Tell whether a stored fill is this very execution (same order, quantity, price, commission)."""
        return (row["order_id"], row["quantity"], row["price"], row["commission"]) == (
            self.order_id,
            self.quantity,
            self.price,
            self.commission,
        )


def fill_input(
    execution_id: Any,
    order_id: Any,
    quantity: Any,
    price: Any,
    *,
    commission: Any = 0,
    executed_at: Any = None,
    liquidity: Any = None,
    settlement_date: Any = None,
    account_id: Any = None,
) -> FillInput:
    """Validate one fill (``execution_id`` a string or a UUID); raise ValidationError naming the bad field."""
    if isinstance(execution_id, uuid.UUID):
        execution_id = str(execution_id)
    if not isinstance(execution_id, str) or not execution_id.strip():
        raise ValidationError(f"execution_id must be a non-empty string, got {execution_id!r}")
    if settlement_date is not None and not isinstance(settlement_date, date):
        raise ValidationError(f"settlement_date must be a date, got {settlement_date!r}")
    return FillInput(
        execution_id=execution_id,
        order_id=check_id(order_id, "order_id"),
        quantity=to_decimal(quantity, "quantity", positive=True),
        price=to_decimal(price, "price", positive=True),
        commission=to_decimal(commission, "commission", non_negative=True),
        executed_at=None if executed_at is None else check_time(executed_at, "executed_at"),
        liquidity=None if liquidity is None else one_of(liquidity, "liquidity", LIQUIDITY),
        settlement_date=settlement_date,
        account_id=None if account_id is None else check_account(account_id),
    )


@dataclass(frozen=True)
class FillResult:
    """What recording a fill produced: the fill, the order and the position after it."""

    fill: Row
    order: Row
    position: Row
    duplicate: bool


def fill_result(names: list[str], values: tuple[Any, ...]) -> FillResult:
    """Split the row of ``RECORD_FILL`` (the fill's, the order's and the position's columns, then the flags, with
    a column named ``|`` between each) into a FillResult."""
    parts: list[Row] = [{}]
    for name, value in zip(names, values, strict=True):
        if name == "|":
            parts.append({})
        else:
            parts[-1][name] = value
    fill, order, position, flags = parts
    if all(v is None for v in position.values()):
        position = {}
    return FillResult(fill, order, position, duplicate=bool(flags["duplicate"]))


def fill_event_payload(fill: FillInput) -> str:
    """The JSON of a fill's order event row (the same object ``execution.record_fill`` writes)."""
    return json.dumps(
        {"execution_id": fill.execution_id, "quantity": numeric_text(fill.quantity), "price": numeric_text(fill.price)}
    )


@dataclass(frozen=True)
class BatchResult:
    """What recording a batch of fills did."""

    recorded: int
    duplicates: int


@dataclass(frozen=True)
class PositionDifference:
    """A stored position that differs from what its fills imply."""

    account_id: str
    security_id: int
    differences: list[str]


# --- events (the outbox) ----------------------------------------------------------------------------------------

_ORDER_FIELDS = (
    "order_id",
    "client_order_id",
    "account_id",
    "security_id",
    "side",
    "order_type",
    "quantity",
    "limit_price",
    "stop_price",
    "status",
    "filled_quantity",
    "avg_fill_price",
    "version",
)


def order_event(order: Row, event_type: str, **extra: Any) -> NewEvent:
    """An event of the ``order`` stream carrying the order as it is after the change (its version is the seq)."""
    payload = {k: order[k] for k in _ORDER_FIELDS if k in order}
    return new_event("order", order["order_id"], event_type, {**payload, **extra}, seq=order["version"])


def _json_value(value: Any) -> Any:
    """A row's value as the events carry it (numerics as PostgreSQL prints them, UUIDs as text)."""
    if isinstance(value, Decimal):
        return numeric_text(value)
    return str(value) if isinstance(value, uuid.UUID) else value


def utc_text(value: datetime) -> str:
    """A time as events carry it: UTC, always with microseconds (as ``execution.record_fill`` writes it)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def fill_events(
    fill: Row, order: Row, position: PositionState, position_version: int, from_status: str
) -> list[NewEvent]:
    """The events of a recorded fill: ``fill.recorded`` on its order, ``position.changed`` on the position
    (whose seq is its version before the change: a position is created at version 1 without an event). The same
    objects ``execution.record_fill`` writes; built without ``new_event``'s checks, which these names pass."""
    recorded = {
        **{k: _json_value(order[k]) for k in _ORDER_FIELDS},
        "from_status": from_status,
        "fill_id": fill["fill_id"],
        "execution_id": fill["execution_id"],
        "fill_quantity": numeric_text(fill["quantity"]),
        "fill_price": numeric_text(fill["price"]),
        "commission": numeric_text(fill["commission"]),
        "executed_at": utc_text(fill["executed_at"]),
    }
    account, security = order["account_id"], order["security_id"]
    changed = {
        "account_id": account,
        "security_id": security,
        "quantity": numeric_text(position.quantity),
        "avg_price": _json_value(position.avg_price),
        "realized_pnl": numeric_text(position.realized_pnl),
        "total_commission": numeric_text(position.total_commission),
        "fill_id": fill["fill_id"],
    }
    return [
        NewEvent("order", str(order["order_id"]), "fill.recorded", json.dumps(recorded), order["version"]),
        NewEvent("position", f"{account}:{security}", "position.changed", json.dumps(changed), position_version),
    ]

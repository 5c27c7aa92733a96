"""A batch of fills planned without I/O: the same checks and arithmetic as one fill at a time, in batch order,
turned into rows to write once per batch (each order and position updated once, however many fills it took)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from tradedb.db.outbox_rules import NewEvent
from tradedb.errors import InvalidTransition, NotFoundError, Overfill
from tradedb.execution import _rules as base

Key = tuple[str, int]


@dataclass
class _Position:
    state: base.PositionState
    opened_at: datetime | None
    version: int
    fills: int = 0


@dataclass
class BatchPlan:
    """What a batch writes: fill rows (COPY), order event rows (COPY), each touched order's and position's final
    state (one UPDATE each), and the outbox's events in application order."""

    fills: list[tuple[Any, ...]] = field(default_factory=list)
    order_events: list[tuple[Any, ...]] = field(default_factory=list)
    orders: list[tuple[Any, ...]] = field(default_factory=list)
    positions: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[NewEvent] = field(default_factory=list)


def _opened_at(before: Decimal, after: Decimal, opened_at: datetime | None, executed_at: datetime) -> datetime | None:
    """When the position was opened: as execution.record_fill sets it."""
    if after == 0:
        return None
    if before == 0 or (before > 0) != (after > 0):
        return executed_at
    return opened_at


def plan(
    fills: list[base.FillInput],
    orders: Mapping[int, base.Row],
    positions: Mapping[Key, base.Row],
    fill_ids: list[int],
    now: datetime,
    *,
    emit: bool,
) -> BatchPlan:
    """Apply ``fills`` (new executions, in batch order) to the locked ``orders`` and ``positions`` rows.

    ``fill_ids`` are the ids the fills get, in order; ``now`` is the transaction's time (``executed_at`` when a fill
    has none). Raises what ``record_fill`` raises for the first bad fill: NotFoundError, InvalidTransition, Overfill.
    """
    current = {order_id: dict(row) for order_id, row in orders.items()}
    counts: dict[int, int] = {}
    held = {
        key: _Position(
            base.PositionState(row["quantity"], row["avg_price"], row["realized_pnl"], row["total_commission"]),
            row["opened_at"],
            row["version"],
        )
        for key, row in positions.items()
    }
    out = BatchPlan()
    for fill, fill_id in zip(fills, fill_ids, strict=True):
        order = current.get(fill.order_id)
        if order is None:
            raise NotFoundError(f"unknown order {fill.order_id}")
        if order["status"] not in base.FILLABLE:
            raise InvalidTransition(f"order {fill.order_id} is {order['status']}: it cannot be filled")
        remaining = order["quantity"] - order["filled_quantity"]
        if fill.quantity > remaining:
            raise Overfill(f"fill of {fill.quantity} exceeds the remaining {remaining} of order {fill.order_id}")
        key = (order["account_id"], order["security_id"])
        position = held[key]
        executed_at = fill.executed_at or now
        after = base.apply_fill(position.state, order["side"], fill.quantity, fill.price, fill.commission)
        stored = {
            "fill_id": fill_id,
            "execution_id": fill.execution_id,
            "quantity": fill.quantity,
            "price": fill.price,
            "commission": fill.commission,
            "executed_at": executed_at,
        }
        out.fills.append(
            (
                fill_id,
                fill.execution_id,
                fill.order_id,
                *key,
                order["side"],
                fill.quantity,
                fill.price,
                fill.commission,
                fill.liquidity,
                executed_at,
                fill.settlement_date,
            )
        )
        from_status = order["status"]
        filled = order["filled_quantity"] + fill.quantity
        order["avg_fill_price"] = base.average(
            order["filled_quantity"], order["avg_fill_price"], fill.quantity, fill.price
        )
        order["filled_quantity"] = filled
        order["status"] = base.status_after_fill(order["quantity"], filled)
        order["version"] += 1
        counts[fill.order_id] = counts.get(fill.order_id, 0) + 1
        out.order_events.append(
            (
                fill.order_id,
                order["account_id"],
                from_status,
                order["status"],
                "fill",
                base.fill_event_payload(fill),
            )
        )
        if emit:
            out.events.extend(base.fill_events(stored, order, after, position.version, from_status))
        position.opened_at = _opened_at(position.state.quantity, after.quantity, position.opened_at, executed_at)
        position.state = after
        position.version += 1
        position.fills += 1
    for order_id, n in counts.items():
        order = current[order_id]
        out.orders.append((order_id, order["filled_quantity"], order["avg_fill_price"], order["status"], n))
    for (account, security), position in held.items():
        if position.fills:
            state = position.state
            out.positions.append(
                (
                    account,
                    security,
                    state.quantity,
                    state.avg_price,
                    state.realized_pnl,
                    state.total_commission,
                    position.opened_at,
                    position.fills,
                )
            )
    return out

"""A batch of fills planned without I/O: the same checks and arithmetic as one fill at a time, in batch order,
turned into rows to write set-wise (each order and position updated once, however many fills it took)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
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


def _opened_at(before: Decimal, after: Decimal, opened_at: datetime | None, executed_at: datetime) -> datetime | None:
    """When the position was opened: as execution.record_fill sets it."""
    if after == 0:
        return None
    if before == 0 or (before > 0) != (after > 0):
        return executed_at
    return opened_at


class BatchPlan:
    """A batch applied fill by fill: ``fill_rows()`` yields each fill's row as it applies it (the caller streams
    them into COPY, so the server works while the rest is planned); then ``order_events`` (rows for COPY),
    ``events`` (the outbox's, in application order), and ``orders()`` and ``positions()``, each touched order's
    and position's final state (one UPDATE each).

    ``fill_ids`` are the ids the fills get, in order; ``now`` is the transaction's time (``executed_at`` when a fill
    has none). ``fill_rows`` raises what ``record_fill`` raises for the first bad fill: NotFoundError,
    InvalidTransition, Overfill.
    """

    def __init__(
        self,
        fills: list[base.FillInput],
        orders: Mapping[int, base.Row],
        positions: Mapping[Key, base.Row],
        fill_ids: list[int],
        now: datetime,
        *,
        emit: bool,
    ) -> None:
        self._fills = list(zip(fills, fill_ids, strict=True))
        self._now = now
        self._emit = emit
        self._current = {order_id: dict(row) for order_id, row in orders.items()}
        self._counts: dict[int, int] = {}
        self._held = {
            key: _Position(
                base.PositionState(row["quantity"], row["avg_price"], row["realized_pnl"], row["total_commission"]),
                row["opened_at"],
                row["version"],
            )
            for key, row in positions.items()
        }
        self.order_events: list[tuple[Any, ...]] = []
        self.events: list[NewEvent] = []

    def fill_rows(self) -> Iterator[tuple[Any, ...]]:
        for fill, fill_id in self._fills:
            yield self._apply(fill, fill_id)

    def _apply(self, fill: base.FillInput, fill_id: int) -> tuple[Any, ...]:
        order = self._current.get(fill.order_id)
        if order is None:
            raise NotFoundError(f"unknown order {fill.order_id}")
        if order["status"] not in base.FILLABLE:
            raise InvalidTransition(f"order {fill.order_id} is {order['status']}: it cannot be filled")
        remaining = order["quantity"] - order["filled_quantity"]
        if fill.quantity > remaining:
            raise Overfill(f"fill of {fill.quantity} exceeds the remaining {remaining} of order {fill.order_id}")
        key = (order["account_id"], order["security_id"])
        position = self._held[key]
        executed_at = fill.executed_at or self._now
        after = base.apply_fill(position.state, order["side"], fill.quantity, fill.price, fill.commission)
        from_status = order["status"]
        filled = order["filled_quantity"] + fill.quantity
        order["avg_fill_price"] = base.average(
            order["filled_quantity"], order["avg_fill_price"], fill.quantity, fill.price
        )
        order["filled_quantity"] = filled
        order["status"] = base.status_after_fill(order["quantity"], filled)
        order["version"] += 1
        self._counts[fill.order_id] = self._counts.get(fill.order_id, 0) + 1
        self.order_events.append(
            (fill.order_id, order["account_id"], from_status, order["status"], "fill", base.fill_event_payload(fill))
        )
        if self._emit:
            stored = {
                "fill_id": fill_id,
                "execution_id": fill.execution_id,
                "quantity": fill.quantity,
                "price": fill.price,
                "commission": fill.commission,
                "executed_at": executed_at,
            }
            self.events.extend(base.fill_events(stored, order, after, position.version, from_status))
        position.opened_at = _opened_at(position.state.quantity, after.quantity, position.opened_at, executed_at)
        position.state = after
        position.version += 1
        position.fills += 1
        return (
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

    def orders(self) -> list[tuple[Any, ...]]:
        """(order_id, filled_quantity, avg_fill_price, status, fills) of each order the batch filled."""
        return [
            (order_id, order["filled_quantity"], order["avg_fill_price"], order["status"], self._counts[order_id])
            for order_id, order in self._current.items()
            if order_id in self._counts
        ]

    def positions(self) -> list[tuple[Any, ...]]:
        """(account, security, quantity, avg_price, realized_pnl, total_commission, opened_at, fills) of each
        position the batch changed."""
        changed = []
        for (account, security), position in self._held.items():
            if position.fills:
                state = position.state
                changed.append(
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
        return changed

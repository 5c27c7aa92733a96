"""An independent order book in plain Python: the reference the tests compare tradedb's books with, and the
per-event loop the benchmark measures them against.

Written from the venues' documentation (Databento's MBO book example; LOBSTER's message types), not from
tradedb's code: a dict of resting orders and, per price, the order ids in time priority. A modify that changes the
price or raises the size sends the order to the back of its queue; a smaller size keeps its place.

``policy`` says what an event that makes no sense does: "quarantine" leaves it out; "log" applies what it can
(a cancel of an order not resting does nothing, one taking more than the order has removes it, a modify of an
order not resting adds it, a new order id already resting replaces that order, a crossing order rests).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

REDUCE = ("cancel", "execute")


@dataclass
class Order:
    side: str
    price: float
    size: float


@dataclass
class ReferenceBook:
    policy: str = "quarantine"
    orders: dict[str, Order] = field(default_factory=dict)
    queues: dict[tuple[str, float], list[str]] = field(default_factory=dict)
    findings: list[tuple[int, str]] = field(default_factory=list)
    count: int = 0

    def _rest(self, ref: str, side: str, price: float, size: float) -> None:
        self.orders[ref] = Order(side, price, size)
        self.queues.setdefault((side, price), []).append(ref)

    def _drop(self, ref: str) -> None:
        order = self.orders.pop(ref)
        queue = self.queues[(order.side, order.price)]
        queue.remove(ref)
        if not queue:
            del self.queues[(order.side, order.price)]

    def _crosses(self, side: str, price: float) -> bool:
        bids = [p for (s, p) in self.queues if s == "buy"]
        asks = [p for (s, p) in self.queues if s == "sell"]
        if side == "buy":
            return bool(asks) and price >= min(asks)
        return bool(bids) and price <= max(bids)

    def _finding(self, check: str) -> bool:
        """Record a finding; return whether the event is still applied (policy log)."""
        self.findings.append((self.count, check))
        return self.policy == "log"

    def apply(self, kind: str, ref: str | None, side: str | None, price: float | None, size: float | None) -> None:
        self.count += 1
        if kind == "clear":
            self.orders.clear()
            self.queues.clear()
        elif kind == "new":
            if ref is None or side is None or price is None or size is None:
                self.findings.append((self.count, "missing_value"))
                return
            if ref in self.orders:
                if not self._finding("duplicate_order"):
                    return
                self._drop(ref)
            elif self._crosses(side, price) and not self._finding("crossed_book"):
                return
            self._rest(ref, side, price, size)
        elif kind == "modify":
            if ref is None or price is None or size is None:
                self.findings.append((self.count, "missing_value"))
                return
            order = self.orders.get(ref)
            if order is None:
                if side is None:
                    self.findings.append((self.count, "missing_value"))
                    return
                if self._finding("unknown_order"):
                    self._rest(ref, side, price, size)
                return
            if price != order.price and self._crosses(order.side, price) and not self._finding("crossed_book"):
                return
            if size <= 0:
                self._drop(ref)
            elif price != order.price or size > order.size:
                self._drop(ref)
                self._rest(ref, order.side, price, size)
            else:
                order.size = size
        elif kind in REDUCE:
            order = self.orders.get(ref) if ref is not None else None
            if order is None:
                self.findings.append((self.count, "unknown_order"))
            elif size is None or size == order.size:
                self._drop(ref)  # type: ignore[arg-type]
            elif size > order.size:
                if self._finding("negative_size"):
                    self._drop(ref)  # type: ignore[arg-type]
            else:
                order.size -= size

    def levels(self, side: str, depth: int | None = None) -> list[tuple[float, float, int]]:
        """(price, size, order count) of one side, best first."""
        prices = sorted((p for (s, p) in self.queues if s == side), reverse=side == "buy")
        out = []
        for price in prices[:depth]:
            queue = self.queues[(side, price)]
            out.append((price, sum(self.orders[r].size for r in queue), len(queue)))
        return out

    def queue(self, side: str, price: float) -> list[tuple[str, float]]:
        return [(r, self.orders[r].size) for r in self.queues.get((side, price), [])]


def apply_rows(book: ReferenceBook, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        book.apply(row["event_type"], row["order_ref"], row["side"], row["price"], row["size"])

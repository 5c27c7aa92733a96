"""Books without I/O: code Arrow events for the kernel, run it, and turn its state into levels, orders, streams
and snapshots."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tradedb.books import _kernel as k
from tradedb.errors import BookIntegrityError, ValidationError

BookPolicy = Literal["reject", "quarantine", "log"]
POLICIES: dict[str, int] = {"reject": k.REJECT, "quarantine": k.QUARANTINE, "log": k.LOG}
#: Event type -> kernel code; the others (hidden_execute, halt, trade, fill) leave the book alone.
CODES = {"new": k.NEW, "cancel": k.CANCEL, "execute": k.EXECUTE, "modify": k.MODIFY, "clear": k.CLEAR}
CHECKS = {
    k.UNKNOWN_ORDER: "unknown_order",
    k.NEGATIVE_SIZE: "negative_size",
    k.CROSSED_BOOK: "crossed_book",
    k.DUPLICATE_ORDER: "duplicate_order",
    k.MISSING_VALUE: "missing_value",
}
WHY = {
    "unknown_order": "refers to an order that is not in the book",
    "negative_size": "takes more than the order has left",
    "crossed_book": "would leave the best bid at or above the best ask",
    "duplicate_order": "adds an order id already in the book",
    "missing_value": "lacks the order id, side, price or size it needs",
}
SNAPSHOT_SCHEMA = pa.schema(
    [
        ("order_ref", pa.string()),
        ("side", pa.string()),
        ("price", pa.float64()),
        ("size", pa.float64()),
        ("since", pa.timestamp("us", tz="UTC")),
    ]
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def check_policy(policy: object) -> int:
    if policy not in POLICIES:
        raise ValidationError(f"policy {policy!r}: expected one of {', '.join(POLICIES)}")
    return POLICIES[str(policy)]


def check_depth(depth: object) -> int:
    if isinstance(depth, bool) or not isinstance(depth, int) or depth <= 0:
        raise ValidationError(f"depth {depth!r}: expected a whole number of levels, at least 1")
    return depth


@dataclass(frozen=True)
class RestingOrder:
    """An order in a level's queue: its venue id, what is left of it, and since when it holds its place."""

    order_ref: str
    size: float
    since: datetime


@dataclass(frozen=True)
class Level:
    """One price level: total size and order count; ``queue`` holds the orders in time priority when asked."""

    price: float
    size: float
    orders: int
    queue: tuple[RestingOrder, ...] | None = None


@dataclass(frozen=True)
class Finding:
    """An event that makes no sense for the book, and what was done with it (left out or applied as it could)."""

    ts: datetime
    sequence: int | None
    event_type: str
    order_ref: str | None
    check: str
    action: str

    def message(self) -> str:
        where = f"event at {self.ts.isoformat()}" + (
            f" (sequence {self.sequence})" if self.sequence is not None else ""
        )
        order = f" order {self.order_ref}" if self.order_ref else ""
        return f"{where}: {self.event_type}{order} {WHY[self.check]}"


@dataclass
class Book:
    """The book of one security and source at ``ts``: bid levels best first, ask levels best first."""

    symbol: str
    source: str
    ts: datetime
    bids: list[Level]
    asks: list[Level]
    #: Events applied to get here (since the snapshot the book started from).
    events: int
    snapshot: datetime | None
    findings: list[Finding] = field(default_factory=list)

    def table(self) -> pa.Table:
        """Both sides as rows of (side, level, price, size, orders), level 1 the best."""
        rows = [
            {"side": name, "level": i + 1, "price": lv.price, "size": lv.size, "orders": lv.orders}
            for name, levels in (("bid", self.bids), ("ask", self.asks))
            for i, lv in enumerate(levels)
        ]
        return pa.Table.from_pylist(rows) if rows else pa.table({"side": pa.array([], pa.string())})


class Engine:
    """A book being rebuilt: start from a snapshot (or empty), feed event tables in order, read the state."""

    def __init__(self, policy: int, initial: pa.Table | None = None) -> None:
        self.policy = policy
        self.refs = pa.array([], pa.string())  # order index -> the venue's order id
        self.prices = np.empty(0, np.float64)
        self.state = k.State(0, 0)
        # Findings stay columnar (the events' rows and codes) until asked for: a day can have tens of thousands.
        self._found: list[tuple[pa.Table, np.ndarray]] = []
        self._findings: list[Finding] = []
        self.applied = 0
        if initial is not None and initial.num_rows:
            self._load(initial)

    # --- coding -------------------------------------------------------------------------------------------

    def _order_index(self, refs: pa.ChunkedArray | pa.Array) -> np.ndarray:
        """Dense indices of order ids (-1 for none), numbering ids not seen before after the known ones."""
        flat = refs.combine_chunks() if isinstance(refs, pa.ChunkedArray) else refs
        encoded = pc.dictionary_encode(flat)
        dictionary = encoded.dictionary
        known = pc.index_in(dictionary, value_set=self.refs).to_numpy(zero_copy_only=False)
        fresh = np.isnan(known) if known.dtype.kind == "f" else np.zeros(len(known), np.bool_)
        mapping = np.where(fresh, 0, np.nan_to_num(known)).astype(np.int64)
        if fresh.any():
            mapping[fresh] = len(self.refs) + np.arange(int(fresh.sum()))
            self.refs = pa.concat_arrays([self.refs, dictionary.filter(pa.array(fresh))])
        indices = encoded.indices.to_numpy(zero_copy_only=False)
        valid = ~pc.is_null(encoded).to_numpy(zero_copy_only=False)
        out = np.full(len(encoded), -1, np.int64)
        out[valid] = mapping[indices[valid].astype(np.int64)]
        return out

    def _levels(self, prices: np.ndarray) -> np.ndarray:
        """Level indices of ``prices`` (-1 for NaN), growing the price grid (and the state) for new prices."""
        known = prices[~np.isnan(prices)]
        fresh = np.setdiff1d(known, self.prices)
        if fresh.size:
            grid = np.union1d(self.prices, fresh)
            self._regrid(grid)
        out = np.searchsorted(self.prices, prices).astype(np.int32)
        out[np.isnan(prices)] = -1
        return out

    def _regrid(self, grid: np.ndarray) -> None:
        s = self.state
        moved = np.searchsorted(grid, self.prices).astype(np.int32)  # old level -> new level
        level_size = np.zeros((2, len(grid)), np.float64)
        level_count = np.zeros((2, len(grid)), np.int32)
        if self.prices.size:
            level_size[:, moved] = s.level_size
            level_count[:, moved] = s.level_count
            s.level = np.where(s.alive, moved[np.clip(s.level, 0, len(moved) - 1)], 0).astype(np.int32)
        best_bid = int(moved[s.best[0]]) if s.best[0] >= 0 else -1
        best_ask = int(moved[s.best[1]]) if s.best[1] < len(self.prices) else len(grid)
        s.level_size, s.level_count = level_size, level_count
        s.best = np.array([best_bid, best_ask, s.best[2]], np.int64)
        self.prices = grid

    def _grow_orders(self) -> None:
        s = self.state
        extra = len(self.refs) - len(s.alive)
        if extra <= 0:
            return
        extra = max(extra, len(s.alive) // 2)
        s.alive = np.concatenate([s.alive, np.zeros(extra, np.bool_)])
        s.side = np.concatenate([s.side, np.zeros(extra, np.int8)])
        s.level = np.concatenate([s.level, np.zeros(extra, np.int32)])
        s.size = np.concatenate([s.size, np.zeros(extra, np.float64)])
        s.rank = np.concatenate([s.rank, np.zeros(extra, np.int64)])
        s.since = np.concatenate([s.since, np.zeros(extra, np.int64)])

    def _load(self, orders: pa.Table) -> None:
        index = self._order_index(orders["order_ref"])
        self._grow_orders()
        level = self._levels(orders["price"].to_numpy())
        s = self.state
        side = np.where(pc.equal(orders["side"], "sell").to_numpy(zero_copy_only=False), k.ASK, k.BID).astype(np.int8)
        size = orders["size"].to_numpy()
        s.alive[index] = True
        s.side[index] = side
        s.level[index] = level
        s.size[index] = size
        s.rank[index] = np.arange(len(index), dtype=np.int64)
        s.since[index] = orders["since"].cast(pa.int64()).to_numpy()
        np.add.at(s.level_size, (side, level), size)
        np.add.at(s.level_count, (side, level), 1)
        bids, asks = level[side == k.BID], level[side == k.ASK]
        s.best = np.array(
            [bids.max() if bids.size else -1, asks.min() if asks.size else len(self.prices), len(index)], np.int64
        )

    # --- running ------------------------------------------------------------------------------------------

    def feed(self, events: pa.Table, depth: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Apply ``events`` (columns ts, event_type, order_ref, side, price, size, sequence; in order); return the
        top ``depth`` levels after each event as (prices, sizes, counts) of shape (n, 2, depth) when depth > 0.
        Raise BookIntegrityError at the first finding under "reject"."""
        n = events.num_rows
        kind = np.zeros(n, np.int8)
        types = events["event_type"]
        for name, code in CODES.items():
            kind[pc.equal(types, name).to_numpy(zero_copy_only=False)] = code
        side = np.full(n, -1, np.int8)
        side[pc.equal(events["side"], "buy").fill_null(False).to_numpy(zero_copy_only=False)] = k.BID
        side[pc.equal(events["side"], "sell").fill_null(False).to_numpy(zero_copy_only=False)] = k.ASK
        order = self._order_index(events["order_ref"])
        self._grow_orders()
        level = self._levels(events["price"].to_numpy(zero_copy_only=False).astype(np.float64))
        size = events["size"].to_numpy(zero_copy_only=False).astype(np.float64)
        ts = events["ts"].cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy(zero_copy_only=False)
        findings = np.zeros(n, np.int8)
        out_level = np.full((n if depth else 0, 2, depth), -1, np.int32)
        out_size = np.zeros((n if depth else 0, 2, depth), np.float64)
        out_count = np.zeros((n if depth else 0, 2, depth), np.int32)
        done = k.run(
            kind,
            side,
            level,
            size,
            order,
            ts,
            self.policy,
            self.state.arrays(),
            findings,
            out_level,
            out_size,
            out_count,
        )
        self.applied += int(done)
        self._collect(events, findings[: done + 1] if done < n else findings)
        if done < n:
            bad = self.findings[-1]
            raise BookIntegrityError(bad.message() + ' (policy "reject"; "quarantine" leaves such events out)')
        if not depth:
            return None
        prices = np.where(out_level >= 0, self.prices[np.clip(out_level, 0, None)] if self.prices.size else 0, np.nan)
        sizes = np.where(out_level >= 0, out_size, np.nan)
        counts = np.where(out_level >= 0, out_count, 0)
        return prices, sizes, counts

    def _collect(self, events: pa.Table, codes: np.ndarray) -> None:
        where = np.flatnonzero(codes)
        if where.size:
            rows = events.take(pa.array(where)).select(["ts", "sequence", "event_type", "order_ref"])
            self._found.append((rows, codes[where]))

    @property
    def finding_count(self) -> int:
        return len(self._findings) + sum(len(codes) for _rows, codes in self._found)

    @property
    def findings(self) -> list[Finding]:
        """Every finding so far, in event order."""
        applied = "applied as it could be" if self.policy == k.LOG else "left out"
        for rows, codes in self._found:
            for row, code in zip(rows.to_pylist(), codes.tolist(), strict=True):
                self._findings.append(
                    Finding(row["ts"], row["sequence"], row["event_type"], row["order_ref"], CHECKS[code], applied)
                )
        self._found.clear()
        return self._findings

    # --- reading the state --------------------------------------------------------------------------------

    def levels(self, depth: int | None, queues: bool) -> tuple[list[Level], list[Level]]:
        s = self.state
        sides: list[list[Level]] = []
        live = np.flatnonzero(s.alive[: len(self.refs)])
        for side in (k.BID, k.ASK):
            lv = np.flatnonzero(s.level_count[side] > 0)
            lv = lv[::-1] if side == k.BID else lv
            lv = lv[:depth] if depth is not None else lv
            queue_of: dict[int, tuple[RestingOrder, ...]] = {}
            if queues and lv.size:
                mine = live[(s.side[live] == side) & np.isin(s.level[live], lv)]
                mine = mine[np.lexsort((s.rank[mine], s.level[mine]))]
                names = dict(zip(mine.tolist(), self.refs.take(pa.array(mine, pa.int64())).to_pylist(), strict=True))
                for level in lv.tolist():
                    at = mine[s.level[mine] == level]
                    queue_of[level] = tuple(
                        RestingOrder(names[o], float(s.size[o]), _EPOCH + timedelta(microseconds=int(s.since[o])))
                        for o in at.tolist()
                    )
            sides.append(
                [
                    Level(
                        float(self.prices[j]),
                        float(s.level_size[side, j]),
                        int(s.level_count[side, j]),
                        queue_of.get(j),
                    )
                    for j in lv.tolist()
                ]
            )
        return sides[0], sides[1]

    def snapshot(self) -> tuple[bytes, int]:
        """The resting orders in priority order as an Arrow IPC stream, and how many there are."""
        s = self.state
        live = np.flatnonzero(s.alive[: len(self.refs)])
        live = live[np.argsort(s.rank[live], kind="stable")]
        table = pa.table(
            {
                "order_ref": self.refs.take(pa.array(live, pa.int64())),
                "side": pa.array(np.where(s.side[live] == k.ASK, "sell", "buy"), pa.string()),
                "price": pa.array(self.prices[s.level[live]] if live.size else np.empty(0), pa.float64()),
                "size": pa.array(s.size[live], pa.float64()),
                "since": pa.array(s.since[live], pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            },
            schema=SNAPSHOT_SCHEMA,
        )
        sink = io.BytesIO()
        with pa.ipc.new_stream(sink, SNAPSHOT_SCHEMA, options=pa.ipc.IpcWriteOptions(compression="lz4")) as writer:
            writer.write_table(table)
        return sink.getvalue(), len(live)


def read_snapshot(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(data).read_all()


def stream_batch(events: pa.Table, top: tuple[np.ndarray, np.ndarray, np.ndarray], depth: int) -> pa.RecordBatch:
    """Events' time, sequence and type, then per side and level price, size and order count (level 1 the best)."""
    prices, sizes, counts = top
    columns: dict[str, Any] = {
        "ts": events["ts"].combine_chunks(),
        "sequence": events["sequence"].combine_chunks(),
        "event_type": events["event_type"].combine_chunks(),
    }
    for side, name in ((k.BID, "bid"), (k.ASK, "ask")):
        for d in range(depth):
            columns[f"{name}_price_{d + 1}"] = pa.array(prices[:, side, d], pa.float64(), from_pandas=True)
            columns[f"{name}_size_{d + 1}"] = pa.array(sizes[:, side, d], pa.float64(), from_pandas=True)
            columns[f"{name}_orders_{d + 1}"] = pa.array(counts[:, side, d].astype(np.int32), pa.int32())
    return pa.RecordBatch.from_pydict(columns)


def micros(ts: datetime) -> int:
    return int((ts - datetime(1970, 1, 1, tzinfo=ts.tzinfo)) // timedelta(microseconds=1))

"""Order books rebuilt from ``order_book_events``: ``db.books`` of the async Database.

A book is the resting orders of one security and source. ``book_at`` starts from the latest snapshot at or before
the instant (``order_book_snapshots``) and applies only the events after it; ``book_stream`` gives the top levels
after every event of a range; ``write_snapshots`` stores books at regular instants (and the findings met on the
way into ``data_quality_logs``). Events that make no sense for the book are findings under a policy: "reject"
raises BookIntegrityError at the first, "quarantine" leaves them out, "log" applies what can be applied (a cancel
of an order not in the book does nothing; one taking more than the order has removes the order; a modify of an
unknown order adds it, as venues mean it) — in every case they are in ``Book.findings``.
"""

# source-only: the one source of this I/O; tools/async_to_sync.py generates the sync twin.

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from tradedb.books import _engine as engine
from tradedb.books import _sql as q
from tradedb.books._engine import Book, BookPolicy
from tradedb.columnar.reader_async import copy_arrow, copy_table
from tradedb.durations import parse_span
from tradedb.errors import NotFoundError, ValidationError
from tradedb.marketdata import check_range, check_time

if TYPE_CHECKING:
    from tradedb.db.connections_async import AsyncConnections
    from tradedb.marketdata.api_async import AsyncMarketData

_US = timedelta(microseconds=1)


class AsyncBooks:
    """The order book API of one Database (``db.books``)."""

    def __init__(self, db: AsyncConnections, market_data: AsyncMarketData) -> None:
        self._db = db
        self._md = market_data

    async def book_at(
        self,
        symbol: str,
        at: Any,
        *,
        depth: int | None = 10,
        source: str | None = None,
        exchange: str | None = None,
        orders: bool = False,
        policy: BookPolicy = "log",
    ) -> Book:
        """The book of ``symbol`` after every event at or before ``at``: the best ``depth`` levels of each side
        (None: all), and with ``orders=True`` the orders of each level in time priority. ``source`` is needed
        only when the symbol's events come from several sources."""
        if depth is not None:
            engine.check_depth(depth)
        code = engine.check_policy(policy)
        when = check_time(at, "at")
        security_id, chosen, first, _last = await self._book_source(symbol, source, exchange)
        built, snapshot_ts = await self._build(security_id, chosen, first, when, code)
        bids, asks = built.levels(depth, orders)
        return Book(symbol, chosen, when, bids, asks, built.applied, snapshot_ts, built.findings)

    async def book_stream(
        self,
        symbol: str,
        start: Any,
        end: Any,
        *,
        depth: int = 5,
        source: str | None = None,
        exchange: str | None = None,
        policy: BookPolicy = "log",
        findings: list[engine.Finding] | None = None,
    ) -> AsyncIterator[pa.RecordBatch]:
        """Yield, for every event in [start, end), the top ``depth`` levels of both sides after it, as Arrow record
        batches (columns ts, sequence, event_type, bid_price_1, bid_size_1, bid_orders_1, ... ask_orders_N).
        Findings are appended to ``findings`` when a list is given. A range without events is a NotFoundError."""
        engine.check_depth(depth)
        code = engine.check_policy(policy)
        lo, hi = check_range(start, end)
        security_id, chosen, first, _last = await self._book_source(symbol, source, exchange)
        built, _snapshot = await self._build(security_id, chosen, first, lo - _US, code)
        reported = built.finding_count
        query = q.book_events(security_id, chosen, lo - _US, first, hi - _US)
        rows = 0
        async for events in copy_arrow(self._db, query, q.schema(q.BOOK_COLUMNS)):
            top = built.feed(events, depth)
            assert top is not None
            if findings is not None and built.finding_count > reported:
                findings.extend(built.findings[reported:])
                reported = built.finding_count
            rows += events.num_rows
            yield engine.stream_batch(events, top, depth)
        if not rows:
            raise NotFoundError(f"no order book events for {symbol} in [{lo.isoformat()}, {hi.isoformat()})")

    async def write_snapshots(
        self,
        symbol: str,
        start: Any,
        end: Any,
        *,
        every: str = "1h",
        source: str | None = None,
        exchange: str | None = None,
        policy: BookPolicy = "log",
    ) -> int:
        """Store the book at ``start`` and then every ``every`` (e.g. "15min", "1h") up to ``end``; record the
        findings of the events in (start, end] in ``data_quality_logs`` (replacing those an earlier run recorded
        for that range). Return the number of snapshots written."""
        step = parse_span(every, what="every")
        code = engine.check_policy(policy)
        lo, hi = check_range(start, end)
        security_id, chosen, first, _last = await self._book_source(symbol, source, exchange)
        return await self._write_snapshots(
            security_id, chosen, first=first, lo=lo, hi=hi, step=step, policy=policy, code=code
        )

    async def write_due_snapshots(self, *, every: str = "15min", policy: BookPolicy = "log") -> dict[str, int]:
        """For every security and source with events, store the books on the ``every`` grid (aligned to the
        epoch) from its latest snapshot (or its first event) up to its last event: what maintenance runs.
        Return the snapshots written per "symbol/source"."""
        step = parse_span(every, what="every")
        code = engine.check_policy(policy)
        written: dict[str, int] = {}
        for row in await self._db.fetch_all(q.DUE):
            lo = _grid(row["latest"] or row["first_ts"], step, up=row["latest"] is None)
            hi = _grid(row["last_ts"], step, up=False)
            if hi <= lo:
                continue
            count = await self._write_snapshots(
                row["security_id"],
                row["source"],
                first=row["first_ts"],
                lo=lo,
                hi=hi,
                step=step,
                policy=policy,
                code=code,
            )
            written[f"{row['symbol']}/{row['source']}"] = count
        return written

    async def snapshots(self, symbol: str, *, exchange: str | None = None) -> list[dict[str, Any]]:
        """The stored snapshots of ``symbol``: source, ts, order and event counts."""
        ids = await self._md.security_ids([symbol], exchange=exchange)
        return await self._db.fetch_all(q.SNAPSHOTS, (ids[symbol],))

    # --- helpers ------------------------------------------------------------------------------------------

    async def _write_snapshots(
        self,
        security_id: int,
        source: str,
        *,
        first: datetime,
        lo: datetime,
        hi: datetime,
        step: timedelta,
        policy: str,
        code: int,
    ) -> int:
        built, _snapshot = await self._build(security_id, source, first, lo, code)
        before_range = built.finding_count
        saved = [await self._save(security_id, source, lo, built)]
        boundary = lo + step
        events = await self._all(q.book_events(security_id, source, lo, first, hi))
        times = events["ts"].cast(pa.int64()).to_numpy(zero_copy_only=False)
        done = 0
        while boundary <= hi:
            upto = int(np.searchsorted(times, engine.micros(boundary), side="right"))
            before = built.applied
            built.feed(events.slice(done, upto - done))
            done = upto
            saved.append(await self._save(security_id, source, boundary, built, built.applied - before))
            boundary += step
        await self._record(security_id, source, built.findings[before_range:], policy=policy, lo=lo, hi=hi)
        return len(saved)

    async def _book_source(
        self, symbol: str, source: str | None, exchange: str | None
    ) -> tuple[int, str, datetime, datetime]:
        ids = await self._md.security_ids([symbol], exchange=exchange)
        security_id = ids[symbol]
        rows = await self._db.fetch_all(q.SOURCES, (security_id,))
        if source is not None:
            rows = [r for r in rows if r["source"] == source]
        if not rows:
            where = f" from source {source!r}" if source is not None else ""
            raise NotFoundError(f"no order book events for {symbol}{where}")
        if len(rows) > 1:
            names = ", ".join(r["source"] for r in rows)
            raise ValidationError(f"{symbol} has order book events from several sources ({names}): pass source=")
        row = rows[0]
        return security_id, row["source"], row["first_ts"], row["last_ts"]

    async def _build(
        self, security_id: int, source: str, first: datetime, upto: datetime, policy: int
    ) -> tuple[engine.Engine, datetime | None]:
        """The book after every event at or before ``upto``, from the latest snapshot at or before it."""
        snap = await self._db.fetch_one(q.SNAPSHOT_AT, (security_id, source, upto))
        start = engine.read_snapshot(snap["orders"]) if snap else None
        built = engine.Engine(policy, start)
        after = snap["ts"] if snap else None
        if after is None and upto < first:
            return built, None
        built.feed(await self._all(q.book_events(security_id, source, after, first, upto)))
        return built, after

    async def _all(self, query: Any) -> pa.Table:
        return await copy_table(self._db, query, q.schema(q.BOOK_COLUMNS))

    async def _save(
        self, security_id: int, source: str, ts: datetime, built: engine.Engine, events: int | None = None
    ) -> datetime:
        data, count = built.snapshot()
        applied = built.applied if events is None else events
        await self._db.execute(q.SAVE_SNAPSHOT, (security_id, source, ts, count, applied, data))
        return ts

    async def _record(
        self,
        security_id: int,
        source: str,
        findings: list[engine.Finding],
        *,
        policy: str,
        lo: datetime,
        hi: datetime,
    ) -> None:
        status = "fail" if policy == "reject" else "warning"
        rows = [
            (
                security_id,
                source,
                f.check,
                status,
                f.ts,
                json.dumps(
                    {
                        "sequence": f.sequence,
                        "event_type": f.event_type,
                        "order_ref": f.order_ref,
                        "action": f.action,
                        "message": f.message(),
                    }
                ),
            )
            for f in findings
        ]
        async with self._db.transaction() as conn, conn.cursor() as cursor:
            await cursor.execute(q.FORGET_FINDINGS, (security_id, source, list(engine.CHECKS.values()), lo, hi))
            if rows:
                await cursor.executemany(q.FINDING, rows)


def _grid(ts: datetime, step: timedelta, *, up: bool) -> datetime:
    """``ts`` on the grid of ``step`` from the epoch: the grid point at or before it (after it when ``up``)."""
    epoch = datetime(1970, 1, 1, tzinfo=ts.tzinfo)
    steps, rest = divmod(ts - epoch, step)
    return epoch + (steps + (1 if up and rest else 0)) * step

"""Market data at COPY speed: ``db.market_data`` of the async Database.

Logic without I/O lives beside it: input and datasets in ``_datasets``, checks in ``_quality``, the COPY encoding
in ``tradedb.columnar``, write planning in ``_planning``, read helpers in ``_reading``, the SQL in ``_sql``.

Writes: every batch is one transaction (data, coverage and quality findings land together or not at all).
``append`` COPYs straight into the table; ``skip`` and ``replace`` COPY into a temporary staging table and move
the rows with one statement. Partitions a batch needs are created first, in their own short transaction, when the
Database is not scoped to a service (a service role cannot create them: its rows land in the default partition
until ``tradedb maintain`` moves them).
"""

# source-only: the one source of this I/O; tools/async_to_sync.py generates the sync twin.

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol, Unpack, overload

import psycopg
import pyarrow as pa
from psycopg import AsyncConnection, sql
from psycopg.rows import TupleRow

from tradedb.archive import files
from tradedb.archive.catalog_async import archived_files, archived_partitions
from tradedb.archive.files import ArchivedFile, segments
from tradedb.columnar.binary_encode import encode_copy
from tradedb.columnar.formats import ReadFormat, check_format, convert
from tradedb.columnar.reader_async import copy_arrow, copy_table
from tradedb.db.counters import COUNTERS
from tradedb.db.inflight import AsyncInFlight
from tradedb.db.outbox_async import emit
from tradedb.errors import ArchivedRange, NotFoundError, ValidationError
from tradedb.marketdata import _datasets as base
from tradedb.marketdata import _planning as write
from tradedb.marketdata import _reading as read
from tradedb.marketdata import _sql as q
from tradedb.marketdata._reading import Range, ReadOptions
from tradedb.masking import mask_secrets
from tradedb.reference.securities_async import ensure_known_venues
from tradedb.reference.symbology import LOOKUP, check_source, check_symbol, lookup_params, resolved
from tradedb.schema import metadata
from tradedb.schema.partitions import covers, create_partition_sql, spec_at, table_interval
from tradedb.schema.privileges import owner_role_name

if TYPE_CHECKING:
    from tradedb.db.connections_async import AsyncConnections

logger = logging.getLogger(__name__)

WriteResult = write.WriteResult
Progress = write.Progress


class AsyncQuoteCache(Protocol):
    """What ``latest_quotes(cache=True)`` reads: fresh cached quotes as LATEST_QUOTES rows (tradedb.events)."""

    async def quotes(self, security_ids: Sequence[int]) -> list[tuple[Any, ...]]: ...


class AsyncMarketData:
    """The market-data API of one Database (``db.market_data``)."""

    def __init__(
        self, db: AsyncConnections, *, quote_cache: Callable[[], Awaitable[AsyncQuoteCache | None]] | None = None
    ) -> None:
        self._db = db
        self._quote_cache = quote_cache
        self._symbols: dict[tuple[str | None, str], int] = {}
        self._known_ids: set[int] = set()
        self._partitions: dict[str, list[tuple[datetime | None, datetime | None]]] = {}
        self._may_create_partitions: bool | None = None

    # --- writes -------------------------------------------------------------------------------------------

    async def write_quotes(self, data: Any, *, source: str, **options: Unpack[write.WriteOptions]) -> WriteResult:
        """Write top-of-book quotes: ts, symbol or security_id, bid, ask, bid_size, ask_size.

        Options (all writers): ``on_conflict`` ("append" | "skip" | "replace"), ``policy`` ("reject" |
        "quarantine" | "log"), ``tz`` (zone of naive times), ``symbol`` (when rows name none), ``exchange``
        (MIC used to resolve symbols), ``create_securities`` (add unknown symbols to the security master, with
        ``asset_type`` and ``currency``), ``batch_rows`` (rows per batch; each batch is one transaction),
        ``writers`` (batches appended at once, default 2) and ``progress`` (called with the rows done so far).
        """
        return await self._write(base.QUOTES, data, source, **options)

    async def write_trades(self, data: Any, *, source: str, **options: Unpack[write.WriteOptions]) -> WriteResult:
        """Write market trades: ts, symbol or security_id, price, size, trade_id, aggressor_side (buy/sell)."""
        return await self._write(base.TRADES, data, source, **options)

    async def write_bars(
        self, data: Any, *, source: str, timeframe: str | None = None, **options: Unpack[write.WriteOptions]
    ) -> WriteResult:
        """Write OHLCV bars: ts (bucket start), symbol or security_id, open, high, low, close, volume, ...

        ``timeframe`` applies to rows without a ``timeframe`` column ("1m", "1d", ...).
        """
        if timeframe is not None:
            read.check_timeframe(timeframe)
        return await self._write(base.BARS, data, source, timeframe=timeframe, **options)

    async def write_order_book_events(
        self, data: Any, *, source: str, **options: Unpack[write.WriteOptions]
    ) -> WriteResult:
        """Write order book events: ts, symbol or security_id, event_type, order_ref, side, price, size, sequence."""
        return await self._write(base.BOOK_EVENTS, data, source, **options)

    async def _write(
        self,
        dataset: base.Dataset,
        data: Any,
        source: str,
        *,
        on_conflict: base.OnConflict = "append",
        policy: base.Policy = "reject",
        tz: str | None = None,
        symbol: str | None = None,
        exchange: str | None = None,
        create_securities: bool = False,
        asset_type: str = "equity",
        currency: str = "USD",
        timeframe: str | None = None,
        batch_rows: int = base.DEFAULT_BATCH_ROWS,
        writers: int = 2,
        progress: Progress | None = None,
        first_line: int | None = None,
        as_of: date | str | None = None,
    ) -> WriteResult:
        base.check_write_options(
            source=source, on_conflict=on_conflict, policy=policy, batch_rows=batch_rows, writers=writers
        )
        resolve_as_of = write.check_as_of(as_of, create_securities=create_securities)
        result = write.WriteResult(dataset.table, source)
        started = time.perf_counter()
        table = metadata.tables[f"{q.SCHEMA}.{dataset.table}"]
        recipe = write.Recipe(
            dataset,
            write.PrepareOptions(
                tz,
                symbol,
                exchange,
                create_securities,
                asset_type,
                currency,
                timeframe,
                base.check_first_line(first_line),
                resolve_as_of,
            ),
            source,
            policy,
            table_interval(table, self._db.settings.tick_partition_interval),
        )
        batches = write.with_offsets(base.iter_tables(data, dataset, batch_rows))
        # Appends of different batches cannot interfere: several may run at once, each its own transaction.
        parallel = writers if on_conflict == "append" else 1
        if policy == "reject" and write.in_memory(data):
            await self._write_checked_whole(
                recipe, list(batches), on_conflict=on_conflict, result=result, progress=progress, parallel=parallel
            )
        else:
            # A pipeline: a worker thread reads and prepares batch k+1 (checks, COPY encoding) while batch k is
            # written, so the client's CPU work hides behind the server's.
            with ThreadPoolExecutor(1, thread_name_prefix="tradedb-prepare") as worker:
                async with AsyncInFlight[write.Outcome](parallel) as flight:
                    pending = worker.submit(self._cook_next, recipe, batches)
                    while True:
                        ready = await asyncio.wrap_future(pending)
                        if ready is None:
                            break
                        pending = worker.submit(self._cook_next, recipe, batches)
                        done = await self._finish(recipe, ready)
                        if policy == "reject" and done.batch.findings.bad().any():
                            result.record(await flight.drain(), progress)
                            write.raise_if_rejected(dataset, done.batch, written_before=result.written)
                        await self._ensure_partitions(dataset, done.starts)
                        result.record(await flight.submit(self._write_batch, recipe, done, on_conflict), progress)
                    result.record(await flight.drain(), progress)
        result.seconds = time.perf_counter() - started
        return result

    async def _write_checked_whole(
        self,
        recipe: write.Recipe,
        items: list[tuple[pa.Table, int]],
        *,
        on_conflict: str,
        result: WriteResult,
        progress: Progress | None,
        parallel: int,
    ) -> None:
        """``reject`` on in-memory input: nothing is written unless every batch passes.

        The first batch is COPYed while a worker checks (and encodes) the others, and commits only once they all
        passed: a reject rolls it back. Each batch is still its own transaction.
        """
        if not items:
            return
        symbols, ids = write.names_in(items, recipe.options)
        await self._resolve(symbols, recipe.options)
        await self._check_ids(ids)
        first = await self._finish(recipe, self._cook(recipe, *items[0]))
        write.raise_if_rejected(recipe.dataset, first.batch)
        with ThreadPoolExecutor(1, thread_name_prefix="tradedb-prepare") as worker:
            checking = worker.submit(self._cook_checked, recipe, items[1:])

            async def all_passed() -> None:
                await asyncio.wrap_future(checking)

            await self._ensure_partitions(recipe.dataset, first.starts)
            outcome = await self._write_batch(recipe, first, on_conflict, before_commit=all_passed)
            result.record([outcome], progress)
            rest = await asyncio.wrap_future(checking)
        async with AsyncInFlight[write.Outcome](parallel) as flight:
            for item in rest:
                done = await self._finish(recipe, item)
                write.raise_if_rejected(recipe.dataset, done.batch)
                await self._ensure_partitions(recipe.dataset, done.starts)
                result.record(await flight.submit(self._write_batch, recipe, done, on_conflict), progress)
            result.record(await flight.drain(), progress)

    def _cook_checked(self, recipe: write.Recipe, items: list[tuple[pa.Table, int]]) -> list[write.Cooked]:
        cooked = [self._cook(recipe, table, offset) for table, offset in items]
        for item in cooked:
            if item.missing_symbols or item.missing_ids:
                continue  # resolved (and checked) by the writer before it is written
            write.raise_if_rejected(recipe.dataset, item.batch)
        return cooked

    def _cook(self, recipe: write.Recipe, table: pa.Table, offset: int) -> write.Cooked:
        # Runs in the worker thread: it reads copies of the caches, never the dicts the writer updates.
        return write.cook(recipe, table, offset, dict(self._symbols), frozenset(self._known_ids))

    def _cook_next(self, recipe: write.Recipe, batches: Iterator[tuple[pa.Table, int]]) -> write.Cooked | None:
        following = next(batches, None)
        return None if following is None else self._cook(recipe, *following)

    async def _finish(self, recipe: write.Recipe, item: write.Cooked) -> write.Cooked:
        """Resolve what the worker could not (new symbols, unseen ids), then cook the batch again."""
        if not item.missing_symbols and not item.missing_ids:
            return item
        await self._resolve(item.missing_symbols, recipe.options)
        await self._check_ids(item.missing_ids)
        return write.cook(recipe, item.table, item.offset, self._symbols, self._known_ids, resolved=True)

    async def _resolve(self, symbols: list[str], options: write.PrepareOptions) -> None:
        wanted = [s for s in symbols if (options.exchange, s) not in self._symbols]
        if not wanted:
            return
        if options.as_of is not None:
            await self._resolve_dated(wanted, options.exchange)
            return
        rows = await self._db.fetch_all(q.RESOLVE_SYMBOLS, {"symbols": wanted, "exchange": options.exchange})
        self._symbols.update(base.symbol_map(rows, options.exchange))
        missing = [s for s in wanted if (options.exchange, s) not in self._symbols]
        if missing and options.create_securities:
            for name in missing:
                check_symbol(name)
            params = {
                "symbols": missing,
                "exchange": options.exchange,
                "asset_type": options.asset_type,
                "currency": options.currency,
            }
            async with self._db.transaction() as conn:
                if options.exchange is not None:  # as securities.add: a known venue is added, another refused
                    await ensure_known_venues(conn, [options.exchange])
                cursor = await conn.execute(q.CREATE_SECURITIES, params)
                for name, security_id in await cursor.fetchall():
                    self._symbols[(options.exchange, name)] = security_id

    async def _resolve_dated(self, keys: list[str], exchange: str | None) -> None:
        """Resolve "SYMBOL YYYY-MM-DD" keys through the symbology, in one statement; unknown ones stay unknown."""
        pairs = [key.split(write.DATED) for key in keys]
        params = lookup_params([p[0] for p in pairs], [date.fromisoformat(p[1]) for p in pairs], exchange=exchange)
        rows = await self._db.fetch_all(LOOKUP, params)
        labels = [f"symbol {p[0]!r} on {p[1]}" for p in pairs]
        for key, match in zip(keys, resolved(rows, len(keys), labels), strict=True):
            if match is not None:
                self._symbols[(exchange, key)] = int(match["security_id"])

    async def _check_ids(self, ids: list[int]) -> None:
        wanted = [i for i in ids if i not in self._known_ids]
        if wanted:
            rows = await self._db.fetch_all(q.KNOWN_IDS, (wanted,))
            self._known_ids.update(r["security_id"] for r in rows)

    async def _write_batch(
        self,
        recipe: write.Recipe,
        item: write.Cooked,
        on_conflict: str,
        *,
        before_commit: Callable[[], Awaitable[None]] | None = None,
    ) -> write.Outcome:
        """Write one cooked batch in one transaction (its partitions exist already); return what it wrote."""
        dataset, plan, payload = recipe.dataset, item.plan, item.payload
        # What this batch may replace: its window less what earlier batches of the call cleared (their rows).
        windows = recipe.cleared.claim(item.windows) if on_conflict == "replace" and plan.rows.num_rows else []
        probe = {**item.coverage, "rows": json.dumps(windows)} if on_conflict == "replace" else item.coverage

        async def work(conn: AsyncConnection[TupleRow]) -> tuple[int, int]:
            written, replaced = 0, 0
            mode = on_conflict
            distributed = await self._db.on_citus(conn)
            overlap = q.window_overlap(dataset, distributed=distributed)
            if plan.rows.num_rows and mode != "append" and not await _value(conn, overlap, probe):
                mode = "append"  # nothing stored in the batch's window: nothing to skip or replace
            if plan.rows.num_rows:
                if mode == "append":
                    await _copy(conn, q.copy_into(dataset), payload)
                    await conn.execute(q.COVERAGE_UPSERT, item.coverage)
                    written = plan.rows.num_rows
                else:
                    await conn.execute(q.create_stage(dataset))
                    await _copy(conn, q.copy_into(dataset, stage=True), payload)
                    if mode == "replace":
                        written, replaced = await _replace(
                            conn, dataset, windows, recipe.source, plan.rows.num_rows, distributed=distributed
                        )
                    else:
                        # Statistics for the anti-join against the table (replace joins the stage with the windows
                        # only, where they buy nothing).
                        await conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(q.STAGE)))
                        insert = q.insert_from_stage(dataset, skip_existing=True, distributed=distributed)
                        written = await _value(conn, insert)
            if plan.rows.num_rows and dataset is base.QUOTES:
                # Appended as is, the batch's own last rows are what is stored; else (rows skipped or replaced) the
                # stored rows are probed.
                if mode == "append":
                    await conn.execute(q.LAST_QUOTES_FROM_BATCH, item.last)
                else:
                    upsert = q.LAST_QUOTES_UPSERT_DISTRIBUTED if distributed else q.LAST_QUOTES_UPSERT
                    await conn.execute(upsert, item.coverage)
            if plan.logged:
                await conn.execute(q.QUALITY_INSERT, plan.quality_params(dataset))
            if self._db.settings.events_outbox and written + replaced:
                # Last before commit: the stream's counter row stays locked only from here to the commit.
                await emit(conn, [write.batch_event(item.windows, dataset, recipe.source, written, replaced)])
            if before_commit is not None:
                await before_commit()
            return written, replaced

        written, replaced = await self._db.run_transaction(work)
        COUNTERS.wrote(f"{q.SCHEMA}.{dataset.table}", written)
        return plan, written, replaced

    # --- partitions ---------------------------------------------------------------------------------------

    async def _ensure_partitions(self, dataset: base.Dataset, starts: list[datetime]) -> None:
        await self._create_partitions(f"{q.SCHEMA}.{dataset.table}", starts)

    async def ensure_partitions(self, table: str, rows: pa.Table) -> None:
        """Create the partitions of ``table`` (schema-qualified, time-partitioned) that the ``ts`` of ``rows`` fall
        in, when they do not exist yet (unscoped Databases only: a service role's rows go to the default
        partition until ``tradedb maintain`` moves them)."""
        if table not in metadata.tables or "partition_interval" not in metadata.tables[table].info:
            raise ValidationError(f"{table!r} is not a time-partitioned table of tradedb")
        interval = table_interval(metadata.tables[table], self._db.settings.tick_partition_interval)
        await self._create_partitions(table, write.needed_starts(rows, interval))

    async def _create_partitions(self, qualified: str, starts: list[datetime]) -> None:
        """Create the partitions (by their starts) a batch needs that do not exist yet (unscoped Databases only)."""
        if not starts:
            return
        table = metadata.tables[qualified]
        interval = table_interval(table, self._db.settings.tick_partition_interval)
        known = await self._bounds(qualified)
        missing = [s for s in starts if not covers(known, s)]
        if not missing:
            return
        archived = await archived_partitions(self._db, table.name, missing)
        if archived:
            raise ArchivedRange(
                f"rows fall in {qualified} partition(s) archived to Parquet ({', '.join(archived[:5])}): bring "
                f"them back first with `tradedb archive restore --table {table.name} --start ... --end ...`; "
                "nothing written"
            )
        if self._db.role is not None or not await self._may_create():
            logger.info(
                "%d partition(s) of %s missing; rows go to the default partition until `tradedb maintain` runs",
                len(missing),
                qualified,
            )
            return
        owner = owner_role_name(self._db.settings.role_prefix)
        async with self._db.connection() as conn:
            for start in missing:
                spec = spec_at(table, start, interval)
                try:
                    async with conn.transaction():
                        await conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(owner)))
                        await conn.execute(create_partition_sql(spec))
                except psycopg.errors.CheckViolation:
                    # The default partition already holds rows of this range: maintain moves them first.
                    logger.warning(
                        "default partition of %s holds rows for %s: run `tradedb maintain`", spec.parent, spec.name
                    )
                except (psycopg.errors.DuplicateTable, psycopg.errors.UniqueViolation):
                    logger.debug("partition %s created concurrently", spec.name)
        self._partitions.pop(qualified, None)

    async def _bounds(self, qualified: str) -> list[tuple[datetime | None, datetime | None]]:
        if qualified not in self._partitions:
            rows = await self._db.fetch_all(q.PARTITION_BOUNDS, (qualified,), readonly=False)
            self._partitions[qualified] = write.bounds(rows)
        return self._partitions[qualified]

    async def _may_create(self) -> bool:
        if self._may_create_partitions is None:
            owner = owner_role_name(self._db.settings.role_prefix)
            try:
                value = await self._db.fetch_value(q.CAN_OWN, (owner,), readonly=False)
            except ValidationError:
                value = False
            self._may_create_partitions = bool(value)
        return self._may_create_partitions

    # --- reads --------------------------------------------------------------------------------------------

    async def security_ids(self, symbols: Sequence[str], *, exchange: str | None = None) -> dict[str, int]:
        """Map symbols to security ids (cached); raise NotFoundError naming the unknown ones."""
        names = read.check_symbols(symbols)
        known = self._symbols
        try:  # every one resolved before, the usual case: one pass
            return {s: known[(exchange, s)] for s in names}
        except KeyError:
            pass
        await self._resolve(list(dict.fromkeys(names)), write.PrepareOptions(exchange=exchange))
        unknown = [s for s in names if (exchange, s) not in self._symbols]
        if unknown:
            raise NotFoundError(f"unknown symbol(s): {', '.join(unknown[:10])}")
        return {s: self._symbols[(exchange, s)] for s in names}

    async def latest_quotes(
        self,
        symbols: Sequence[str],
        *,
        source: str | None = None,
        exchange: str | None = None,
        cache: bool = False,
    ) -> dict[str, dict[str, Any] | None]:
        """Return the newest quote per symbol (None for a symbol without quotes).

        From the last quotes tradedb's writers keep (one small-table read), where they agree with coverage; else
        one index probe per symbol at the last time coverage holds for it; else a walk down its partitions.
        ``cache=True`` (without ``source``: the cache holds the newest quote of any source) reads the Redis
        cache the relay keeps first: an entry is a snapshot of committed data no older than
        TRADEDB_CACHE_STALENESS; what is missing or older is read here. Without a Redis (or with it down)
        everything is read here."""
        ids = await self.security_ids(symbols, exchange=exchange)
        cached: list[tuple[Any, ...]] = []
        if cache and source is None and self._quote_cache is not None:
            store = await self._quote_cache()
            if store is not None:
                cached = await self._cached_quotes(store, list(ids.values()))
        if len(cached) == len(ids):
            return read.latest_by_symbol(ids, cached)
        wanted = read.missing_ids(ids.values(), cached)
        # Ids as one array literal: dumping 500 Python ints one by one costs more than the text.
        params: dict[str, Any] = {"ids": read.id_array(wanted), "source": source}

        async def newest(conn: AsyncConnection[TupleRow]) -> list[tuple[Any, ...]]:
            cursor = await conn.execute(q.LAST_QUOTES, params)
            rows = cached + read.kept_quotes(await cursor.fetchall())
            missing = read.missing_ids(ids.values(), rows)
            if missing:
                probed = {**params, "ids": read.id_array(missing)}
                cursor = await conn.execute(q.LATEST_SPAN, probed)
                span = await cursor.fetchone()
                if span is not None and span[0] is not None:
                    # Never prepared: the span's literal values are what lets the planner prune partitions.
                    cursor = await conn.execute(
                        q.LATEST_QUOTES, {**probed, "lo": span[0], "hi": span[1]}, prepare=False
                    )
                    rows += await cursor.fetchall()
            missing = read.missing_ids(ids.values(), rows)
            if missing:
                walk = q.LATEST_QUOTES_WALK_DISTRIBUTED if await self._db.on_citus(conn) else q.LATEST_QUOTES_WALK
                cursor = await conn.execute(walk, {"ids": read.id_array(missing), "source": source})
                rows += await cursor.fetchall()
            return rows

        # Usually the kept last quotes answer in one statement: run as its own transaction, that is one round trip
        # (no BEGIN, COMMIT or checkout check; a read is safe to retry). The probes for the rest, when any, read
        # later snapshots: each security's answer is still its newest quote at an instant within the call.
        rows = await self._db.run_transaction(newest, readonly=True, single_statement=True)
        return read.latest_by_symbol(ids, rows)

    @staticmethod
    async def _cached_quotes(store: AsyncQuoteCache, ids: list[int]) -> list[tuple[Any, ...]]:
        try:
            return await store.quotes(ids)
        except Exception as exc:  # a cache that fails is a cache miss, never a failed read
            logger.warning("quote cache unavailable, reading PostgreSQL: %s", mask_secrets(str(exc)))
            return []

    @overload
    async def quotes(
        self, symbol: str, start: Any, end: Any, *, as_: Literal["rows"] = "rows", **options: Unpack[ReadOptions]
    ) -> list[dict[str, Any]]: ...
    @overload
    async def quotes(
        self, symbol: str, start: Any, end: Any, *, as_: Literal["arrow"], **options: Unpack[ReadOptions]
    ) -> pa.Table: ...
    @overload
    async def quotes(
        self,
        symbol: str,
        start: Any,
        end: Any,
        *,
        as_: Literal["pandas", "polars"],
        **options: Unpack[ReadOptions],
    ) -> Any: ...
    async def quotes(
        self, symbol: str, start: Any, end: Any, *, as_: ReadFormat = "rows", **options: Unpack[ReadOptions]
    ) -> Any:
        """Quotes of ``symbol`` in [start, end); see :meth:`read`."""
        return await self._read_range("quotes", symbol, start, end, as_=as_, options=options)

    @overload
    async def trades(
        self, symbol: str, start: Any, end: Any, *, as_: Literal["rows"] = "rows", **options: Unpack[ReadOptions]
    ) -> list[dict[str, Any]]: ...
    @overload
    async def trades(
        self, symbol: str, start: Any, end: Any, *, as_: Literal["arrow"], **options: Unpack[ReadOptions]
    ) -> pa.Table: ...
    @overload
    async def trades(
        self,
        symbol: str,
        start: Any,
        end: Any,
        *,
        as_: Literal["pandas", "polars"],
        **options: Unpack[ReadOptions],
    ) -> Any: ...
    async def trades(
        self, symbol: str, start: Any, end: Any, *, as_: ReadFormat = "rows", **options: Unpack[ReadOptions]
    ) -> Any:
        """Market trades of ``symbol`` in [start, end); see :meth:`read`."""
        return await self._read_range("market_trades", symbol, start, end, as_=as_, options=options)

    @overload
    async def bars(
        self, symbol: str, start: Any, end: Any, *, as_: Literal["rows"] = "rows", **options: Unpack[ReadOptions]
    ) -> list[dict[str, Any]]: ...
    @overload
    async def bars(
        self, symbol: str, start: Any, end: Any, *, as_: Literal["arrow"], **options: Unpack[ReadOptions]
    ) -> pa.Table: ...
    @overload
    async def bars(
        self,
        symbol: str,
        start: Any,
        end: Any,
        *,
        as_: Literal["pandas", "polars"],
        **options: Unpack[ReadOptions],
    ) -> Any: ...
    async def bars(
        self, symbol: str, start: Any, end: Any, *, as_: ReadFormat = "rows", **options: Unpack[ReadOptions]
    ) -> Any:
        """Bars of ``symbol`` (``timeframe``, default 1d) in [start, end); see :meth:`read`."""
        return await self._read_range("bars", symbol, start, end, as_=as_, options={"timeframe": "1d", **options})

    @overload
    async def read(
        self,
        table: str,
        symbol: str,
        start: Any,
        end: Any,
        *,
        as_: Literal["rows"] = "rows",
        **options: Unpack[ReadOptions],
    ) -> list[dict[str, Any]]: ...
    @overload
    async def read(
        self,
        table: str,
        symbol: str,
        start: Any,
        end: Any,
        *,
        as_: Literal["arrow"],
        **options: Unpack[ReadOptions],
    ) -> pa.Table: ...
    @overload
    async def read(
        self,
        table: str,
        symbol: str,
        start: Any,
        end: Any,
        *,
        as_: Literal["pandas", "polars"],
        **options: Unpack[ReadOptions],
    ) -> Any: ...
    async def read(
        self,
        table: str,
        symbol: str,
        start: Any,
        end: Any,
        *,
        as_: ReadFormat = "rows",
        **options: Unpack[ReadOptions],
    ) -> Any:
        """Rows of one security in [start, end), in time order, as ``as_``: "rows" (dicts), "arrow" (a pyarrow
        Table), "pandas" or "polars" (DataFrames). Arrow and DataFrames are read with a binary COPY decoded into Arrow.
        ``source``, ``exchange`` (of the symbol), ``timeframe`` (bars) and ``contributor`` (quotes) filter."""
        return await self._read_range(table, symbol, start, end, as_=as_, options=options)

    async def _read_range(
        self, table: str, symbol: str, start: Any, end: Any, *, as_: str, options: ReadOptions
    ) -> Any:
        wanted = await self._range(
            table=table,
            symbol=symbol,
            start=start,
            end=end,
            as_=as_,
            source=options.get("source"),
            exchange=options.get("exchange"),
            timeframe=options.get("timeframe"),
            contributor=options.get("contributor"),
        )
        if as_ == "rows":
            rows: list[dict[str, Any]] = []
            for lo, hi, held in await self._parts(wanted):
                if held:
                    rows += (await self._archived(wanted, lo, hi, held)).to_pylist()
                else:
                    rows += await self._db.fetch_all(wanted.query(lo, hi))
            return rows
        tables = []
        for lo, hi, held in await self._parts(wanted):
            if held:
                tables.append(await self._archived(wanted, lo, hi, held))
            else:
                tables.append(await copy_table(self._db, wanted.query(lo, hi), read.schema(table)))
        return convert(tables[0] if len(tables) == 1 else pa.concat_tables(tables), as_)

    async def stream(
        self,
        table: str,
        symbol: str,
        start: Any,
        end: Any,
        *,
        as_: str = "arrow",
        chunk_bytes: int = 16 << 20,
        source: str | None = None,
        exchange: str | None = None,
        timeframe: str | None = None,
        contributor: str | None = None,
    ) -> AsyncIterator[Any]:
        """Like :meth:`read` for large ranges: yield the rows in pieces of about ``chunk_bytes`` of COPY data
        each (Arrow tables, DataFrames or lists of dicts), holding about two pieces in memory at a time (an
        archived partition's rows of the security are read whole, then sliced)."""
        wanted = await self._range(
            table=table,
            symbol=symbol,
            start=start,
            end=end,
            as_=as_,
            source=source,
            exchange=exchange,
            timeframe=timeframe,
            contributor=contributor,
        )
        read.check_chunk_bytes(chunk_bytes)
        for lo, hi, held in await self._parts(wanted):
            if held:
                for piece in read.slices(await self._archived(wanted, lo, hi, held), chunk_bytes):
                    yield convert(piece, as_)
                continue
            async for piece in copy_arrow(self._db, wanted.query(lo, hi), read.schema(table), piece_bytes=chunk_bytes):
                yield convert(piece, as_)

    async def _range(
        self,
        *,
        table: str,
        symbol: str,
        start: Any,
        end: Any,
        as_: str,
        source: str | None,
        exchange: str | None,
        timeframe: str | None,
        contributor: str | None,
    ) -> Range:
        read.check_table(table)
        if contributor is not None and table != "quotes":
            raise ValidationError("contributor= filters quotes only")
        check_format(as_)
        lo, hi = read.check_range(start, end)
        ids = await self.security_ids([symbol], exchange=exchange)
        if timeframe is not None:
            read.check_timeframe(timeframe)
        return Range(table, ids[symbol], lo, hi, source, timeframe, contributor)

    async def _parts(self, wanted: Range) -> list[tuple[datetime, datetime, list[ArchivedFile]]]:
        """The range in time order: archived partitions' parts (with their files) and PostgreSQL's between."""
        held = await archived_files(self._db, wanted.table, [wanted.security_id], wanted.lo, wanted.hi)
        return segments(wanted.lo, wanted.hi, held)

    async def _archived(self, wanted: Range, lo: datetime, hi: datetime, held: list[ArchivedFile]) -> pa.Table:
        """The range's rows in [lo, hi) from archived files (each checked against its checksum) and from
        PostgreSQL (rows written there since, by a writer that had not seen the archive), in time order."""
        ids, equal = [wanted.security_id], wanted.equal()
        tables = [await asyncio.to_thread(_read_archived, file, ids, (lo, hi), equal) for file in held]
        columns = list(q.READ_COLUMNS[wanted.table])
        schema = read.schema(wanted.table)
        archived = pa.concat_tables(tables).select(columns).cast(schema)
        late = await copy_table(self._db, wanted.query(lo, hi), schema)
        rows = pa.concat_tables([archived, late]) if late.num_rows else archived
        # One security's rows of files written by one run are in time order already: a check is cheaper than a sort.
        return rows if read.in_time_order(rows) else rows.sort_by("ts")

    # --- derived data -------------------------------------------------------------------------------------

    async def aggregate_bars(
        self,
        source_table: str,
        timeframe: str,
        start: Any,
        end: Any,
        *,
        symbols: Sequence[str] | None = None,
        source: str,
        target_source: str | None = None,
    ) -> int:
        """Compute OHLCV bars from ``market_trades`` or ``quotes`` (mid prices) in the database and store them.

        Buckets come from ``date_bin`` aligned to 2000-01-01 UTC (weeks start on Monday; months use
        ``date_trunc``). Stored with source ``target_source`` (default: ``source``), replacing bars of the same
        key. Returns the number of bars stored.
        """
        params = read.aggregate_params(source_table, timeframe, start, end, source=source, target_source=target_source)
        ids = await self._ids_or_all(symbols, source_table, source)
        params["ids"] = ids
        if ids:
            await self._ensure_partitions(
                base.BARS, write.needed_starts(read.month_span(params["start"], params["end"]), "month")
            )
        held = await archived_files(self._db, source_table, ids, params["start"], params["end"])

        async def work(conn: AsyncConnection[TupleRow]) -> int:
            distributed = await self._db.on_citus(conn)
            statements = read.aggregate_statements(
                source_table, timeframe, archived=bool(held), distributed=distributed
            )
            if held:
                await _stage_archived(conn, held, ids=ids, lo=params["start"], hi=params["end"], source=source)
            stored = 0
            for statement in statements:
                cursor = await conn.execute(statement, params)
                row = await cursor.fetchone() if cursor.description is not None else None
                stored = int(row[0]) if row is not None else stored
            return stored

        return int(await self._db.run_transaction(work))

    async def _ids_or_all(self, symbols: Sequence[str] | None, table: str, source: str) -> list[int]:
        if symbols is not None:
            return list((await self.security_ids(symbols)).values())
        rows = await self._db.fetch_all(
            "SELECT DISTINCT security_id FROM data_ingestion.coverage WHERE table_name = %s AND source = %s",
            (table, source),
        )
        return [r["security_id"] for r in rows]

    async def adjusted_bars(
        self,
        symbol: str,
        start: Any,
        end: Any,
        *,
        timeframe: str = "1d",
        source: str | None = None,
        as_: str = "rows",
        dividend_method: str = "previous_close",
    ) -> Any:
        """Bars with splits and dividends of ``corporate_actions`` applied backwards (the latest bar is as traded).

        A split of ``value`` (2 = 2:1) divides earlier prices by it and multiplies earlier volumes. A cash dividend
        ``d`` multiplies earlier prices by, with ``dividend_method``: "previous_close" (the default; Yahoo style)
        ``1 - d / close_prev`` (the close of the last session before the ex-date), or "ex_close" (Quandl/Nasdaq
        Data Link and CRSP style) ``close_ex / (close_ex + d)`` (the close of the ex-date's session). Those closes
        are read wherever they are, so adjusted prices do not depend on the window asked for. An action recorded by
        several sources (one split from two vendors) is applied once: the record of the bars' ``source`` when it
        has one, else that of the first source by name.
        """
        base.check_choice(dividend_method, read.DIVIDEND_METHODS, "dividend_method")
        ids = await self.security_ids([symbol])
        table = await self._read_range(
            "bars", symbol, start, end, as_="arrow", options={"source": source, "timeframe": timeframe}
        )
        params = {"security_id": ids[symbol], "timeframe": timeframe, "bar_source": source}
        actions = await self._db.fetch_all(q.CORPORATE_ACTIONS, params)
        if actions:
            dates = sorted({a["ex_date"] for a in actions})
            closes = await self._db.fetch_all(q.ACTION_CLOSES, {**params, "dates": dates})
            around = {r["ex_date"]: r for r in closes}
            for action in actions:
                found = around[action["ex_date"]]
                action.update(close_before=found["close_before"], close_from=found["close_from"])
        return convert(read.adjust(table, actions, dividend_method), as_)

    async def write_corporate_actions(self, rows: Iterable[dict[str, Any]], *, source: str) -> int:
        """Store dividends and splits: dicts with symbol or security_id, ex_date, kind, value, currency."""
        check_source(source)
        checked = read.check_actions(list(rows))
        symbols = [r["symbol"] for r in checked if "symbol" in r]
        ids = await self.security_ids(list(dict.fromkeys(symbols))) if symbols else {}
        async with self._db.transaction() as conn:
            for row in checked:
                security_id = row.get("security_id") or ids[row["symbol"]]
                await conn.execute(
                    q.INSERT_ACTION,
                    (security_id, row["ex_date"], row["kind"], row["value"], row.get("currency"), source),
                )
        return len(checked)

    # --- coverage and quality -----------------------------------------------------------------------------

    async def coverage(
        self, *, symbol: str | None = None, table: str | None = None, source: str | None = None
    ) -> list[dict[str, Any]]:
        """What is stored: per security, table, source and timeframe the first and last time and the row count."""
        if table is not None:
            read.check_table(table)
        return await self._db.fetch_all(q.COVERAGE, {"symbol": symbol, "table": table, "source": source})

    async def rebuild_coverage(self, table: str | None = None) -> int:
        """Recompute coverage from the stored rows (after writes that bypassed tradedb); return entries."""
        tables = [read.check_table(table)] if table else list(base.BY_TABLE)
        total = 0
        for name in tables:
            statement = q.rebuild_coverage(base.BY_TABLE[name])
            async with self._db.transaction() as conn:
                total += await _value(conn, statement)
        return total

    async def gaps(
        self,
        symbol: str,
        start: Any,
        end: Any,
        *,
        table: str = "bars",
        timeframe: str | None = None,
        expected: timedelta | str | None = None,
        calendar: str | None = None,
        source: str | None = None,
    ) -> list[dict[str, Any]]:
        """Missing data of ``symbol`` in [start, end).

        Intraday: every interval between consecutive rows longer than ``expected`` (a timedelta or "5m"; default
        the timeframe). Daily bars (``timeframe="1d"``): the exchange sessions without a bar, from
        ``exchange_calendars`` when ``calendar`` names one ("XNYS"), else every weekday.
        """
        read.check_table(table)
        dataset = base.BY_TABLE[table]
        lo, hi = read.check_range(start, end)
        ids = await self.security_ids([symbol])
        params: dict[str, Any] = {"security_id": ids[symbol], "start": lo, "end": hi, "source": source}
        if table == "bars":
            timeframe = timeframe or "1d"
            read.check_timeframe(timeframe)
            params["timeframe"] = timeframe
        if timeframe in ("1d", "1w", "1mo") and expected is None:
            params["tz"] = "UTC"  # daily bars are labelled 00:00 UTC of their session date
            days = await self._db.fetch_all(q.days_query(dataset, timeframe=table == "bars"), params)
            return read.missing_sessions([d["day"] for d in days], lo, hi, calendar)
        params["step"] = read.expected_step(expected, timeframe)
        return await self._db.fetch_all(q.gaps_query(dataset, timeframe=table == "bars"), params)

    async def quality(
        self,
        *,
        table: str | None = None,
        source: str | None = None,
        check_type: str | None = None,
        since: datetime | date | None = None,
        limit: int = 100,
        summary: bool = False,
    ) -> list[dict[str, Any]]:
        """Data quality findings, newest first (or counted per table, source, check and status)."""
        params = read.quality_params(table, source, check_type, since, limit)
        return await self._db.fetch_all(q.QUALITY_SUMMARY if summary else q.QUALITY, params)


async def _copy(conn: AsyncConnection[TupleRow], statement: sql.Composed, payload: list[memoryview]) -> None:
    async with conn.cursor().copy(statement) as copy:
        for buffer in payload:
            await copy.write(buffer)


async def _stage_archived(
    conn: AsyncConnection[TupleRow],
    held: list[ArchivedFile],
    *,
    ids: list[int],
    lo: datetime,
    hi: datetime,
    source: str,
) -> None:
    """Load the archived rows a computation needs into the temporary table ``archived_rows`` (dropped at commit)."""
    table = held[0].table
    await conn.execute(files.stage_sql("archived_rows", table))
    names = [c.name for c in files.COLUMNS[table]]
    statement = sql.SQL("COPY archived_rows ({}) FROM STDIN (FORMAT binary)").format(
        sql.SQL(", ").join(map(sql.Identifier, names))
    )
    for file in held:
        rows = await asyncio.to_thread(_read_archived, file, ids, (lo, hi), {"source": source})
        if rows.num_rows:
            await _copy(conn, statement, encode_copy(rows, names))


def _read_archived(
    file: ArchivedFile, ids: list[int], span: tuple[datetime, datetime], equal: dict[str, str]
) -> pa.Table:
    """An archived file's rows of ``ids`` in [span) with columns equal to ``equal`` (on a worker thread)."""
    return files.read_rows(file, security_ids=ids, lo=span[0], hi=span[1], equal=equal)


async def _value(conn: AsyncConnection[TupleRow], statement: Any, params: Any = None) -> int:
    cursor = await conn.execute(statement, params)
    row = await cursor.fetchone()
    return int(row[0]) if row is not None and row[0] is not None else 0


async def _replace(
    conn: AsyncConnection[TupleRow],
    dataset: base.Dataset,
    windows: list[dict[str, Any]],
    source: str,
    staged: int,
    *,
    distributed: bool,
) -> tuple[int, int]:
    """Replace the stored rows of ``windows`` with the staged rows; return (written, replaced) (``distributed``:
    on Citus).

    Windows whose stored rows are the staged rows already (a file ingested again) are left as they are and count
    as written and replaced; only the windows that changed are deleted and inserted again.
    """
    if not windows:  # earlier batches of the call cleared this batch's whole window
        return await _value(conn, q.insert_from_stage(dataset, skip_existing=False)), 0
    params = {"windows": json.dumps(windows), "source": source, **write.window_span(windows)}
    cursor = await conn.execute(q.unchanged_windows(dataset), params)
    row = await cursor.fetchone()
    assert row is not None
    positions, kept = set(row[0]), int(row[1])
    unchanged = [w for i, w in enumerate(windows, start=1) if i in positions]
    changed = [w for i, w in enumerate(windows, start=1) if i not in positions]
    replaced = kept
    if changed:
        replaced += await _value(
            conn, q.delete_window(dataset, distributed=distributed), {**params, "windows": json.dumps(changed)}
        )
    if not unchanged:
        return await _value(conn, q.insert_from_stage(dataset, skip_existing=False)), replaced
    if kept == staged:  # every staged row is in a window that did not change: nothing to insert
        return kept, replaced
    insert = q.insert_from_stage(dataset, skip_existing=False, unchanged=True)
    return kept + await _value(conn, insert, {"unchanged": json.dumps(unchanged)}), replaced


__all__ = ["AsyncMarketData", "WriteResult"]

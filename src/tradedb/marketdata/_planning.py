"""Planning a market data write without I/O: batches cooked (normalised, resolved, checked, encoded), what goes
to the quality log, coverage and partitions a batch needs, and the counts of the result."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypedDict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tradedb.columnar.binary_encode import encode_copy
from tradedb.db.outbox_rules import NewEvent, new_event
from tradedb.errors import ValidationError
from tradedb.marketdata._datasets import (
    BARS,
    QUOTES,
    Dataset,
    OnConflict,
    Policy,
    map_symbols,
    module_of,
    normalize,
    unknown_ids,
)
from tradedb.marketdata._quality import FAIL, WARNING, Findings, check, describe, reject_message


def _coverage_entries(table: pa.Table, dataset: Dataset) -> list[dict[str, Any]]:
    keys = ["security_id", "timeframe"] if dataset is BARS else ["security_id"]
    micros = table.select(keys).append_column("us", table["ts"].cast(pa.int64()))
    grouped = micros.group_by(keys).aggregate([("us", "min"), ("us", "max"), ("us", "count")])
    columns = {
        "security_id": grouped["security_id"].to_numpy().tolist(),
        "timeframe": grouped["timeframe"].to_pylist() if dataset is BARS else [""] * grouped.num_rows,
        "first_us": grouped["us_min"].to_numpy().tolist(),
        "last_us": grouped["us_max"].to_numpy().tolist(),
        "row_count": grouped["us_count"].to_numpy().tolist(),
    }
    return [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def last_quotes(table: pa.Table) -> list[dict[str, Any]]:
    """Each security's last quote of a batch (the latest ts; of several at that instant, the last in the batch),
    with times in µs since the epoch and non-finite floats as text (JSON has no NaN; PostgreSQL reads the text)."""
    order = pc.sort_indices(table, sort_keys=[("security_id", "ascending"), ("ts", "ascending")])
    rows = table.take(order)
    ids = rows["security_id"].to_numpy()
    last = np.flatnonzero(np.append(ids[1:] != ids[:-1], True)) if len(ids) else np.array([], np.int64)
    picked = rows.take(pa.array(last))
    columns: dict[str, list[Any]] = {
        "security_id": picked["security_id"].to_pylist(),
        "ts_us": picked["ts"].cast(pa.int64()).to_pylist(),
        "contributor": picked["contributor"].to_pylist()
        if "contributor" in picked.column_names
        else [None] * picked.num_rows,
    }
    for name in ("bid", "ask", "bid_size", "ask_size"):
        values = picked[name].to_pylist() if name in picked.column_names else [None] * picked.num_rows
        columns[name] = [v if v is None or math.isfinite(v) else str(v) for v in values]
    return [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def partition_starts(table: pa.Table, step_us: int) -> np.ndarray:
    """Distinct partition starts (µs since the epoch) a batch's rows fall into, for fixed-width partitions."""
    ts = pc.fill_null(table["ts"].cast(pa.int64()), 0).to_numpy()
    unique: np.ndarray = np.unique(ts - ts % step_us)
    return unique


def month_starts(table: pa.Table) -> list[datetime]:
    """Distinct month starts a batch's rows fall into."""
    months = pc.unique(pc.floor_temporal(table["ts"], unit="month"))
    return sorted(m.as_py() for m in months if m.is_valid)


Progress = Callable[[int], None]


class WriteOptions(TypedDict, total=False):
    """The options every market-data writer takes (``db.market_data.write_quotes(data, source=..., **options)``)."""

    #: What to do with rows already stored: append them again, skip them, or replace the stored window.
    on_conflict: OnConflict
    #: What to do with rows that fail a quality check: reject the write, quarantine the rows, or log them.
    policy: Policy
    #: Zone of naive times (never guessed), e.g. "UTC", "America/New_York", "-05:00".
    tz: str | None
    #: Symbol of every row, when the rows name none.
    symbol: str | None
    #: MIC of the listing venue, to resolve symbols.
    exchange: str | None
    #: Add unknown symbols to the security master (with ``asset_type`` and ``currency``).
    create_securities: bool
    asset_type: str
    currency: str
    #: Rows per batch; each batch is one transaction.
    batch_rows: int
    #: Batches appended at once (each its own transaction).
    writers: int
    #: Called with the number of rows done so far.
    progress: Progress | None
    #: For rows read from a file: the file line of the first row, so that messages name lines, not row numbers.
    first_line: int | None
    #: Resolve symbols as of a date through the symbology (``security_identifiers``): "row" (each row's UTC
    #: date) or one date. A ticker reused by another company then goes to the company that held it that day.
    as_of: date | str | None


@dataclass(frozen=True)
class PrepareOptions:
    """How a write turns input rows into table rows."""

    tz: str | None = None
    symbol: str | None = None
    exchange: str | None = None
    create_securities: bool = False
    asset_type: str = "equity"
    currency: str = "USD"
    timeframe: str | None = None
    first_line: int | None = None
    #: "row", an ISO date, or None (resolve by the security master's symbol as of now).
    as_of: str | None = None


@dataclass
class Batch:
    """One normalised, resolved and checked batch; ``offset`` numbers its rows within the whole call."""

    table: pa.Table
    findings: Findings
    offset: int
    #: Rows of a file are named by their line: the line of the input's first row (None: rows are numbered).
    first_line: int | None = None


@dataclass
class Plan:
    """What one batch writes: the rows to store and the findings to record."""

    rows: pa.Table
    logged: list[dict[str, Any]]
    status: list[str]
    rejected: int
    warned: int
    counts: dict[str, int]
    source: str

    def quality_params(self, dataset: Dataset) -> tuple[Any, ...]:
        """Parameters of the quality-log insert: one row per finding (a row with two findings is logged under
        each check type, so every finding is queryable by its check)."""
        from psycopg.types.json import Jsonb

        logged = [
            (d, reason, status) for d, status in zip(self.logged, self.status, strict=True) for reason in d["reasons"]
        ]
        return (
            [d["values"].get("security_id") for d, _, _ in logged],
            [dataset.table] * len(logged),
            [self.source] * len(logged),
            [reason for _, reason, _ in logged],
            [status for _, _, status in logged],
            [d["values"].get("ts") for d, _, _ in logged],
            [Jsonb(d) for d, _, _ in logged],
        )


#: What one written batch did: its plan, rows written, rows replaced.
Outcome = tuple[Plan, int, int]


@dataclass
class WriteResult:
    """The outcome of one write call."""

    table: str
    source: str
    rows: int = 0
    written: int = 0
    skipped: int = 0
    rejected: int = 0
    replaced: int = 0
    warnings: int = 0
    batches: int = 0
    seconds: float = 0.0
    findings: dict[str, int] = field(default_factory=dict)
    #: Oldest and newest time among the rows kept (written or skipped as already stored).
    first_ts: datetime | None = None
    last_ts: datetime | None = None

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def add_batch(self, plan: Plan, written: int, replaced: int) -> None:
        self.batches += 1
        self.rows += plan.rows.num_rows + plan.rejected
        self.written += written
        self.skipped += plan.rows.num_rows - written
        self.rejected += plan.rejected
        self.replaced += replaced
        self.warnings += plan.warned
        for name, count in plan.counts.items():
            self.findings[name] = self.findings.get(name, 0) + count
        if plan.rows.num_rows:
            bounds = pc.min_max(plan.rows["ts"])
            low, high = bounds["min"].as_py(), bounds["max"].as_py()
            self.first_ts = low if self.first_ts is None else min(self.first_ts, low)
            self.last_ts = high if self.last_ts is None else max(self.last_ts, high)

    def record(self, outcomes: Iterable[Outcome], progress: Progress | None) -> None:
        """Count batches that finished (in any order) and report progress."""
        for plan, written, replaced in outcomes:
            self.add_batch(plan, written, replaced)
        if progress is not None:
            progress(self.rows)

    def as_dict(self) -> dict[str, Any]:
        return {
            **{k: getattr(self, k) for k in ("table", "source", "rows", "written", "skipped", "rejected")},
            **{k: getattr(self, k) for k in ("replaced", "warnings", "batches", "findings")},
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows_per_second),
        }


class ClearedWindows:
    """What a ``replace`` call has cleared so far: per (security, timeframe), closed µs intervals.

    Inside a window an earlier batch of the same call cleared, every stored row is the call's own (the old ones
    were deleted then): a later batch deletes only the parts of its window not cleared before. So a batch never
    deletes another's rows, wherever the batch boundaries fall (a run of equal timestamps split across two
    batches, or an unsorted stream whose batches' windows overlap).
    """

    def __init__(self) -> None:
        self._cleared: dict[tuple[int, str], list[tuple[int, int]]] = {}

    def claim(self, entries: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Return the parts of the entries' windows not cleared yet (the windows to delete), and mark them."""
        todo: list[dict[str, Any]] = []
        for entry in entries:
            key = (int(entry["security_id"]), str(entry["timeframe"]))
            lo, hi = int(entry["first_us"]), int(entry["last_us"])
            cleared = self._cleared.setdefault(key, [])
            todo += [
                {"security_id": key[0], "timeframe": key[1], "first_us": a, "last_us": b}
                for a, b in subtract_intervals((lo, hi), cleared)
            ]
            self._cleared[key] = merge_interval(cleared, (lo, hi))
        return todo


def subtract_intervals(window: tuple[int, int], cleared: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of the closed integer interval ``window`` outside the sorted, disjoint closed ``cleared``."""
    lo, hi = window
    parts: list[tuple[int, int]] = []
    cursor = lo
    for a, b in cleared:
        if b < cursor:
            continue
        if a > hi:
            break
        if a > cursor:
            parts.append((cursor, a - 1))
        cursor = b + 1
        if cursor > hi:
            return parts
    if cursor <= hi:
        parts.append((cursor, hi))
    return parts


def merge_interval(cleared: Sequence[tuple[int, int]], new: tuple[int, int]) -> list[tuple[int, int]]:
    """``cleared`` (sorted, disjoint) with ``new`` added; touching intervals are joined."""
    lo, hi = new
    kept: list[tuple[int, int]] = []
    for a, b in cleared:
        if b < lo - 1 or a > hi + 1:
            kept.append((a, b))
        else:
            lo, hi = min(lo, a), max(hi, b)
    kept.append((lo, hi))
    return sorted(kept)


@dataclass(frozen=True)
class Recipe:
    """Everything a write call decides once: what to check, how to resolve, how partitions are cut (and, for
    ``replace``, the windows the call has cleared so far)."""

    dataset: Dataset
    options: PrepareOptions
    source: str
    policy: str
    interval: timedelta | str
    cleared: ClearedWindows = field(default_factory=ClearedWindows)


@dataclass
class Cooked:
    """A batch made ready to write, or (``missing_*`` set) one waiting for symbols or ids to be resolved."""

    table: pa.Table
    offset: int
    missing_symbols: list[str] = field(default_factory=list)
    missing_ids: list[int] = field(default_factory=list)
    batch: Batch = field(init=False)
    plan: Plan = field(init=False)
    payload: list[memoryview] = field(default_factory=list)
    starts: list[datetime] = field(default_factory=list)
    coverage: dict[str, Any] = field(default_factory=dict)
    #: The batch's window per security (and timeframe): first and last time in µs, rows.
    windows: list[dict[str, Any]] = field(default_factory=list)
    #: Quotes: parameters of the last-quotes upsert from the batch's own rows.
    last: dict[str, Any] = field(default_factory=dict)


def cook(
    recipe: Recipe,
    raw: pa.Table,
    offset: int,
    symbols: Mapping[tuple[str | None, str], int],
    known_ids: Set[int],
    *,
    resolved: bool = False,
) -> Cooked:
    """Normalise, resolve (from the given caches), check, plan and encode one batch. No I/O.

    Unless ``resolved``, a batch naming symbols or ids the caches do not hold comes back with ``missing_*`` set
    (and its normalised table): the caller resolves them and cooks it again with ``resolved=True``, after which
    whatever is still unknown is an ``unknown_security`` finding.
    """
    dataset, options = recipe.dataset, recipe.options
    table = (
        raw if resolved else normalize(raw, dataset, tz=options.tz, symbol=options.symbol, timeframe=options.timeframe)
    )
    if "symbol" in table.column_names:
        keys = dated_symbols(table, options.as_of)
        if not resolved:
            names = [s for s in pc.unique(keys).to_pylist() if s is not None]
            missing = [s for s in names if (options.exchange, s) not in symbols]
            if missing:
                return Cooked(table, offset, missing_symbols=missing)
        ids, unknown = map_symbols(keys, symbols, options.exchange)
        table = table.add_column(1, "security_id", ids)
    else:
        if not resolved:
            wanted = [i for i in pc.unique(table["security_id"]).to_pylist() if i is not None]
            absent = [i for i in wanted if i not in known_ids]
            if absent:
                return Cooked(table, offset, missing_ids=absent)
        unknown = unknown_ids(table["security_id"], set(known_ids))
    cooked = Cooked(table, offset)
    cooked.batch = Batch(table, check(table, dataset, unknown), offset, options.first_line)
    cooked.plan = plan = plan_batch(dataset, cooked.batch, recipe.source, recipe.policy)
    if plan.rows.num_rows:
        cooked.payload = encode_copy(plan.rows, dataset.data_columns, {"source": recipe.source})
        cooked.starts = needed_starts(plan.rows, recipe.interval)
        cooked.windows = _coverage_entries(plan.rows, dataset)
        cooked.coverage = coverage_params(cooked.windows, dataset, recipe.source)
        if dataset is QUOTES:
            cooked.last = {"source": recipe.source, "last": json.dumps(last_quotes(plan.rows))}
    return cooked


def check_as_of(as_of: date | str | None, *, create_securities: bool) -> str | None:
    """Return ``as_of`` as "row", an ISO date or None."""
    if as_of is None:
        return None
    if create_securities:
        raise ValidationError("as_of resolves symbols through the symbology; it cannot add securities too")
    if as_of == "row":
        return "row"
    if isinstance(as_of, date) and not isinstance(as_of, datetime):
        return as_of.isoformat()
    if isinstance(as_of, str):
        try:
            return date.fromisoformat(as_of).isoformat()
        except ValueError:
            pass
    raise ValidationError(f'as_of must be "row" or a date (YYYY-MM-DD), got {as_of!r}')


#: Separates a symbol from its date in the keys symbols resolve by when ``as_of`` is set (symbols hold no spaces).
DATED = " "


def dated_symbols(table: pa.Table, as_of: str | None) -> pa.ChunkedArray:
    """The symbol column, or with ``as_of`` "SYMBOL YYYY-MM-DD" keys (the row's UTC date, or the one date)."""
    column = table["symbol"]
    if as_of is None:
        return column
    days = pc.strftime(table["ts"], format="%Y-%m-%d") if as_of == "row" else pa.scalar(as_of)
    return pc.binary_join_element_wise(column, days, DATED)


def names_in(items: Sequence[tuple[pa.Table, int]], options: PrepareOptions) -> tuple[list[str], list[int]]:
    """The distinct symbols and security ids an in-memory input names (to resolve them in one go).

    Symbols resolved as of dates are left to each batch (their keys need the normalised time column).
    """
    symbols: set[str] = set()
    ids: set[int] = set()
    for table, _ in items:
        if options.as_of is not None and "symbol" in table.column_names:
            continue
        try:
            if "symbol" in table.column_names:
                symbols.update(s for s in pc.unique(table["symbol"].cast(pa.string())).to_pylist() if s is not None)
            elif "security_id" in table.column_names:
                ids.update(i for i in pc.unique(table["security_id"].cast(pa.int64())).to_pylist() if i is not None)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue  # normalize() names the bad column when the batch is cooked
    if options.symbol is not None and options.as_of is None and not symbols and not ids:
        symbols.add(options.symbol)
    return sorted(symbols), sorted(ids)


def with_offsets(tables: Iterable[pa.Table]) -> Iterator[tuple[pa.Table, int]]:
    offset = 0
    for table in tables:
        yield table, offset
        offset += table.num_rows


def in_memory(data: Any) -> bool:
    """True when ``data`` is held whole in memory (so it can be checked whole before writing)."""
    if isinstance(data, (pa.Table, pa.RecordBatch, list, tuple)):
        return True
    return module_of(data) in ("pandas", "polars") and hasattr(data, "columns")


def raise_if_rejected(dataset: Dataset, batch: Batch, *, written_before: int = 0) -> None:
    """The ``reject`` policy: raise ValidationError naming the first bad rows when a batch has any finding."""
    bad = np.flatnonzero(batch.findings.bad())
    if bad.size == 0:
        return
    described = describe(batch.table, batch.findings, bad[:5], batch.offset, batch.first_line)
    message = reject_message(dataset, described, int(bad.size))
    if written_before:
        message += f" (earlier batches of this stream, {written_before} rows, were written)"
    raise ValidationError(message)


def plan_batch(dataset: Dataset, batch: Batch, source: str, policy: str) -> Plan:
    """Split a checked batch into rows to write and findings to log, per ``policy``.

    ``quarantine`` keeps every row with a finding out; ``log`` writes rows with warnings (and logs them), but a
    row the table cannot hold (a failure) is kept out under every policy.
    """
    findings = batch.findings
    excluded = findings.bad((FAIL,)) if policy == "log" else findings.bad()
    flagged = findings.bad()
    rows = batch.table.filter(pa.array(~excluded)) if excluded.any() else batch.table
    flagged_idx = np.flatnonzero(flagged)
    logged = describe(batch.table, findings, flagged_idx, batch.offset, batch.first_line)
    status = [FAIL if excluded[i] else WARNING for i in flagged_idx.tolist()]
    return Plan(
        rows=rows,
        logged=logged,
        status=status,
        rejected=int(excluded.sum()),
        warned=int((flagged & ~excluded).sum()),
        counts=findings.counts(),
        source=source,
    )


def coverage_params(windows: list[dict[str, Any]], dataset: Dataset, source: str) -> dict[str, Any]:
    """Parameters of the coverage upsert for a batch appended as is (times as microseconds since the epoch)."""
    return {"table": dataset.table, "source": source, "rows": json.dumps(windows)}


def needed_starts(rows: pa.Table, interval: timedelta | str) -> list[datetime]:
    """The starts of the partitions a batch's rows fall into."""
    if interval == "month":
        return month_starts(rows)
    assert isinstance(interval, timedelta)
    step = int(interval.total_seconds() * 1_000_000)
    return [datetime.fromtimestamp(s / 1_000_000, UTC) for s in partition_starts(rows, step).tolist()]


def bounds(rows: list[dict[str, Any]]) -> list[tuple[datetime | None, datetime | None]]:
    """The [lo, hi) ranges of a table's partitions (the default partition left out; None: unbounded)."""
    return [(r["lo"], r["hi"]) for r in rows if not r["is_default"]]


#: A batch event names its securities up to this many (an event says what changed; it does not carry the data).
EVENT_SECURITIES = 5000


def batch_event(windows: list[dict[str, Any]], dataset: Dataset, source: str, written: int, replaced: int) -> NewEvent:
    """The ``market_data.batch_committed`` event of a written batch: table, securities, time span, row counts."""
    ids = sorted({w["security_id"] for w in windows})
    first = min(w["first_us"] for w in windows)
    last = max(w["last_us"] for w in windows)
    payload = {
        "table": dataset.table,
        "source": source,
        "security_ids": ids if len(ids) <= EVENT_SECURITIES else None,
        "securities": len(ids),
        "first_ts": datetime.fromtimestamp(first / 1_000_000, UTC),
        "last_ts": datetime.fromtimestamp(last / 1_000_000, UTC),
        "rows": written,
        "replaced": replaced,
    }
    return new_event("market_data", dataset.table, "market_data.batch_committed", payload)


def window_span(windows: list[dict[str, Any]]) -> dict[str, datetime]:
    """``lo`` and ``hi``: the first and last instant of any of ``windows`` (µs since the epoch)."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return {
        "lo": epoch + timedelta(microseconds=min(w["first_us"] for w in windows)),
        "hi": epoch + timedelta(microseconds=max(w["last_us"] for w in windows)),
    }

"""Market data reads without I/O: argument checks, Arrow schemas of the reads, output formats, bar adjustment,
sessions."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, TypedDict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from tradedb.durations import parse_duration
from tradedb.errors import ConfigError, ValidationError
from tradedb.marketdata import _sql as q
from tradedb.marketdata._datasets import BY_TABLE, check_choice
from tradedb.reference.symbology import check_source, check_symbol
from tradedb.schema.data_ingestion import TIMEFRAMES

#: date_bin steps of the fixed-width timeframes.
STEPS: dict[str, timedelta] = {
    "1s": timedelta(seconds=1),
    "5s": timedelta(seconds=5),
    "10s": timedelta(seconds=10),
    "15s": timedelta(seconds=15),
    "30s": timedelta(seconds=30),
    "1m": timedelta(minutes=1),
    "5m": timedelta(minutes=5),
    "15m": timedelta(minutes=15),
    "30m": timedelta(minutes=30),
    "1h": timedelta(hours=1),
    "4h": timedelta(hours=4),
    "1d": timedelta(days=1),
    "1w": timedelta(days=7),
}
#: Bucket origin: 2000-01-03 is a Monday, so weekly bars start on Mondays; every smaller step divides a week.
ORIGIN = datetime(2000, 1, 3, tzinfo=UTC)
_TYPES: dict[str, pa.DataType] = {
    "ts": pa.timestamp("us", tz="UTC"),
    "bid": pa.float64(),
    "ask": pa.float64(),
    "bid_size": pa.float64(),
    "ask_size": pa.float64(),
    "price": pa.float64(),
    "size": pa.float64(),
    "open": pa.float64(),
    "high": pa.float64(),
    "low": pa.float64(),
    "close": pa.float64(),
    "volume": pa.float64(),
    "vwap": pa.float64(),
    "trade_count": pa.int64(),
    "sequence": pa.int64(),
    "source": pa.string(),
    "contributor": pa.string(),
    "timeframe": pa.string(),
    "trade_id": pa.string(),
    "aggressor_side": pa.string(),
    "event_type": pa.string(),
    "order_ref": pa.string(),
    "side": pa.string(),
}


def check_table(table: Any) -> str:
    return check_choice(table, tuple(BY_TABLE), "table")


@dataclass(frozen=True)
class Range:
    """A checked read: one security's rows of ``table`` in [lo, hi), filtered by the options given."""

    table: str
    security_id: int
    lo: datetime
    hi: datetime
    source: str | None
    timeframe: str | None
    contributor: str | None

    def query(self, lo: datetime, hi: datetime) -> sql.Composed:
        """The read of [lo, hi) (a part of the range) from PostgreSQL."""
        return q.range_query(
            self.table,
            self.security_id,
            lo,
            hi,
            source=self.source,
            timeframe=self.timeframe,
            contributor=self.contributor,
        )

    def equal(self) -> dict[str, str]:
        """The column filters, for archived files."""
        filters = {"source": self.source, "timeframe": self.timeframe, "contributor": self.contributor}
        return {name: value for name, value in filters.items() if value is not None}


def slices(table: pa.Table, chunk_bytes: int) -> Iterator[pa.Table]:
    """``table`` in pieces of about ``chunk_bytes`` (of Arrow memory)."""
    rows = max(1, table.num_rows * chunk_bytes // max(table.nbytes, 1))
    for offset in range(0, table.num_rows, rows):
        yield table.slice(offset, rows)


def in_time_order(table: pa.Table) -> bool:
    ts = table["ts"].combine_chunks()
    return len(ts) < 2 or bool(pc.all(pc.greater_equal(ts[1:], ts[:-1])).as_py())


class ReadOptions(TypedDict, total=False):
    """Filters of a read: one source, the listing venue of the symbol, a bar timeframe, a quote contributor."""

    source: str | None
    exchange: str | None
    timeframe: str | None
    contributor: str | None


def check_timeframe(timeframe: Any) -> str:
    return check_choice(timeframe, TIMEFRAMES, "timeframe")


def check_symbols(symbols: Any) -> list[str]:
    if isinstance(symbols, str) or not isinstance(symbols, Sequence) or not symbols:
        raise ValidationError("symbols must be a non-empty list of symbols")
    return [check_symbol(s) for s in symbols]


def to_utc(value: Any, name: str) -> datetime:
    """A datetime (aware), a date (midnight UTC) or ISO 8601 text as an aware UTC datetime; naive times are
    refused (tradedb does not guess a zone)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValidationError(f"{name} {value.isoformat()} has no time zone: pass an aware datetime")
        return value.astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(), UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValidationError(f"{name} {value!r} is not a time (ISO 8601 with a zone)") from None
        return to_utc(parsed, name)
    raise ValidationError(f"{name} must be a datetime, a date or ISO 8601 text, not {type(value).__name__}")


def check_range(start: Any, end: Any) -> tuple[datetime, datetime]:
    """[start, end) as aware UTC datetimes; end must come after start."""
    lo, hi = to_utc(start, "start"), to_utc(end, "end")
    if hi <= lo:
        raise ValidationError(f"end {hi.isoformat()} is not after start {lo.isoformat()} (start must be before end)")
    return lo, hi


# --- output ---------------------------------------------------------------------------------------------------


def schema(table: str) -> pa.Schema:
    """The Arrow schema of a table's read columns (what its binary COPY decodes into)."""
    return pa.schema([(n, _TYPES[n]) for n in q.READ_COLUMNS[table]])


def check_chunk_bytes(chunk_bytes: object) -> int:
    if isinstance(chunk_bytes, bool) or not isinstance(chunk_bytes, int) or chunk_bytes < 1024:
        raise ValidationError(f"chunk_bytes {chunk_bytes!r}: expected a whole number of bytes, at least 1024")
    return chunk_bytes


def id_array(ids: Iterable[int]) -> str:
    """Security ids as a PostgreSQL array literal."""
    return "{" + ",".join(map(str, map(int, ids))) + "}"


def missing_ids(ids: Iterable[int], rows: Sequence[Sequence[Any]]) -> list[int]:
    found = {row[0] for row in rows}
    return [i for i in ids if i not in found]


def kept_quotes(rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """From LAST_QUOTES rows, the newest kept quote of each security whose every source agrees with coverage
    (kept ts = coverage's last ts), as LATEST_QUOTES rows; the other securities are left to the probes."""
    newest: dict[int, Sequence[Any]] = {}
    disagree: set[int] = set()
    for row in rows:
        security_id = row[0]
        if not row[7]:  # no kept quote, or not the one coverage says is last
            disagree.add(security_id)
            continue
        kept = newest.get(security_id)
        if kept is None or row[1] > kept[1]:
            newest[security_id] = row
    return [tuple(row[:7]) for security_id, row in newest.items() if security_id not in disagree]


def latest_by_symbol(ids: Mapping[str, int], rows: Sequence[Sequence[Any]]) -> dict[str, dict[str, Any] | None]:
    """Rows of LATEST_QUOTES (tuples) as {symbol: quote or None}, in the order of ``ids``."""
    by_id = {row[0]: row for row in rows}
    out: dict[str, dict[str, Any] | None] = {}
    for symbol, security_id in ids.items():
        row = by_id.get(security_id)
        if row is None or row[1] is None:
            out[symbol] = None
            continue
        # A dict display, not dict(zip(fields, row)): five times faster, and 500 of them made up most of the
        # call's client time. The unpacking fails loudly if a statement's columns change.
        sid, ts, bid, ask, bid_size, ask_size, source = row
        out[symbol] = {
            "symbol": symbol,
            "security_id": sid,
            "ts": ts,
            "bid": bid,
            "ask": ask,
            "bid_size": bid_size,
            "ask_size": ask_size,
            "source": source,
        }
    return out


# --- derived data ---------------------------------------------------------------------------------------------


def aggregate_params(
    source_table: str, timeframe: str, start: Any, end: Any, *, source: str, target_source: str | None
) -> dict[str, Any]:
    """Check what ``aggregate_bars`` was asked; return the parameters (less ``ids``) of its statements."""
    check_choice(source_table, ("market_trades", "quotes"), "source_table")
    check_timeframe(timeframe)
    lo, hi = check_range(start, end)
    check_source(source)
    check_source(target_source or source)
    return {
        "step": STEPS.get(timeframe),
        "origin": ORIGIN,
        "start": lo,
        "end": hi,
        "source": source,
        "target_source": target_source or source,
        "timeframe": timeframe,
    }


def aggregate_statements(source_table: str, timeframe: str, *, archived: bool, distributed: bool) -> list[sql.Composed]:
    """The statements that compute and store bars (checked by ``aggregate_params``), run in order in one
    transaction; the one that returns a row returns the bars stored. ``archived``: from the table and the archived
    rows staged in ``archived_rows``; ``distributed``: on Citus (see ``COUNT_COMPUTED``)."""
    select = q.AGGREGATE_TRADES if source_table == "market_trades" else q.AGGREGATE_QUOTES
    if archived:
        select = q.with_archived(select, source_table)
    if timeframe == "1mo":
        select = select.replace("date_bin(%(step)s::interval, ts, %(origin)s::timestamptz)", q.MONTH_BUCKET)
    if distributed:
        stage = sql.SQL(q.STAGE_COMPUTED).format(select=sql.SQL(select))
        return [stage, q.COUNT_COMPUTED, q.STORE_COMPUTED]
    return [q.store_bars(select)]


def month_span(start: datetime, end: datetime) -> pa.Table:
    """A table of the month starts in [start, end) (to create the bars partitions a computation needs)."""
    months = []
    current = start.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    while current < end:
        months.append(current)
        current = current.replace(year=current.year + current.month // 12, month=current.month % 12 + 1)
    return pa.table({"ts": pa.array(months, pa.timestamp("us", tz="UTC"))})


#: How a cash dividend ``d`` adjusts the prices before its ex-date (see ``adjusted_bars``).
DIVIDEND_METHODS = ("previous_close", "ex_close")


def adjust(table: pa.Table, actions: list[dict[str, Any]], dividend_method: str = "previous_close") -> pa.Table:
    """Apply splits and dividends backwards to bars (see ``adjusted_bars``); adds ``factor``."""
    check_choice(dividend_method, DIVIDEND_METHODS, "dividend_method")
    n = table.num_rows
    if n == 0:
        return table.append_column("factor", pa.array([], pa.float64()))
    days = np.array([t.date() for t in table["ts"].to_pylist()], dtype="datetime64[D]")
    close = table["close"].to_numpy(zero_copy_only=False)
    price_factor = np.ones(n)
    volume_factor = np.ones(n)
    for action in actions:
        ex = np.datetime64(action["ex_date"], "D")
        before = days < ex
        if not before.any():
            continue
        value = float(action["value"])
        if action["kind"] in ("split", "reverse_split"):
            price_factor[before] /= value
            volume_factor[before] *= value
        elif dividend_method == "previous_close":
            # The close of the last bar before the ex-date: given with the action (read outside the window when it
            # lies there), else the last of the window's.
            prev = action.get("close_before")
            prev = float(prev) if prev is not None else float(close[int(np.flatnonzero(before)[-1])])
            if prev > value:
                price_factor[before] *= 1.0 - value / prev
        else:
            ex_close = action.get("close_from")
            if ex_close is None:
                on_or_after = np.flatnonzero(~before)
                ex_close = close[int(on_or_after[0])] if on_or_after.size else None
            if ex_close is not None:  # the first session on or after the ex-date
                price_factor[before] *= float(ex_close) / (float(ex_close) + value)
    columns = {name: table[name] for name in table.column_names}
    for name in ("open", "high", "low", "close", "vwap"):
        columns[name] = pa.array(table[name].to_numpy(zero_copy_only=False) * price_factor, pa.float64())
    columns["volume"] = pa.array(table["volume"].to_numpy(zero_copy_only=False) * volume_factor, pa.float64())
    columns["factor"] = pa.array(price_factor, pa.float64())
    return pa.table(columns)


def check_actions(rows: list[Any]) -> list[dict[str, Any]]:
    kinds = ("dividend", "special_dividend", "split", "reverse_split")
    checked = []
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise ValidationError(f"corporate action {i}: must be a dict")
        where = str(row.get("line") or f"corporate action {i}")
        if "symbol" not in row and "security_id" not in row:
            raise ValidationError(f"{where}: needs symbol or security_id")
        check_choice(str(row.get("kind")), kinds, f"{where}: kind")
        ex_date = row.get("ex_date")
        if not isinstance(ex_date, date):
            raise ValidationError(f"{where}: ex_date must be a date")
        try:
            value = Decimal(str(row.get("value")))
        except ArithmeticError as exc:
            raise ValidationError(f"{where}: value must be a number") from exc
        if not value.is_finite() or value <= 0:
            raise ValidationError(f"{where}: value must be positive")
        day = ex_date.date() if isinstance(ex_date, datetime) else ex_date
        checked.append({**row, "ex_date": day, "value": value})
    return checked


# --- gaps -----------------------------------------------------------------------------------------------------


def expected_step(expected: timedelta | str | None, timeframe: str | None) -> timedelta:
    if isinstance(expected, timedelta):
        if expected <= timedelta(0):
            raise ValidationError("expected must be positive")
        return expected
    if isinstance(expected, str):
        step = parse_duration(expected) if expected.strip() == expected else None
        if step is None:
            raise ValidationError(f"expected must look like 30s, 5m, 1h or 1d; got {expected!r}")
        return step
    if timeframe in STEPS:
        return STEPS[timeframe]
    raise ValidationError("pass expected= (the longest normal interval between rows, e.g. '1m')")


def _sessions(name: str, first: date, last: date) -> list[date]:
    """The sessions of exchange calendar ``name`` between two dates (inclusive)."""
    try:
        import exchange_calendars
    except ImportError as exc:
        raise ConfigError("calendar= needs exchange_calendars: pip install 'tradedb[calendars]'") from exc
    # exchange_calendars trips over pandas deprecations it has not caught up with; they are not ours to show.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            cal = exchange_calendars.get_calendar(name)
        except exchange_calendars.errors.InvalidCalendarName as exc:
            raise ValidationError(f"unknown exchange calendar {name!r} (e.g. XNYS, XNAS, XLON)") from exc
        lo = max(first, cal.first_session.date())
        hi = min(last, cal.last_session.date())
        if lo > hi:
            return []
        return [d.date() for d in cal.sessions_in_range(lo.isoformat(), hi.isoformat())]


def missing_sessions(present: list[date], start: datetime, end: datetime, calendar: str | None) -> list[dict[str, Any]]:
    """Sessions in [start, end) without a row: exchange sessions from ``calendar``, else weekdays."""
    first, last = start.date(), (end - timedelta(microseconds=1)).date()
    if calendar is not None:
        expected = _sessions(calendar, first, last)
    else:
        expected = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        expected = [d for d in expected if d.weekday() < 5]
    have = set(present)
    return [{"session": d} for d in expected if d not in have]


def quality_params(
    table: str | None, source: str | None, check_type: str | None, since: datetime | date | None, limit: int
) -> dict[str, Any]:
    if table is not None:
        check_table(table)
    if not isinstance(limit, int) or limit < 1:
        raise ValidationError("limit must be a positive integer")
    lo = to_utc(since, "since") if since is not None else datetime(1970, 1, 1, tzinfo=UTC)
    return {"table": table, "source": source, "check_type": check_type, "since": lo, "limit": limit}

"""Market data logic without I/O: datasets, input to Arrow, vectorised quality checks, binary COPY encoding.

Shared by the async and sync ``db.market_data``. Every check runs on whole columns (Arrow compute / NumPy); per-row
Python runs only for rows that fail a check (to describe them) and for inputs given as Python rows.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tradedb.errors import ValidationError
from tradedb.partitions import PartitionSpec, next_start, partition_name

OnConflict = Literal["append", "skip", "replace"]
Policy = Literal["reject", "quarantine", "log"]
ON_CONFLICT: tuple[str, ...] = ("append", "skip", "replace")
POLICIES: tuple[str, ...] = ("reject", "quarantine", "log")
DEFAULT_BATCH_ROWS = 100_000
MAX_SOURCE_LENGTH = 32
#: Findings that describe a row the table cannot hold: never written, whatever the policy.
FAIL = "fail"
#: Findings a row may be written with (under the ``log`` policy).
WARNING = "warning"

_EPOCH_2000_US = 946_684_800_000_000  # PostgreSQL's binary timestamps count microseconds from 2000-01-01
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" * 2
_COPY_TRAILER = b"\xff\xff"
_TS_TYPE = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class Field:
    """One data column of a market-data table (besides ts, security_id and source)."""

    name: str
    kind: Literal["float", "int", "text"]
    required: bool = False
    #: Allowed values of a text column.
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Dataset:
    """A market-data table as the writers see it."""

    name: str
    table: str
    fields: tuple[Field, ...]
    prices: tuple[str, ...] = ()
    sizes: tuple[str, ...] = ()
    #: Sizes that must be > 0 (not just >= 0).
    positive_sizes: tuple[str, ...] = ()
    #: Columns that identify a row besides security_id/source/ts (bars: timeframe). Keyed tables cannot hold two
    #: rows with the same key, so a duplicate key in a batch is a failure, not a warning.
    key: tuple[str, ...] | None = None

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def copy_columns(self) -> tuple[str, ...]:
        """Table columns in the order the writers send them (``source`` last: one constant per call)."""
        return (*self.data_columns, "source")

    @property
    def data_columns(self) -> tuple[str, ...]:
        return ("ts", "security_id", *self.field_names)

    @property
    def timeframe_column(self) -> str:
        """The coverage table's timeframe expression for this table."""
        return "timeframe" if self.name == "bars" else "''"


TIMEFRAME_FIELD = Field("timeframe", "text", required=True)
QUOTES = Dataset(
    "quotes",
    "quotes",
    (Field("bid", "float"), Field("ask", "float"), Field("bid_size", "float"), Field("ask_size", "float")),
    prices=("bid", "ask"),
    sizes=("bid_size", "ask_size"),
)
TRADES = Dataset(
    "trades",
    "market_trades",
    (
        Field("price", "float", required=True),
        Field("size", "float", required=True),
        Field("trade_id", "text"),
        Field("aggressor_side", "text", choices=("buy", "sell")),
    ),
    prices=("price",),
    positive_sizes=("size",),
)
BARS = Dataset(
    "bars",
    "bars",
    (
        TIMEFRAME_FIELD,
        Field("open", "float", required=True),
        Field("high", "float", required=True),
        Field("low", "float", required=True),
        Field("close", "float", required=True),
        Field("volume", "float", required=True),
        Field("trade_count", "int"),
        Field("vwap", "float"),
    ),
    prices=("open", "high", "low", "close", "vwap"),
    sizes=("volume", "trade_count"),
    key=("timeframe",),
)
BOOK_EVENTS = Dataset(
    "order_book_events",
    "order_book_events",
    (
        Field(
            "event_type",
            "text",
            required=True,
            choices=("new", "modify", "cancel", "execute", "hidden_execute", "halt", "clear", "trade"),
        ),
        Field("order_ref", "text"),
        Field("side", "text", choices=("buy", "sell")),
        Field("price", "float"),
        Field("size", "float"),
        Field("sequence", "int"),
    ),
    prices=("price",),
    sizes=("size",),
)
DATASETS: dict[str, Dataset] = {d.name: d for d in (QUOTES, TRADES, BARS, BOOK_EVENTS)}
#: Table name -> dataset (``market_trades`` -> trades).
BY_TABLE: dict[str, Dataset] = {d.table: d for d in DATASETS.values()}


def check_choice(value: str, choices: Sequence[str], what: str) -> str:
    """Return ``value`` when it is one of ``choices``; else raise ValidationError naming them."""
    if value not in choices:
        raise ValidationError(f"{what} must be one of {', '.join(choices)}; got {value!r}")
    return value


def check_source(source: Any) -> str:
    """Validate the ``source`` of a write (vendor or feed name)."""
    if not isinstance(source, str) or not source.strip() or len(source) > MAX_SOURCE_LENGTH:
        raise ValidationError(f"source must be a non-empty string of at most {MAX_SOURCE_LENGTH} characters")
    return source


def check_writers(writers: Any) -> int:
    if not isinstance(writers, int) or isinstance(writers, bool) or not 1 <= writers <= 16:
        raise ValidationError(f"writers must be an integer from 1 to 16; got {writers!r}")
    return writers


def check_batch_rows(batch_rows: Any) -> int:
    if not isinstance(batch_rows, int) or isinstance(batch_rows, bool) or batch_rows < 1:
        raise ValidationError(f"batch_rows must be a positive integer; got {batch_rows!r}")
    return batch_rows


# --- input to Arrow -------------------------------------------------------------------------------------------


def _module(data: Any) -> str:
    return type(data).__module__.split(".")[0]


def input_columns(dataset: Dataset) -> tuple[str, ...]:
    """The column order of rows given as tuples: ts, symbol or security_id, then the dataset's fields."""
    return ("ts", "security", *dataset.field_names)


def iter_tables(data: Any, dataset: Dataset, batch_rows: int) -> Iterator[pa.Table]:
    """Yield ``data`` as Arrow tables of at most ``batch_rows`` rows.

    Accepts a pyarrow Table, RecordBatch or RecordBatchReader (streamed), a pandas or polars DataFrame, or an
    iterable of tuples, dicts or dataclass instances (read ``batch_rows`` at a time).
    """
    if isinstance(data, pa.Table):
        # Slices, not to_batches(): a batch has exactly batch_rows rows whatever the table's chunks are.
        yield from (data.slice(start, batch_rows) for start in range(0, data.num_rows, batch_rows))
        return
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
        yield from iter_tables(data, dataset, batch_rows)
        return
    if isinstance(data, pa.RecordBatchReader):
        for batch in data:
            yield from iter_tables(pa.Table.from_batches([batch]), dataset, batch_rows)
        return
    module = _module(data)
    if module == "pandas" and hasattr(data, "columns"):
        try:
            table = pa.Table.from_pandas(data, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise ValidationError(f"cannot read the DataFrame: {exc}") from exc
        yield from iter_tables(table, dataset, batch_rows)
        return
    if module == "polars" and hasattr(data, "to_arrow"):
        yield from iter_tables(data.to_arrow(), dataset, batch_rows)
        return
    if isinstance(data, (str, bytes, Mapping)) or not isinstance(data, Iterable):
        kind = type(data).__name__
        raise ValidationError(
            f"data must be rows (tuples, dicts or dataclasses), a DataFrame or an Arrow table; got {kind}"
        )
    chunk: list[Any] = []
    for row in data:
        chunk.append(row)
        if len(chunk) == batch_rows:
            yield rows_to_table(chunk, dataset)
            chunk = []
    if chunk:
        yield rows_to_table(chunk, dataset)


def rows_to_table(rows: list[Any], dataset: Dataset) -> pa.Table:
    """Turn Python rows (tuples, dicts or dataclass instances, not mixed) into an Arrow table."""
    first = rows[0]
    if dataclasses.is_dataclass(first) and not isinstance(first, type):
        rows = [dataclasses.asdict(r) for r in rows]
        first = rows[0]
    if isinstance(first, Mapping):
        names = list(first.keys())
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping) or row.keys() != first.keys():
                raise ValidationError(f"row {i}: every dict row must have the same keys as the first ({names})")
        columns = {name: [r[name] for r in rows] for name in names}
    elif isinstance(first, (tuple, list)):
        order = input_columns(dataset)
        width = len(first)
        if not 2 <= width <= len(order):
            raise ValidationError(f"tuple rows have the fields {', '.join(order)} (at least ts and security)")
        for i, row in enumerate(rows):
            if not isinstance(row, (tuple, list)) or len(row) != width:
                raise ValidationError(f"row {i}: every tuple row must have {width} fields, like the first")
        columns = {name: [r[j] for r in rows] for j, name in enumerate(order[:width])}
        security = columns.pop("security")
        kind = "symbol" if all(isinstance(v, str) for v in security) else "security_id"
        columns = {"ts": columns.pop("ts"), kind: security, **columns}
    else:
        raise ValidationError(f"rows must be tuples, dicts or dataclass instances; got {type(first).__name__}")
    arrays = {}
    for name, values in columns.items():
        try:
            arrays[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
            raise ValidationError(f"column {name!r}: {_arrow_message(exc)}") from exc
    return pa.table(arrays)


def _arrow_message(exc: BaseException | None) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "tz-aware" in text or "naive" in text.lower():
        return "mixes time-zone-aware and naive timestamps"
    return text


# --- normalisation --------------------------------------------------------------------------------------------


def timestamps(column: pa.ChunkedArray | pa.Array, tz: str | None) -> pa.Array:
    """Return ``column`` as timestamp[us, UTC]; naive times need ``tz`` (the source's zone, e.g. "Etc/GMT+5")."""
    col = _single(column)
    kind = col.type
    if kind == _TS_TYPE:
        return col
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        col = _parse_times(col)
        kind = col.type
    if pa.types.is_date(kind):
        # A date is a session date, not an instant: daily bars are labelled 00:00 UTC of their date, whatever
        # the venue's zone (so that date_bin buckets and session calendars line up).
        return col.cast(pa.timestamp("us")).cast(_TS_TYPE)
    if not pa.types.is_timestamp(kind):
        raise ValidationError(f"column 'ts' must hold times (timestamps or ISO 8601 text), not {kind}")
    if kind.tz is None:
        if tz is None:
            raise ValidationError(
                "column 'ts' has times without a time zone (naive): pass the source's time zone, e.g. tz='UTC' "
                "or tz='America/New_York' (tradedb does not guess)"
            )
        try:
            col = pc.assume_timezone(col, timezone=tz, ambiguous="raise", nonexistent="raise")
        except (pa.ArrowInvalid, ValueError) as exc:
            raise ValidationError(f"column 'ts' cannot be read in time zone {tz!r}: {_arrow_message(exc)}") from exc
    # Sub-microsecond precision (nanosecond feeds) is truncated: PostgreSQL stores microseconds.
    return col.cast(pa.timestamp(kind.unit, tz="UTC")).cast(_TS_TYPE, safe=False)


def _parse_times(col: pa.Array) -> pa.Array:
    """ISO 8601 text to timestamps: with a zone when the text has one (nanosecond text parses too)."""
    error: Exception | None = None
    for kind in (pa.timestamp("ns", tz="UTC"), _TS_TYPE, pa.timestamp("ns"), pa.timestamp("us")):
        try:
            return col.cast(kind)
        except pa.ArrowInvalid as exc:
            error = error or exc
    raise ValidationError(f"column 'ts': cannot read times: {_arrow_message(error)}")


def normalize(
    table: pa.Table,
    dataset: Dataset,
    *,
    tz: str | None,
    symbol: str | None,
    timeframe: str | None,
) -> pa.Table:
    """Return ``table`` with canonical columns and types: ts, symbol or security_id, the dataset's fields.

    Raises ValidationError for unknown or missing columns and uncastable types (before anything is written).
    """
    names = list(table.column_names)
    known = {"ts", "symbol", "security_id", *dataset.field_names}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValidationError(
            f"unknown column(s) {', '.join(map(repr, unknown))} for {dataset.name}; accepted: "
            f"{', '.join(sorted(known))}"
        )
    if "ts" not in names:
        raise ValidationError(f"{dataset.name} rows need a 'ts' column")
    out: dict[str, pa.Array] = {"ts": timestamps(table["ts"], tz)}
    n = table.num_rows
    if "security_id" in names and "symbol" in names:
        raise ValidationError("give either 'symbol' or 'security_id' per row, not both")
    if "security_id" in names:
        out["security_id"] = _cast(table["security_id"], pa.int64(), "security_id")
    elif "symbol" in names:
        out["symbol"] = _cast(table["symbol"], pa.string(), "symbol")
    elif symbol is not None:
        out["symbol"] = pa.array([symbol] * n, pa.string()) if n else pa.array([], pa.string())
    else:
        raise ValidationError("rows name no security: add a 'symbol' or 'security_id' column, or pass symbol=")
    for f in dataset.fields:
        if f.name in names:
            out[f.name] = _cast(table[f.name], _ARROW_TYPES[f.kind], f.name)
        elif f.name == "timeframe" and timeframe is not None:
            out[f.name] = pa.array([timeframe] * n, pa.string())
        elif f.required and f.name == "timeframe":
            raise ValidationError("bars need a timeframe: a 'timeframe' column or timeframe=")
        elif f.required:
            raise ValidationError(f"{dataset.name} rows need a {f.name!r} column")
        else:
            out[f.name] = pa.nulls(n, _ARROW_TYPES[f.kind])
    return pa.table(out)


_ARROW_TYPES = {"float": pa.float64(), "int": pa.int64(), "text": pa.string()}


def _single(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """One Arrow array (no copy when the column has a single chunk)."""
    if isinstance(column, pa.ChunkedArray):
        return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    return column


def _cast(column: pa.ChunkedArray, kind: pa.DataType, name: str) -> pa.Array:
    col = _single(column)
    if col.type == kind:
        return col
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    text = pa.types.is_string(col.type) or pa.types.is_large_string(col.type)
    if kind == pa.string() and not (text or pa.types.is_integer(col.type) or pa.types.is_null(col.type)):
        raise ValidationError(f"column {name!r} must be text, not {col.type}")
    try:
        return col.cast(kind)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ValidationError(f"column {name!r} cannot be read as {kind}: {_arrow_message(exc)}") from exc


# --- quality checks -------------------------------------------------------------------------------------------


@dataclass
class Findings:
    """What the checks found in one batch: per check type, a row mask and its status."""

    n: int
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)

    def add(self, check_type: str, mask: np.ndarray, status: str = FAIL) -> None:
        if not mask.any():
            return
        if check_type in self.masks:
            self.masks[check_type] = self.masks[check_type] | mask
        else:
            self.masks[check_type] = mask
            self.status[check_type] = status

    def bad(self, statuses: tuple[str, ...] = (FAIL, WARNING)) -> np.ndarray:
        """Rows with at least one finding of the given statuses."""
        mask = np.zeros(self.n, dtype=bool)
        for check_type, m in self.masks.items():
            if self.status[check_type] in statuses:
                mask |= m
        return mask

    def reasons(self, index: int) -> list[str]:
        return [t for t, m in self.masks.items() if m[index]]

    def counts(self) -> dict[str, int]:
        return {t: int(m.sum()) for t, m in self.masks.items()}


def _mask(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean Arrow array as a NumPy mask (null counts as False)."""
    return np.asarray(pc.fill_null(array, False).to_numpy(zero_copy_only=False), dtype=bool)


def check(table: pa.Table, dataset: Dataset, unknown: np.ndarray | None = None) -> Findings:
    """Run the vectorised quality checks of ``dataset`` on a normalised table (security_id resolved; ``unknown``
    marks rows whose symbol or id is not in the security master)."""
    findings = Findings(table.num_rows)
    if unknown is not None:
        findings.add("unknown_security", unknown)
    missing = _mask(table["ts"].is_null()) | _mask(table["security_id"].is_null())
    if unknown is not None:
        missing &= ~unknown
    for f in dataset.fields:
        if f.required:
            missing |= _mask(table[f.name].is_null())
    if dataset is QUOTES:
        missing |= _mask(pc.and_(table["bid"].is_null(), table["ask"].is_null()))
    findings.add("missing_value", missing)
    non_finite = np.zeros(table.num_rows, dtype=bool)
    for f in dataset.fields:
        if f.kind == "float":
            non_finite |= _mask(pc.invert(pc.is_finite(table[f.name])))
    findings.add("non_finite", non_finite)
    non_positive = np.zeros(table.num_rows, dtype=bool)
    for name in dataset.prices:
        non_positive |= _mask(pc.less_equal(table[name], 0))
    findings.add("non_positive_price", non_positive)
    negative = np.zeros(table.num_rows, dtype=bool)
    for name in dataset.sizes:
        negative |= _mask(pc.less(table[name], 0))
    for name in dataset.positive_sizes:
        negative |= _mask(pc.less_equal(table[name], 0))
    findings.add("negative_size", negative)
    for f in dataset.fields:
        if f.choices:
            outside = pc.and_(table[f.name].is_valid(), pc.invert(pc.is_in(table[f.name], pa.array(f.choices))))
            findings.add("invalid_value", _mask(outside))
    if dataset is QUOTES:
        findings.add("crossed_quote", _mask(pc.greater(table["bid"], table["ask"])))
    if dataset is BARS:
        high, low, open_, close = table["high"], table["low"], table["open"], table["close"]
        bad = pc.or_(
            pc.or_(
                pc.less(high, pc.max_element_wise(open_, close)), pc.greater(low, pc.min_element_wise(open_, close))
            ),
            pc.less(high, low),
        )
        # A bar missing any of its four prices cannot be consistent either (so both findings name such rows).
        incomplete = pc.or_(pc.or_(open_.is_null(), high.is_null()), pc.or_(low.is_null(), close.is_null()))
        findings.add("ohlc_violation", _mask(bad) | _mask(incomplete))
    _check_duplicates(table, dataset, findings)
    return findings


def _check_duplicates(table: pa.Table, dataset: Dataset, findings: Findings) -> None:
    """Flag every repeat of a row already in the batch: exact repeats, or key repeats on keyed tables.

    The common case (no repeated security_id and time) costs one sort of an int64 key; only candidate rows are
    compared in full.
    """
    n = table.num_rows
    if n < 2:
        return
    ts = pc.fill_null(table["ts"].cast(pa.int64()), 0).to_numpy()
    sec = pc.fill_null(table["security_id"], 0).to_numpy()
    key = ts * np.int64(1_000_003) + sec  # wraps on overflow: a hash, verified below
    sorted_key = np.sort(key)
    repeated = sorted_key[1:][sorted_key[1:] == sorted_key[:-1]]
    if repeated.size == 0:
        return
    candidates = np.flatnonzero(np.isin(key, repeated))
    columns = ["security_id", "ts", *(dataset.key if dataset.key is not None else dataset.field_names)]
    seen: dict[tuple[Any, ...], int] = {}
    mask = np.zeros(n, dtype=bool)
    values = table.select(columns).take(pa.array(candidates)).to_pylist()
    for index, row in zip(candidates.tolist(), values, strict=True):
        identity = tuple(_hashable(row[c]) for c in columns)
        if identity in seen:
            mask[index] = True
        else:
            seen[identity] = index
    findings.add("duplicate", mask, FAIL if dataset.key is not None else WARNING)


def _hashable(value: Any) -> Any:
    # NaN != NaN: make two NaNs compare equal so that repeated rows with NaN are still repeats.
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    return value


def describe(table: pa.Table, findings: Findings, rows: np.ndarray, offset: int) -> list[dict[str, Any]]:
    """Return, for each row index in ``rows``, its reasons and values (JSON-ready), numbered from ``offset``."""
    out = []
    values = table.take(pa.array(rows, pa.int64())).to_pylist() if rows.size else []
    for index, row in zip(rows.tolist(), values, strict=True):
        out.append({"row": offset + index, "reasons": findings.reasons(index), "values": _json_row(row)})
    return out


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, datetime):
            out[key] = value.astimezone(UTC).isoformat()
        elif isinstance(value, float) and not math.isfinite(value):
            out[key] = str(value)
        else:
            out[key] = value
    return out


def reject_message(dataset: Dataset, described: list[dict[str, Any]], total: int) -> str:
    """The error of the ``reject`` policy: how many rows failed, and the first few with their reasons."""
    shown = "; ".join(f"row {d['row']} ({', '.join(d['reasons'])}): {_short(d['values'])}" for d in described[:5])
    return f"{total} {dataset.name} row(s) failed quality checks, nothing was written. First: {shown}"


def _short(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items() if v is not None)


# --- binary COPY ----------------------------------------------------------------------------------------------


def encode_copy(
    table: pa.Table, columns: Sequence[str], constants: Mapping[str, str] | None = None
) -> list[memoryview]:
    """Encode ``table``'s ``columns`` (and constant text ``constants``) as a PostgreSQL binary COPY stream.

    Rows are grouped by their shape (which values are NULL, how long each text is); each group is one NumPy
    structured array filled column by column, so the cost is a few vectorised copies per column, not per row.
    Row order is not kept (COPY does not need it). Returns the stream as buffers, written one after the other
    (joining them would copy every byte once more).
    """
    constants = constants or {}
    n = table.num_rows
    encoders = [_Column.of(table[c]) for c in columns]
    fixed = [(name, value.encode()) for name, value in constants.items()]
    nfields = len(encoders) + len(fixed)
    key = np.zeros(n, dtype=np.int64)
    radix = 1
    for enc in encoders:
        for part, size in enc.shape_parts():
            if radix * size >= 2**62:
                raise ValidationError("text values vary too much in length to encode in one batch")  # pragma: no cover
            key = key * size + part
            radix *= size
    chunks = [memoryview(_COPY_HEADER)]
    if n:
        if radix == 1 or key.min() == key.max():
            groups = [np.arange(n)]
        else:
            order = np.argsort(key, kind="stable")
            sorted_key = key[order]
            cuts = np.flatnonzero(sorted_key[1:] != sorted_key[:-1]) + 1
            groups = np.split(order, cuts)
        for idx in groups:
            chunks.append(_encode_group(encoders, fixed, nfields, idx))
    chunks.append(memoryview(_COPY_TRAILER))
    return chunks


@dataclass
class _Column:
    kind: str  # "int8" | "float8" | "ts" | "text" | "int"
    array: pa.Array
    valid: np.ndarray | None
    lengths: np.ndarray | None = None

    @classmethod
    def of(cls, column: pa.ChunkedArray | pa.Array) -> _Column:
        array = _single(column)
        valid = None if array.null_count == 0 else _mask(array.is_valid())
        t = array.type
        if pa.types.is_timestamp(t):
            return cls("ts", array, valid)
        if pa.types.is_floating(t):
            return cls("float8", array, valid)
        if pa.types.is_integer(t):
            return cls("int8", array, valid)
        if pa.types.is_string(t):
            lengths = pc.fill_null(pc.binary_length(array), 0).to_numpy().astype(np.int64)
            return cls("text", array, valid, lengths)
        raise TypeError(f"cannot COPY a column of type {t}")  # pragma: no cover - normalize() casts

    def shape_parts(self) -> list[tuple[np.ndarray, int]]:
        parts: list[tuple[np.ndarray, int]] = []
        if self.valid is not None:
            parts.append((self.valid.astype(np.int64), 2))
        if self.lengths is not None:
            top = int(self.lengths.max()) if self.lengths.size else 0
            if top:
                parts.append((self.lengths, top + 1))
        return parts

    def dtype(self, idx: np.ndarray) -> tuple[bool, str | None, int]:
        """For the rows ``idx`` (one shape): (valid, NumPy type of the value, byte width)."""
        first = int(idx[0])
        if self.valid is not None and not self.valid[first]:
            return False, None, 0
        if self.kind == "text":
            assert self.lengths is not None
            width = int(self.lengths[first])
            return True, (f"S{width}" if width else None), width
        return True, ">i8" if self.kind in ("ts", "int8") else ">f8", 8

    def values(self, idx: np.ndarray, width: int) -> np.ndarray:
        taken = self.array.take(pa.array(idx)) if len(idx) != len(self.array) else self.array
        if self.kind == "text":
            offsets = np.frombuffer(taken.buffers()[1], dtype=np.int32, count=len(taken) + 1, offset=taken.offset * 4)
            data = taken.buffers()[2]
            return np.frombuffer(data, dtype=f"S{width}", count=len(taken), offset=int(offsets[0]))
        if self.kind == "ts":
            micros: np.ndarray = pc.fill_null(taken.cast(pa.int64()), 0).to_numpy()
            return micros - _EPOCH_2000_US
        values: np.ndarray = pc.fill_null(taken, 0).to_numpy()
        return values


def _encode_group(encoders: list[_Column], fixed: list[tuple[str, bytes]], nfields: int, idx: np.ndarray) -> memoryview:
    layout: list[tuple[str, str]] = [("n", ">i2")]
    plans = []
    for j, enc in enumerate(encoders):
        valid, kind, width = enc.dtype(idx)
        layout.append((f"l{j}", ">i4"))
        if kind is not None:
            layout.append((f"v{j}", kind))
        plans.append((j, enc, valid, kind, width))
    for j, (_, value) in enumerate(fixed):
        layout.append((f"cl{j}", ">i4"))
        if value:
            layout.append((f"cv{j}", f"S{len(value)}"))
    rows = np.empty(len(idx), dtype=np.dtype(layout))
    rows["n"] = nfields
    for j, enc, valid, kind, width in plans:
        rows[f"l{j}"] = width if valid else -1
        if kind is not None:
            rows[f"v{j}"] = enc.values(idx, width)
    for j, (_, value) in enumerate(fixed):
        rows[f"cl{j}"] = len(value)
        if value:
            rows[f"cv{j}"] = value
    return rows.data.cast("B")


# --- coverage -------------------------------------------------------------------------------------------------


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


def ts_range(table: pa.Table) -> tuple[datetime, datetime] | None:
    """The first and last time of a batch (None when empty)."""
    if not table.num_rows:
        return None
    bounds = pc.min_max(table["ts"])
    return bounds["min"].as_py(), bounds["max"].as_py()


def partition_starts(table: pa.Table, step_us: int | None) -> np.ndarray:
    """Distinct partition starts (µs since the epoch) a batch's rows fall into, for fixed-width partitions."""
    ts = pc.fill_null(table["ts"].cast(pa.int64()), 0).to_numpy()
    assert step_us is not None
    return np.unique(ts - ts % step_us)


def month_starts(table: pa.Table) -> list[datetime]:
    """Distinct month starts a batch's rows fall into."""
    months = pc.unique(pc.floor_temporal(table["ts"], unit="month"))
    return sorted(m.as_py() for m in months if m.is_valid)


# --- planning a write -----------------------------------------------------------------------------------------

Progress = Callable[[int], None]


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


@dataclass
class Batch:
    """One normalised, resolved and checked batch; ``offset`` numbers its rows within the whole call."""

    table: pa.Table
    findings: Findings
    offset: int


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
        """Parameters of the quality-log insert (one row per finding row)."""
        from psycopg.types.json import Jsonb

        ids = [d["values"].get("security_id") for d in self.logged]
        times = [d["values"].get("ts") for d in self.logged]
        return (
            ids,
            [dataset.table] * len(self.logged),
            [self.source] * len(self.logged),
            [d["reasons"][0] for d in self.logged],
            self.status,
            times,
            [Jsonb(d) for d in self.logged],
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


@dataclass(frozen=True)
class Recipe:
    """Everything a write call decides once: what to check, how to resolve, how partitions are cut."""

    dataset: Dataset
    options: PrepareOptions
    source: str
    policy: str
    interval: timedelta | str


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
        if not resolved:
            names = [s for s in pc.unique(table["symbol"]).to_pylist() if s is not None]
            missing = [s for s in names if (options.exchange, s) not in symbols]
            if missing:
                return Cooked(table, offset, missing_symbols=missing)
        ids, unknown = map_symbols(table["symbol"], symbols, options.exchange)
        table = table.add_column(1, "security_id", ids)
    else:
        if not resolved:
            wanted = [i for i in pc.unique(table["security_id"]).to_pylist() if i is not None]
            absent = [i for i in wanted if i not in known_ids]
            if absent:
                return Cooked(table, offset, missing_ids=absent)
        unknown = unknown_ids(table["security_id"], set(known_ids))
    cooked = Cooked(table, offset)
    cooked.batch = Batch(table, check(table, dataset, unknown), offset)
    cooked.plan = plan = plan_batch(dataset, cooked.batch, recipe.source, recipe.policy)
    if plan.rows.num_rows:
        cooked.payload = encode_copy(plan.rows, dataset.data_columns, {"source": recipe.source})
        cooked.starts = needed_starts(plan.rows, recipe.interval)
        cooked.coverage = coverage_params(dataset, plan.rows, recipe.source)
    return cooked


def names_in(items: Sequence[tuple[pa.Table, int]], options: PrepareOptions) -> tuple[list[str], list[int]]:
    """The distinct symbols and security ids an in-memory input names (to resolve them in one go)."""
    symbols: set[str] = set()
    ids: set[int] = set()
    for table, _ in items:
        try:
            if "symbol" in table.column_names:
                symbols.update(s for s in pc.unique(table["symbol"].cast(pa.string())).to_pylist() if s is not None)
            elif "security_id" in table.column_names:
                ids.update(i for i in pc.unique(table["security_id"].cast(pa.int64())).to_pylist() if i is not None)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue  # normalize() names the bad column when the batch is cooked
    if options.symbol is not None and not symbols and not ids:
        symbols.add(options.symbol)
    return sorted(symbols), sorted(ids)


def in_window_order(data: Any, dataset: Dataset) -> pa.Table:
    """An in-memory input as one Arrow table sorted by security and time (for ``replace``)."""
    table = pa.concat_tables(list(iter_tables(data, dataset, 1 << 62))) if not isinstance(data, pa.Table) else data
    keys = [k for k in ("security_id", "symbol", "timeframe", "ts") if k in table.column_names]
    try:
        return table.sort_by([(k, "ascending") for k in keys]) if keys else table
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return table  # unsortable columns: normalize() names them when the batch is read


def with_offsets(tables: Iterable[pa.Table]) -> Iterator[tuple[pa.Table, int]]:
    offset = 0
    for table in tables:
        yield table, offset
        offset += table.num_rows


def in_memory(data: Any) -> bool:
    """True when ``data`` is held whole in memory (so it can be checked whole before writing)."""
    if isinstance(data, (pa.Table, pa.RecordBatch, list, tuple)):
        return True
    return _module(data) in ("pandas", "polars") and hasattr(data, "columns")


def raise_if_rejected(dataset: Dataset, batch: Batch, *, written_before: int = 0) -> None:
    """The ``reject`` policy: raise ValidationError naming the first bad rows when a batch has any finding."""
    bad = np.flatnonzero(batch.findings.bad())
    if bad.size == 0:
        return
    described = describe(batch.table, batch.findings, bad[:5], batch.offset)
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
    logged = describe(batch.table, findings, flagged_idx, batch.offset)
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


def symbol_map(rows: list[dict[str, Any]], exchange: str | None) -> dict[tuple[str | None, str], int]:
    """Map (exchange, symbol) to security ids; a symbol listed on several venues needs ``exchange``."""
    found: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        found.setdefault(row["symbol"], []).append(row)
    out = {}
    for symbol, listings in found.items():
        if len(listings) > 1:
            venues = ", ".join(str(r["exchange_mic"]) for r in listings)
            raise ValidationError(f"symbol {symbol!r} is listed on several venues ({venues}): pass exchange=")
        out[(exchange, symbol)] = int(listings[0]["security_id"])
    return out


_SYMBOL = re.compile(r"[^\s]{1,32}")


def check_symbol(symbol: Any) -> str:
    if not isinstance(symbol, str) or not _SYMBOL.fullmatch(symbol):
        raise ValidationError(f"invalid symbol {symbol!r}: 1-32 characters without spaces")
    return symbol


def map_symbols(
    symbols: pa.Array, known: Mapping[tuple[str | None, str], int], exchange: str | None
) -> tuple[pa.Array, np.ndarray]:
    """Return the security ids of a symbol column (null where unknown) and the mask of unknown symbols."""
    names = [name for (venue, name) in known if venue == exchange]
    ids = pa.array([known[(exchange, name)] for name in names], pa.int64())
    index = pc.index_in(symbols, value_set=pa.array(names, pa.string()))
    resolved = pc.take(ids, index) if names else pa.nulls(len(symbols), pa.int64())
    unknown = _mask(pc.and_(symbols.is_valid(), resolved.is_null()))
    return resolved, unknown


def unknown_ids(ids: pa.Array, known: set[int]) -> np.ndarray:
    return _mask(pc.and_(ids.is_valid(), pc.invert(pc.is_in(ids, pa.array(sorted(known), pa.int64())))))


def coverage_params(dataset: Dataset, rows: pa.Table, source: str) -> dict[str, Any]:
    """Parameters of the coverage upsert for a batch appended as is (times as microseconds since the epoch)."""
    return {"table": dataset.table, "source": source, "rows": json.dumps(_coverage_entries(rows, dataset))}


def needed_starts(rows: pa.Table, interval: timedelta | str) -> list[datetime]:
    """The starts of the partitions a batch's rows fall into."""
    if interval == "month":
        return month_starts(rows)
    assert isinstance(interval, timedelta)
    step = int(interval.total_seconds() * 1_000_000)
    return [datetime.fromtimestamp(s / 1_000_000, UTC) for s in partition_starts(rows, step).tolist()]


def covered(start: datetime, known: Sequence[tuple[datetime, datetime]]) -> bool:
    return any(lo <= start < hi for lo, hi in known)


def bounds(rows: list[dict[str, Any]]) -> list[tuple[datetime, datetime]]:
    """The [lo, hi) ranges of a table's partitions (the default partition left out)."""
    far_past, far_future = datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)
    return [(r["lo"] or far_past, r["hi"] or far_future) for r in rows if not r["is_default"]]


def spec_for(table: Any, start: datetime, interval: timedelta | str) -> PartitionSpec:
    end = next_start(start, interval)
    return PartitionSpec(str(table.schema), table.name, partition_name(table.name, start, interval), start, end)

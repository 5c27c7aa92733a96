"""Market data logic without I/O: the datasets, argument checks, input to Arrow, normalisation, symbols.

Shared by the async and sync ``db.market_data``. Work runs on whole columns (Arrow compute / NumPy); per-row Python
runs only for inputs given as Python rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tradedb.columnar.binary_encode import mask, single
from tradedb.errors import ValidationError
from tradedb.reference.symbology import check_source
from tradedb.schema.data_ingestion import BOOK_EVENT_TYPES

OnConflict = Literal["append", "skip", "replace"]
Policy = Literal["reject", "quarantine", "log"]
ON_CONFLICT: tuple[str, ...] = ("append", "skip", "replace")
POLICIES: tuple[str, ...] = ("reject", "quarantine", "log")
DEFAULT_BATCH_ROWS = 100_000

_TS_TYPE = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class Field:
    """One data column of a market-data table (besides ts, security_id and source)."""

    name: str
    kind: Literal["float", "int", "text"]
    required: bool = False
    #: Allowed values of a text column.
    choices: tuple[str, ...] = ()
    #: The longest text the column holds (longer is an ``invalid_value`` finding).
    max_length: int | None = None


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


TIMEFRAME_FIELD = Field("timeframe", "text", required=True)
QUOTES = Dataset(
    "quotes",
    "quotes",
    (
        Field("bid", "float"),
        Field("ask", "float"),
        Field("bid_size", "float"),
        Field("ask_size", "float"),
        Field("contributor", "text", max_length=64),
    ),
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
            choices=BOOK_EVENT_TYPES,
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


def check_write_options(
    *,
    source: Any,
    on_conflict: Any = "append",
    policy: Any = "reject",
    batch_rows: Any = DEFAULT_BATCH_ROWS,
    writers: Any = 2,
    first_line: Any = None,
) -> None:
    """Validate a writer's options (what a CLI checks before it reads a file); raise ValidationError naming one."""
    check_source(source)
    check_writers(writers)
    check_choice(on_conflict, ON_CONFLICT, "on_conflict")
    check_choice(policy, POLICIES, "policy")
    check_batch_rows(batch_rows)
    check_first_line(first_line)


def check_first_line(first_line: Any) -> int | None:
    """Validate ``first_line`` (the file line of an input's first row), None when rows are not from a file."""
    if first_line is not None and (isinstance(first_line, bool) or not isinstance(first_line, int) or first_line < 1):
        raise ValidationError(f"first_line must be a positive integer, got {first_line!r}")
    return first_line


def check_writers(writers: Any) -> int:
    if not isinstance(writers, int) or isinstance(writers, bool) or not 1 <= writers <= 16:
        raise ValidationError(f"writers must be an integer from 1 to 16; got {writers!r}")
    return writers


def check_batch_rows(batch_rows: Any) -> int:
    if not isinstance(batch_rows, int) or isinstance(batch_rows, bool) or batch_rows < 1:
        raise ValidationError(f"batch_rows must be a positive integer; got {batch_rows!r}")
    return batch_rows


# --- input to Arrow -------------------------------------------------------------------------------------------


def module_of(data: Any) -> str:
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
    module = module_of(data)
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
    col = single(column)
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


def _cast(column: pa.ChunkedArray, kind: pa.DataType, name: str) -> pa.Array:
    col = single(column)
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


# --- symbols ------------------------------------------------------------------------------------------------


def symbol_map(rows: list[dict[str, Any]], exchange: str | None) -> dict[tuple[str | None, str], int]:
    """Map (exchange, symbol) to security ids; a symbol listed on several venues needs ``exchange``.

    A listing that trades wins over delisted ones of the same symbol (a ticker reused after a delisting); a
    symbol only delisted listings had resolves to one of those when there is only one.
    """
    found: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        found.setdefault(row["symbol"], []).append(row)
    out = {}
    for symbol, everything in found.items():
        listings = [r for r in everything if r.get("status") != "delisted"] or everything
        if len(listings) > 1:
            venues = ", ".join(str(r["exchange_mic"]) for r in listings)
            raise ValidationError(f"symbol {symbol!r} is listed on several venues ({venues}): pass exchange=")
        out[(exchange, symbol)] = int(listings[0]["security_id"])
    return out


def map_symbols(
    symbols: pa.Array, known: Mapping[tuple[str | None, str], int], exchange: str | None
) -> tuple[pa.Array, np.ndarray]:
    """Return the security ids of a symbol column (null where unknown) and the mask of unknown symbols."""
    names = [name for (venue, name) in known if venue == exchange]
    ids = pa.array([known[(exchange, name)] for name in names], pa.int64())
    index = pc.index_in(symbols, value_set=pa.array(names, pa.string()))
    resolved = pc.take(ids, index) if names else pa.nulls(len(symbols), pa.int64())
    unknown = mask(pc.and_(symbols.is_valid(), resolved.is_null()))
    return resolved, unknown


def unknown_ids(ids: pa.Array, known: set[int]) -> np.ndarray:
    return mask(pc.and_(ids.is_valid(), pc.invert(pc.is_in(ids, pa.array(sorted(known), pa.int64())))))

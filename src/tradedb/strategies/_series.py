"""A backtest's series (equity curve, trades, positions, simulated orders) as checked Arrow tables, and the hash
of their content. No I/O."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tradedb.columnar.binary_encode import single
from tradedb.errors import ValidationError

TS = pa.timestamp("us", tz="UTC")
SIDES = ("buy", "sell")


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # "ts" | "float" | "int" | "text"
    required: bool = True
    aliases: tuple[str, ...] = ()
    fill: float | str | None = None  # the value of a missing one (commission: 0, order_type: market)


@dataclass(frozen=True)
class Series:
    """One kind of series: its table, its columns in COPY order, and its time column."""

    name: str
    table: str
    columns: tuple[Column, ...]
    time: str
    security: bool  # has security_id (a symbol column is mapped to it)
    checked: bool = True  # False: values are left to the caller's checks (signals: findings under a policy)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


EQUITY = Series(
    "equity",
    "backtest_equity_curve",
    (
        Column("ts", "ts", aliases=("timestamp", "time", "date")),
        Column("equity", "float", aliases=("value",)),
        Column("cash", "float", False),
    ),
    "ts",
    False,
)
TRADES = Series(
    "trades",
    "backtest_trades",
    (
        Column("security_id", "int"),
        Column("side", "text"),
        Column("quantity", "float", aliases=("qty", "size")),
        Column("price", "float"),
        Column("commission", "float", False, fill=0.0),
        Column("slippage", "float", False),
        Column("pnl", "float", False),
        Column("executed_at", "ts", aliases=("ts", "timestamp", "time")),
        Column("order_id", "int", False),
    ),
    "executed_at",
    True,
)
POSITIONS = Series(
    "positions",
    "backtest_positions",
    (
        Column("security_id", "int"),
        Column("ts", "ts", aliases=("timestamp", "time")),
        Column("quantity", "float", aliases=("qty", "position")),
        Column("avg_price", "float", False),
        Column("market_value", "float", False),
    ),
    "ts",
    True,
)
SIGNALS = Series(
    "signals",
    "strategy_signals",
    (
        Column("ts", "ts", aliases=("timestamp", "time")),
        Column("instance_id", "int"),
        Column("security_id", "int"),
        Column("signal", "text", aliases=("side", "action")),
        Column("strength", "float", False),
        Column("confidence", "float", False),
        Column("price", "float", False),
        Column("quantity", "float", False),
    ),
    "ts",
    True,
    checked=False,
)
ORDERS = Series(
    "orders",
    "backtest_orders",
    (
        Column("order_id", "int"),
        Column("ts", "ts", aliases=("timestamp", "time", "created_at")),
        Column("security_id", "int"),
        Column("side", "text"),
        Column("order_type", "text", False, fill="market"),
        Column("quantity", "float", aliases=("qty", "size")),
        Column("limit_price", "float", False),
        Column("status", "text", False, fill="filled"),
    ),
    "ts",
    True,
)
_ARROW = {"ts": TS, "float": pa.float64(), "int": pa.int64(), "text": pa.string()}


def schema_of(series: Series) -> pa.Schema:
    return pa.schema([pa.field(c.name, _ARROW[c.kind]) for c in series.columns])


def chunks(data: Any, series: Series) -> Iterator[pa.Table]:
    """``data`` as Arrow tables: a pyarrow Table/RecordBatch/RecordBatchReader, a pandas or polars DataFrame, a
    dict of columns, a list of dict rows, or an iterator of any of these (streamed: one chunk at a time)."""
    if data is None:
        return
    table = as_table(data)
    if table is not None:
        yield table
        return
    if isinstance(data, pa.RecordBatchReader):
        for batch in data:
            yield pa.Table.from_batches([batch])
        return
    if isinstance(data, str | bytes) or not isinstance(data, Iterable):
        raise ValidationError(
            f"{series.name} must be an Arrow table, a DataFrame, a dict of columns, a list of dict rows or an "
            f"iterator of those; got {type(data).__name__}"
        )
    for part in data:
        chunk = as_table(part)
        if chunk is None:
            raise ValidationError(
                f"{series.name}: a streamed chunk must be a table or DataFrame, got {type(part).__name__}"
            )
        yield chunk


def as_table(data: Any) -> pa.Table | None:
    """``data`` as one table when it is one (in memory), else None (a stream)."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    module = type(data).__module__.split(".")[0]
    if module == "pandas" and hasattr(data, "columns"):
        try:
            return pa.Table.from_pandas(data, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise ValidationError(f"cannot read the DataFrame: {exc}") from exc
    if module == "polars" and hasattr(data, "to_arrow"):
        table: pa.Table = data.to_arrow()
        return table
    if isinstance(data, Mapping):
        try:
            return pa.table(dict(data))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
            raise ValidationError(f"cannot read the columns: {str(exc).splitlines()[0]}") from exc
    if isinstance(data, list) and (not data or isinstance(data[0], Mapping)):
        try:
            return pa.Table.from_pylist(data)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
            raise ValidationError(f"cannot read the rows: {str(exc).splitlines()[0]}") from exc
    return None


def normalize(table: pa.Table, series: Series, symbol_ids: Mapping[str, int] | None = None) -> pa.Table:
    """The columns of ``series`` with their types (aliases renamed; a ``symbol`` column mapped through
    ``symbol_ids``); typed errors name the column."""
    present = set(table.column_names)
    out: dict[str, pa.Array] = {}
    n = table.num_rows
    for col in series.columns:
        name = next((a for a in (col.name, *col.aliases) if a in present), None)
        if name is None and col.name == "security_id" and "symbol" in present:
            out[col.name] = _map_symbols(single(table["symbol"]), symbol_ids or {}, series)
            continue
        if name is None:
            if col.required:
                raise ValidationError(f"{series.name}: column {col.name!r} is missing (columns: {sorted(present)})")
            out[col.name] = (
                pa.nulls(n, _ARROW[col.kind]) if col.fill is None else pa.array([col.fill] * n, _ARROW[col.kind])
            )
            continue
        typed = _typed(single(table[name]), col, series, nulls=not series.checked)
        out[col.name] = typed if col.fill is None else pc.fill_null(typed, col.fill)
    known = {a for c in series.columns for a in (c.name, *c.aliases)} | {"symbol"}
    unknown = present - known
    if unknown:
        raise ValidationError(f"{series.name}: unknown column(s) {', '.join(sorted(unknown))}")
    result = pa.table(out, schema=schema_of(series))
    if series.checked:
        _check(result, series)
    return result


def symbols_of(table: pa.Table) -> list[str]:
    if "symbol" not in table.column_names:
        return []
    return [s for s in pc.unique(single(table["symbol"])).to_pylist() if s is not None]


def _map_symbols(symbols: pa.Array, ids: Mapping[str, int], series: Series) -> pa.Array:
    if symbols.null_count:
        raise ValidationError(f"{series.name}: column 'symbol' has missing values")
    unique = pc.unique(symbols)
    missing = [s for s in unique.to_pylist() if s not in ids]
    if missing:
        raise ValidationError(f"{series.name}: unknown securities {', '.join(map(str, missing[:5]))}")
    index = pc.index_in(symbols, value_set=pa.array(list(ids)))
    return pc.take(pa.array(list(ids.values()), pa.int64()), index)


def _typed(array: pa.Array, col: Column, series: Series, *, nulls: bool = False) -> pa.Array:
    kind = _ARROW[col.kind]
    if array.type == kind:
        result = array
    elif col.kind == "ts":
        t = array.type
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            try:
                array = array.cast(pa.timestamp("us", tz="UTC"))
            except pa.ArrowInvalid as exc:
                raise ValidationError(f"{series.name}: column {col.name!r}: cannot read times ({exc})") from exc
            t = array.type
        if pa.types.is_date(t):
            array = array.cast(pa.timestamp("us")).cast(TS)
        elif not pa.types.is_timestamp(t):
            raise ValidationError(f"{series.name}: column {col.name!r} must hold times, not {t}")
        elif t.tz is None:
            raise ValidationError(
                f"{series.name}: column {col.name!r} has times without a time zone; give them in UTC (tz-aware)"
            )
        result = array.cast(pa.timestamp(array.type.unit, tz="UTC")).cast(TS, safe=False)
    elif col.kind == "text":
        if pa.types.is_dictionary(array.type):
            array = array.dictionary_decode()
        if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type) or pa.types.is_null(array.type)):
            raise ValidationError(f"{series.name}: column {col.name!r} must hold text, not {array.type}")
        result = array.cast(kind)
    else:
        if not (
            pa.types.is_integer(array.type)
            or pa.types.is_floating(array.type)
            or pa.types.is_null(array.type)
            or pa.types.is_decimal(array.type)
        ):
            raise ValidationError(f"{series.name}: column {col.name!r} must hold numbers, not {array.type}")
        try:
            result = array.cast(kind, safe=col.kind == "int")
        except pa.ArrowInvalid as exc:
            raise ValidationError(f"{series.name}: column {col.name!r}: {str(exc).splitlines()[0]}") from exc
    if col.required and result.null_count and not nulls:
        row = int(np.flatnonzero(~result.is_valid().to_numpy(zero_copy_only=False))[0])
        raise ValidationError(f"{series.name}: column {col.name!r} is missing (null or NaN) at row {row}")
    return result


def _check(table: pa.Table, series: Series) -> None:
    for col in series.columns:
        if col.kind != "float":
            continue
        values = table[col.name].to_numpy(zero_copy_only=False)
        # Optional columns come through as NaN where missing; only infinities are wrong there.
        bad = ~np.isfinite(values) if col.required else np.isinf(values)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValidationError(f"{series.name}: {col.name} is NaN or infinite at row {i}")
    if series is EQUITY:
        equity = table["equity"].to_numpy()
        if (equity <= 0).any():
            i = int(np.flatnonzero(equity <= 0)[0])
            raise ValidationError(f"equity: equity must be positive; row {i} is {equity[i]}")
    if "side" in table.column_names:
        ok = pc.is_in(table["side"], value_set=pa.array(SIDES))
        if not pc.all(ok).as_py():
            i = int(np.flatnonzero(~ok.to_numpy(zero_copy_only=False))[0])
            raise ValidationError(f"{series.name}: side must be buy or sell; row {i} is {table['side'][i].as_py()!r}")
    if "quantity" in table.column_names and series is not POSITIONS:
        qty = table["quantity"].to_numpy()
        if (qty <= 0).any():
            i = int(np.flatnonzero(qty <= 0)[0])
            raise ValidationError(f"{series.name}: quantity must be positive; row {i} is {qty[i]}")
    if series is TRADES:
        for name, positive in (("price", True), ("commission", False)):
            values = table[name].to_numpy(zero_copy_only=False)
            bad = values <= 0 if positive else values < 0
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise ValidationError(
                    f"trades: {name} must be {'positive' if positive else '>= 0'}; row {i} is {values[i]}"
                )


@dataclass
class Accumulator:
    """Collects what metrics and checks need across the chunks of one series, and hashes its content."""

    series: Series
    digests: dict[str, Any] = field(default_factory=dict)
    rows: int = 0
    last_ts: int | None = None
    ts: list[np.ndarray] = field(default_factory=list)
    values: dict[str, list[np.ndarray]] = field(default_factory=dict)
    securities: set[int] = field(default_factory=set)
    keep: tuple[str, ...] = ()

    def add(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        micros = table[self.series.time].cast(pa.int64()).to_numpy()
        if self.series is EQUITY:
            self._check_increasing(micros)
            self.ts.append(micros)
        elif self.series is POSITIONS:
            self.ts.append(micros)
        for col in self.series.columns:
            self._hash(col.name, table[col.name])
        for name in self.keep:
            if name == "cash" and table[name].null_count == table.num_rows:
                continue  # no cash given: exposure is unknown (unless positions tell)
            values = table[name].to_numpy(zero_copy_only=False)
            if name == "cash":  # exposure needs only whether anything is invested: a byte a point, not eight
                equity = table["equity"].to_numpy()
                values = np.abs(equity - np.nan_to_num(values, nan=equity)) > 1e-9 * equity
            self.values.setdefault(name, []).append(values)
        if self.series.security:
            self.securities.update(pc.unique(table["security_id"]).to_pylist())
        self.rows += table.num_rows

    def _check_increasing(self, micros: np.ndarray) -> None:
        steps = np.diff(micros)
        if (steps <= 0).any():
            i = int(np.flatnonzero(steps <= 0)[0]) + 1
            word = "repeated" if steps[i - 1] == 0 else "out of order"
            raise ValidationError(f"equity: timestamps must increase; row {self.rows + i} is {word}")
        if self.last_ts is not None and micros[0] <= self.last_ts:
            word = "repeated" if micros[0] == self.last_ts else "out of order"
            raise ValidationError(f"equity: timestamps must increase; row {self.rows} (first of a chunk) is {word}")
        self.last_ts = int(micros[-1])

    def _hash(self, name: str, column: pa.ChunkedArray) -> None:
        """One digest per column, fed chunk after chunk: the hash does not depend on how the rows were chunked."""
        digest = self.digests.setdefault(name, hashlib.blake2b(digest_size=20))
        array = single(column)
        if pa.types.is_string(array.type):
            lengths = pc.fill_null(pc.binary_length(array), -1).to_numpy().astype(np.int32)
            offsets = np.frombuffer(array.buffers()[1], dtype=np.int32, count=len(array) + 1, offset=array.offset * 4)
            data = array.buffers()[2]
            digest.update(lengths.tobytes())
            if data is not None:
                digest.update(memoryview(data)[int(offsets[0]) : int(offsets[-1])])
            return
        if pa.types.is_timestamp(array.type):
            array = array.cast(pa.int64())
        valid = None if array.null_count == 0 else array.is_valid().to_numpy(zero_copy_only=False)
        values = pc.fill_null(array, 0).to_numpy()
        digest.update(np.ascontiguousarray(values).tobytes())
        if valid is not None:
            digest.update(np.packbits(valid).tobytes())

    def content_hash(self) -> str:
        total = hashlib.blake2b(digest_size=20)
        total.update(f"{self.series.name}:{self.rows}".encode())
        for name in sorted(self.digests):
            total.update(name.encode() + self.digests[name].digest())
        return total.hexdigest()

    def column(self, name: str) -> np.ndarray:
        """A kept column whole (concatenated once; the chunks are let go)."""
        parts = self.values.get(name, [])
        if len(parts) != 1:
            self.values[name] = parts = [np.concatenate(parts) if parts else np.empty(0)]
        return parts[0]

    def times(self) -> np.ndarray:
        """The times whole, as datetime64[us] (a view of the kept int64 microseconds)."""
        if len(self.ts) != 1:
            self.ts = [np.concatenate(self.ts) if self.ts else np.empty(0, dtype=np.int64)]
        return self.ts[0].view("datetime64[us]")

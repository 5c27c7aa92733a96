"""Read vendor files (CSV, Parquet, HistData, LOBSTER, tarballs of CSVs) into Arrow tables the writers accept.

Column names are matched case-insensitively against the aliases vendors use (``timestamp``, ``ts_event``,
``bid_px_00``, ``quantity``, ``Name``...); columns nobody asked for are left out and named in the result
(``FileTable.ignored``). The time comes from one column (any of :data:`TS`, or ``time_column``) or from separate
date and time columns, as ISO text, text in a strptime ``time_format``, ``YYYYMMDD[hhmm[ss]]`` integers or epoch
seconds/milliseconds/microseconds/nanoseconds. Times keep their zone when the file has one; naive times need
``tz`` (the writers refuse to guess). ``NaN`` in a CSV is a NaN (a ``non_finite`` finding), not a missing value.
Rows are named by their line in the file (1-based, the header counted) in every message.
"""

from __future__ import annotations

import io
import math
import re
import tarfile
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from tradedb.errors import ValidationError

FORMATS = ("csv", "parquet", "histdata")
#: Time column spellings, in order of preference (a date column alone is a session date).
TS = (
    "ts",
    "ts_event",
    "timestamp",
    "datetime",
    "date_time",
    "time",
    "gmt time",
    "local time",
    "ts_recv",
    "date",
)
#: Separate date and time columns, combined when no single time column exists.
DATE_AND_TIME = (("date", "time"), ("day", "time"), ("trade_date", "trade_time"))
EPOCH_FORMATS = {"epoch-s": "s", "epoch-ms": "ms", "epoch-us": "us", "epoch-ns": "ns"}
#: What a number cell of a CSV may say for "no value": blank and the usual NULL spellings, but never NaN (a NaN
#: price is a finding, as it is for Arrow input).
NULL_VALUES = ["", "NULL", "null", "N/A", "n/a", "NA", "#N/A"]
#: Corporate-action columns: zipline (dividend, split) and Quandl/Nasdaq Data Link WIKI (ex-dividend, split_ratio).
DIVIDEND = ("dividend", "ex-dividend", "ex_dividend", "dividends", "cash_dividend")
SPLIT = ("split", "split_ratio", "split_factor", "stock splits")
SYMBOL = ("symbol", "name", "ticker")
ALIASES: dict[str, dict[str, tuple[str, ...]]] = {
    "quotes": {
        "contributor": ("contributor", "venue", "provider", "bank", "lp", "quoter", "publisher"),
        "bid": ("bid", "bid_px_00", "bid_price", "bestbid"),
        "ask": ("ask", "ask_px_00", "ask_price", "bestask"),
        "bid_size": ("bid_size", "bid_sz_00", "bidsize", "bestbidvolume", "bid_volume"),
        "ask_size": ("ask_size", "ask_sz_00", "asksize", "bestaskvolume", "ask_volume"),
    },
    "trades": {
        "price": ("price",),
        "size": ("size", "quantity", "qty", "volume", "amount"),
        "trade_id": ("trade_id", "id"),
        "aggressor_side": ("aggressor_side", "side", "buyer_maker"),
    },
    "bars": {
        "open": ("open",),
        "high": ("high",),
        "low": ("low",),
        "close": ("close",),
        "volume": ("volume",),
        "trade_count": ("trade_count", "trades", "count"),
        "vwap": ("vwap",),
        "timeframe": ("timeframe",),
    },
}
#: Aggressor codes: Databento A/B (the side that initiated), Binance buyer_maker (True: the seller took).
SIDE_CODES = {"a": "sell", "b": "buy", "s": "sell", "buy": "buy", "sell": "sell", "true": "sell", "false": "buy"}
#: NASDAQ Trader exchange letters -> ISO 10383 MICs.
EXCHANGE_LETTERS = {"N": "XNYS", "P": "ARCX", "Z": "BATS", "A": "XASE", "Q": "XNAS", "V": "IEXG"}
HISTDATA_TZ = "-05:00"  # HistData.com: Eastern Standard Time all year (no daylight saving)
#: The columns a file must have for each kind (any one of a group).
REQUIRED: dict[str, tuple[tuple[str, ...], ...]] = {
    "quotes": (("bid", "ask"),),
    "trades": (("price",), ("size",)),
    "bars": (("open",), ("high",), ("low",), ("close",)),
}


@dataclass
class FileTable:
    """A vendor file made ready for a writer: the table, where its times came from, what was left out."""

    table: pa.Table
    time_source: str
    ignored: list[str]
    #: The file line of the first data row (rows are named by line in messages), or None for Parquet.
    first_line: int | None


def detect_format(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in FORMATS:
            raise ValidationError(f"--format must be one of {', '.join(FORMATS)}; got {fmt!r}")
        return fmt
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    return "csv"


def read_table(path: Path, fmt: str) -> pa.Table:
    """Read a whole file: CSV (optionally .gz), a .tar.gz of CSVs (concatenated), Parquet, or HistData ticks."""
    if not path.is_file():
        raise ValidationError(f"no such file: {path}")
    try:
        if fmt == "parquet":
            return pq.read_table(path)
        if fmt == "histdata":
            return _histdata(path)
        if path.name.endswith((".tar.gz", ".tgz", ".tar")):
            return _tarball(path)
        return _check_utf8(pacsv.read_csv(path, convert_options=_CSV_OPTIONS), path.name)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValidationError(f"cannot read {path.name} as {fmt}: {str(exc).splitlines()[0]}") from exc


# Text columns never become NULL ("NA" is a ticker); number columns read NaN as NaN.
_CSV_OPTIONS = pacsv.ConvertOptions(null_values=NULL_VALUES)


def _check_utf8(table: pa.Table, name: str, *, first_line: int = 2) -> pa.Table:
    """Refuse text that is not UTF-8 (Arrow reads such a column as binary), naming the line and column."""
    for column in table.column_names:
        if not pa.types.is_binary(table[column].type):
            continue
        for index, value in enumerate(table[column].to_pylist()):
            if value is None:
                continue
            try:
                value.decode("utf-8")
            except UnicodeDecodeError as exc:
                bad = value[exc.start : exc.start + 1].hex()
                raise ValidationError(
                    f"{name} line {first_line + index}, column {column!r}: not UTF-8 (byte 0x{bad}); "
                    f"re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
                ) from None
    return table


def _tarball(path: Path) -> pa.Table:
    tables = []
    with tarfile.open(path) as archive:
        for member in sorted(archive.getmembers(), key=lambda m: m.name):
            if member.isfile() and member.name.lower().endswith(".csv"):
                extracted = archive.extractfile(member)
                assert extracted is not None
                csv = pacsv.read_csv(io.BytesIO(extracted.read()), convert_options=_CSV_OPTIONS)
                tables.append(_check_utf8(csv, f"{path.name}:{member.name}"))
    if not tables:
        raise ValidationError(f"{path.name} holds no CSV files")
    return pa.concat_tables(tables, promote_options="permissive")


def _histdata(path: Path) -> pa.Table:
    raw = pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(column_names=["stamp", "bid", "ask", "volume"]),
        convert_options=pacsv.ConvertOptions(column_types={"stamp": pa.string()}),
    )
    stamp = raw["stamp"]
    seconds = pc.strptime(pc.utf8_slice_codeunits(stamp, 0, 15), format="%Y%m%d %H%M%S", unit="ms")
    millis = pc.cast(pc.utf8_slice_codeunits(stamp, 15, 18), pa.int64())
    ts = pc.add(seconds.cast(pa.int64()), millis).cast(pa.timestamp("ms"))
    return pa.table({"ts": ts, "bid": raw["bid"], "ask": raw["ask"]})


def _find(names: dict[str, str], aliases: tuple[str, ...]) -> str | None:
    for alias in aliases:
        if alias in names:
            return names[alias]
    return None


def canonical(
    raw: pa.Table,
    kind: str,
    *,
    symbol: str | None = None,
    time_column: str | None = None,
    time_format: str | None = None,
    first_line: int | None = 2,
    name: str = "the file",
) -> FileTable:
    """Pick and rename the columns a writer of ``kind`` (quotes, trades, bars) accepts; say what was left out."""
    names = {n.lower(): n for n in raw.column_names}
    columns: dict[str, Any] = {}
    ts, time_source, used = _times(raw, names, time_column, time_format, name)
    columns["ts"] = ts
    found_symbol = _find(names, SYMBOL)
    if symbol is None and found_symbol is not None:
        columns["symbol"] = raw[found_symbol].cast(pa.string())
        used.add(found_symbol)
    elif symbol is None and "security_id" in names:
        columns["security_id"] = raw[names["security_id"]]
        used.add(names["security_id"])
    for field, aliases in ALIASES[kind].items():
        source = _find(names, aliases)
        if source is None or source in used:
            continue
        column = raw[source]
        if field == "aggressor_side":
            column = _sides(column)
        elif field in ("trade_id", "contributor"):
            column = column.cast(pa.string())
        columns[field] = column
        used.add(source)
    for group in REQUIRED[kind]:
        if not any(f in columns for f in group):
            spellings = sorted({a for f in group for a in ALIASES[kind][f]})
            raise ValidationError(
                f"{name}: no {' or '.join(group)} column for {kind} (looked for {', '.join(spellings)}); "
                f"the file has: {', '.join(raw.column_names)}"
            )
    if kind == "bars":
        used |= {c for c in (_find(names, DIVIDEND), _find(names, SPLIT)) if c is not None}
    ignored = [c for c in raw.column_names if c not in used]
    return FileTable(pa.table(columns), time_source, ignored, first_line)


def _times(
    raw: pa.Table, names: dict[str, str], time_column: str | None, time_format: str | None, name: str
) -> tuple[pa.ChunkedArray | pa.Array, str, set[str]]:
    """The time column (parsed), a description of where it came from, and the columns it used."""
    if time_column is not None:
        column = names.get(time_column.lower())
        if column is None:
            raise ValidationError(f"{name}: no column {time_column!r}; the file has: {', '.join(raw.column_names)}")
        return _parse_times(raw[column], time_format, column, name), _said(column, time_format), {column}
    single = _find(names, TS)
    for date_name, time_name in DATE_AND_TIME:
        if date_name in names and time_name in names and single in (None, names[date_name], names[time_name]):
            day, clock = names[date_name], names[time_name]
            joined = pc.binary_join_element_wise(raw[day].cast(pa.string()), raw[clock].cast(pa.string()), " ")
            return (
                _parse_times(joined, time_format, f"{day} + {clock}", name),
                _said(f"{day} + {clock}", time_format),
                {day, clock},
            )
    if single is None:
        raise ValidationError(
            f"{name}: no time column (looked for {', '.join(TS)}, or date and time columns); pass --time-column; "
            f"the file has: {', '.join(raw.column_names)}"
        )
    return _parse_times(raw[single], time_format, single, name), _said(single, time_format), {single}


def _said(column: str, time_format: str | None) -> str:
    return f"{column} ({time_format})" if time_format else column


def _parse_times(column: Any, time_format: str | None, label: str, name: str) -> Any:
    """Parse a time column: epoch-* units, a strptime format, YYYYMMDD[hhmm[ss]] integers, or Arrow's own types."""
    try:
        if time_format in EPOCH_FORMATS:
            unit = EPOCH_FORMATS[time_format]
            return pc.cast(column.cast(pa.int64()), pa.timestamp(unit, tz="UTC"))
        if time_format is not None:
            return pc.strptime(column.cast(pa.string()), format=time_format, unit="us", error_is_null=False)
        if pa.types.is_integer(column.type):
            return _integer_times(column, label, name)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ValidationError(
            f"{name}: cannot read times from {label} with format {time_format!r}: {str(exc).splitlines()[0]}"
        ) from None
    return column  # Arrow times, or ISO text (the writers parse it, zone and all)


_DIGITS = {8: "%Y%m%d", 12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}


def _integer_times(column: Any, label: str, name: str) -> Any:
    """Integers are calendar digits (YYYYMMDD, YYYYMMDDhhmm, YYYYMMDDhhmmss) or epoch times, told apart by size."""
    values = pc.drop_null(column)
    if len(values) == 0:
        return column
    low, high = pc.min(values).as_py(), pc.max(values).as_py()
    digits = {len(str(low)), len(str(high))}
    if len(digits) == 1 and (width := digits.pop()) in _DIGITS and str(low)[:2] in ("19", "20"):
        return pc.strptime(column.cast(pa.string()), format=_DIGITS[width], unit="us")
    # Epoch: the one unit that puts every time between 1971 and 2200.
    for unit, scale in (("s", 1), ("ms", 1e3), ("us", 1e6), ("ns", 1e9)):
        if 3.2e7 * scale <= low and high <= 7.3e9 * scale:
            return pc.cast(column.cast(pa.int64()), pa.timestamp(unit, tz="UTC"))
    raise ValidationError(
        f"{name}: cannot tell how the integers in {label} encode times; pass --time-format "
        f"(a strptime format such as %Y%m%d%H%M, or epoch-s, epoch-ms, epoch-us, epoch-ns)"
    )


def _sides(column: pa.ChunkedArray) -> pa.Array:
    codes = pc.utf8_lower(column.cast(pa.string()))
    keys = pa.array(list(SIDE_CODES))
    values = pa.array(list(SIDE_CODES.values()))
    return pc.take(values, pc.index_in(codes, value_set=keys))


def corporate_actions(
    raw: pa.Table, symbol: str | None, *, name: str = "the file", first_line: int | None = 2
) -> list[dict[str, Any]]:
    """Dividends and splits from a bars file's columns: zipline ``dividend``/``split`` and Quandl/Nasdaq Data Link
    WIKI ``ex-dividend``/``split_ratio`` (0 dividend and 1.0 split mean none). A bad value is refused naming its
    line, before anything is written."""
    names = {n.lower(): n for n in raw.column_names}
    dividend_column, split_column = _find(names, DIVIDEND), _find(names, SPLIT)
    if dividend_column is None and split_column is None:
        return []
    date_column = _find(names, TS)
    symbol_column = _find(names, SYMBOL)
    actions = []
    for index, row in enumerate(raw.to_pylist()):
        where = f"{name} line {first_line + index}" if first_line is not None else f"{name} row {index}"
        day = row[date_column] if date_column else None
        if isinstance(day, datetime):
            day = day.date()
        who = symbol or (row[symbol_column] if symbol_column else None)
        if not isinstance(day, date) or who is None:
            continue
        dividend = row.get(dividend_column or "", 0) or 0
        split = row.get(split_column or "", 1) or 1
        for what, value in (("dividend", dividend), ("split", split)):
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValidationError(f"{where}: {what} must be a non-negative number, got {value!r}")
        if dividend:
            actions.append({"symbol": who, "ex_date": day, "kind": "dividend", "value": dividend, "line": where})
        if split != 1:
            kind = "split" if split > 1 else "reverse_split"
            actions.append({"symbol": who, "ex_date": day, "kind": kind, "value": split, "line": where})
    return actions


# --- LOBSTER --------------------------------------------------------------------------------------------------

#: LOBSTER message types: 2 takes part of an order away, 3 all of it (its size is what was left), 6 is an auction
#: cross (a print, no book change).
LOBSTER_TYPES = {1: "new", 2: "cancel", 3: "cancel", 4: "execute", 5: "hidden_execute", 6: "trade", 7: "halt"}
_LOBSTER_NAME = re.compile(r"^(?P<symbol>[^_]+)_(?P<day>\d{4}-\d{2}-\d{2})_\d+_\d+_message_\d+\.csv$")


@dataclass
class Lobster:
    """One LOBSTER day: order book events, the top of book after each change, and the executions."""

    symbol: str
    day: date
    events: pa.Table
    quotes: pa.Table
    trades: pa.Table


def read_lobster(message_path: Path, *, symbol: str | None = None, day: date | None = None) -> Lobster:
    """Read a LOBSTER message file and its orderbook file (level 1 or deeper: the first level is used).

    Times are seconds after midnight in New York time on ``day`` (both taken from the file name when not given);
    prices are dollars x 10000. Every message becomes an event (sequence = its line number). A quote is kept only
    where the top of book changed, and executions (types 4 and 5) become trades whose aggressor is the side
    opposite the resting order.
    """
    match = _LOBSTER_NAME.match(message_path.name)
    symbol = symbol or (match.group("symbol") if match else None)
    day = day or (date.fromisoformat(match.group("day")) if match else None)
    if symbol is None or day is None:
        raise ValidationError("cannot tell the symbol and day from the file name: pass --symbol and --date")
    book_path = message_path.with_name(message_path.name.replace("_message_", "_orderbook_"))
    if not book_path.is_file():
        raise ValidationError(f"the orderbook file {book_path.name} is missing next to {message_path.name}")
    names = ["time", "type", "order_id", "size", "price", "direction"]
    messages = _lobster_csv(message_path, names)
    book = _lobster_csv(book_path, None)
    if book.num_rows != messages.num_rows:
        raise ValidationError(f"{book_path.name} has {book.num_rows} rows, {message_path.name} {messages.num_rows}")
    midnight = np.datetime64(day.isoformat(), "us")
    micros = np.round(messages["time"].to_numpy() * 1_000_000).astype(np.int64)
    ts = pa.array(midnight + micros.astype("timedelta64[us]"), pa.timestamp("us"))
    kinds = messages["type"].to_numpy()
    direction = messages["direction"].to_numpy()
    price = messages["price"].to_numpy() / 10_000
    size = messages["size"].to_numpy().astype(np.float64)
    sequence = np.arange(1, messages.num_rows + 1, dtype=np.int64)
    unknown = set(np.unique(kinds).tolist()) - set(LOBSTER_TYPES)
    if unknown:
        raise ValidationError(f"unknown LOBSTER message types {sorted(unknown)}")
    event_type = pa.array([LOBSTER_TYPES[int(k)] for k in kinds.tolist()], pa.string())
    side = pa.array(np.where(direction == 1, "buy", "sell"))
    events = pa.table(
        {
            "ts": ts,
            "event_type": event_type,
            "order_ref": pa.array(messages["order_id"].to_numpy().astype(str)),
            "side": side,
            "price": price,
            "size": size,
            "sequence": sequence,
        }
    )
    # LOBSTER's book columns: ask price, ask size, bid price, bid size (level 1 first).
    ask, ask_size, bid, bid_size = (book.column(i).to_numpy() for i in range(4))
    # One quote per instant (the book after the instant's last message), kept only when the top changed.
    top = np.stack([ask, ask_size, bid, bid_size], axis=1)
    last_of_instant = np.ones(len(top), dtype=bool)
    last_of_instant[:-1] = micros[1:] != micros[:-1]
    kept = np.flatnonzero(last_of_instant)
    moved = np.ones(len(kept), dtype=bool)
    moved[1:] = np.any(top[kept[1:]] != top[kept[:-1]], axis=1)
    changed = np.zeros(len(top), dtype=bool)
    changed[kept[moved]] = True
    quotes = pa.table(
        {
            "ts": ts.filter(pa.array(changed)),
            "bid": bid[changed] / 10_000,
            "ask": ask[changed] / 10_000,
            "bid_size": bid_size[changed].astype(np.float64),
            "ask_size": ask_size[changed].astype(np.float64),
        }
    )
    executed = np.isin(kinds, (4, 5))
    trades = pa.table(
        {
            "ts": ts.filter(pa.array(executed)),
            "price": price[executed],
            "size": size[executed],
            # Zero-padded: bars computed in the database break ties in time by trade_id, as text.
            "trade_id": pa.array(np.char.zfill(sequence[executed].astype(str), 9)),
            "aggressor_side": pa.array(np.where(direction[executed] == 1, "sell", "buy")),
        }
    )
    return Lobster(symbol, day, events, quotes, trades)


def _lobster_csv(path: Path, names: list[str] | None) -> pa.Table:
    with path.open("rb") as handle:
        first = handle.readline().decode(errors="replace")
    has_header = any(c.isalpha() for c in first)
    table = pacsv.read_csv(path, read_options=pacsv.ReadOptions(autogenerate_column_names=not has_header))
    return table.rename_columns(names) if names is not None else table


# --- Databento market by order -----------------------------------------------------------------------------

#: Databento MBO actions. Trades and fills leave the book alone (the resting order's change follows as a cancel or
#: modify); N carries only flags.
MBO_ACTIONS = {"A": "new", "M": "modify", "C": "cancel", "R": "clear", "T": "trade", "F": "fill"}
MBO_SIDES = {"B": "buy", "A": "sell"}


def is_mbo(path: Path) -> bool:
    """Whether ``path`` is a Databento market-by-order CSV (its header names action, side and order_id)."""
    with path.open("rb") as handle:
        header = handle.readline().decode(errors="replace").strip().lower().split(",")
    return {"action", "side", "order_id", "ts_recv"} <= set(header)


def read_mbo(path: Path) -> pa.Table:
    """Read a Databento MBO CSV (``databento ... --schema mbo --encoding csv``) into order book events.

    The time is ``ts_recv``, when the event was known (a snapshot's orders carry their old ``ts_event`` but are
    known only at the snapshot), truncated to microseconds; ``sequence`` is the line number, because Databento's
    own sequence repeats inside one packet and the file's order is the venue's. Rows of action N carry no event
    and are left out. The events carry a ``symbol`` column.
    """
    raw = _check_utf8(
        pacsv.read_csv(
            path,
            convert_options=pacsv.ConvertOptions(
                strings_can_be_null=False,
                column_types={
                    "order_id": pa.string(),
                    "price": pa.float64(),
                    "size": pa.float64(),
                    "ts_recv": pa.timestamp("ns", "UTC"),
                    "action": pa.string(),
                    "side": pa.string(),
                },
            ),
        ),
        path.name,
    )
    missing = [
        c for c in ("ts_recv", "action", "side", "price", "size", "order_id", "symbol") if c not in raw.column_names
    ]
    if missing:
        raise ValidationError(
            f"{path.name}: not a Databento MBO CSV with symbols: no {', '.join(missing)} column "
            "(export with the mbo schema and map_symbols=True)"
        )
    actions = raw["action"].to_numpy(zero_copy_only=False).astype(str)
    unknown = sorted(set(np.unique(actions).tolist()) - set(MBO_ACTIONS) - {"N"})
    if unknown:
        where = 2 + int(np.flatnonzero(np.isin(actions, unknown))[0])
        raise ValidationError(
            f"{path.name} line {where}: unknown MBO action {unknown[0]!r} (expected A, M, C, R, T, F, N)"
        )
    kept = actions != "N"
    table = raw.filter(pa.array(kept))
    lines = (np.flatnonzero(kept) + 2).astype(np.int64)
    ts = table["ts_recv"].cast(pa.timestamp("us", "UTC"), safe=False)  # nanoseconds truncated
    # Vendor codes to our names, column-wise (a side N is no side).
    event_type = pa.array(list(MBO_ACTIONS.values())).take(pc.index_in(table["action"], pa.array(list(MBO_ACTIONS))))
    side = pa.array(list(MBO_SIDES.values())).take(pc.index_in(table["side"], pa.array(list(MBO_SIDES))))
    return pa.table(
        {
            "ts": ts,
            "symbol": table["symbol"].cast(pa.string()),
            "event_type": event_type,
            "order_ref": pc.if_else(pc.equal(table["order_id"], "0"), pa.scalar(None, pa.string()), table["order_id"]),
            "side": side,
            "price": table["price"],
            "size": table["size"],
            "sequence": pa.array(lines),
        }
    )


# --- securities -----------------------------------------------------------------------------------------------


def read_securities(path: Path, *, exchange: str | None = None) -> tuple[list[dict[str, Any]], int]:
    """Read a listing file (NASDAQ Trader nasdaqlisted/otherlisted, S&P 500 constituents, or any CSV with
    Symbol and Name columns) into security rows; return them and the number of rows skipped (test issues,
    footers, blank lines)."""
    table = read_table(path, "csv")
    names = {n.lower(): n for n in table.column_names}
    symbol_column = _find(names, ("symbol", "act symbol", "ticker"))
    if symbol_column is None:
        raise ValidationError(f"{path.name}: no Symbol column")
    name_column = _find(names, ("security name", "security", "company name", "name", "description"))
    rows, skipped = [], 0
    for row in table.to_pylist():
        symbol = (row.get(symbol_column) or "").strip() if isinstance(row.get(symbol_column), str) else None
        if not symbol or symbol.startswith("File Creation Time") or " " in symbol:
            skipped += 1
            continue
        if str(row.get(names.get("test issue", ""), "N")).upper() == "Y":
            skipped += 1
            continue
        mic = exchange
        letter = row.get(names.get("exchange", ""))
        if mic is None and isinstance(letter, str) and letter in EXCHANGE_LETTERS:
            mic = EXCHANGE_LETTERS[letter]
        if mic is None and "market category" in names:
            mic = "XNAS"
        etf = str(row.get(names.get("etf", ""), "N")).upper() == "Y"
        cik = row.get(names.get("cik", ""))
        rows.append(
            {
                "symbol": symbol,
                "exchange_mic": mic,
                "asset_type": "etf" if etf else "equity",
                "name": (str(row[name_column]).strip() or None) if name_column and row.get(name_column) else None,
                "sector": row.get(names.get("gics sector", "")),
                "industry": row.get(names.get("gics sub-industry", "")),
                "cik": str(cik).zfill(10) if cik not in (None, "") else None,
            }
        )
    return rows, skipped

"""Read vendor files (CSV, Parquet, HistData, LOBSTER, tarballs of CSVs) into Arrow tables the writers accept.

Column names are matched case-insensitively against the aliases vendors use (``timestamp``, ``ts_event``,
``bid_px_00``, ``quantity``, ``Name``...); columns nobody asked for are left out. Times keep their zone when the
file has one; naive times need ``tz`` (the writers refuse to guess).
"""

from __future__ import annotations

import io
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
TS = ("ts", "ts_event", "timestamp", "time", "datetime", "date")
SYMBOL = ("symbol", "name", "ticker")
ALIASES: dict[str, dict[str, tuple[str, ...]]] = {
    "quotes": {
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
        return pacsv.read_csv(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValidationError(f"cannot read {path.name} as {fmt}: {str(exc).splitlines()[0]}") from exc


def _tarball(path: Path) -> pa.Table:
    tables = []
    with tarfile.open(path) as archive:
        for member in sorted(archive.getmembers(), key=lambda m: m.name):
            if member.isfile() and member.name.lower().endswith(".csv"):
                extracted = archive.extractfile(member)
                assert extracted is not None
                tables.append(pacsv.read_csv(io.BytesIO(extracted.read())))
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


def canonical(raw: pa.Table, kind: str, *, symbol: str | None = None) -> pa.Table:
    """Pick and rename the columns a writer of ``kind`` (quotes, trades, bars) accepts."""
    names = {n.lower(): n for n in raw.column_names}
    columns: dict[str, Any] = {}
    ts = _find(names, TS)
    if ts is None:
        raise ValidationError(f"no time column: expected one of {', '.join(TS)}")
    columns["ts"] = raw[ts]
    found_symbol = _find(names, SYMBOL)
    if symbol is None and found_symbol is not None:
        columns["symbol"] = raw[found_symbol].cast(pa.string())
    elif symbol is None and "security_id" in names:
        columns["security_id"] = raw[names["security_id"]]
    for field, aliases in ALIASES[kind].items():
        source = _find(names, aliases)
        if source is None:
            continue
        column = raw[source]
        if field == "aggressor_side":
            column = _sides(column)
        elif field == "trade_id":
            column = column.cast(pa.string())
        columns[field] = column
    return pa.table(columns)


def _sides(column: pa.ChunkedArray) -> pa.Array:
    codes = pc.utf8_lower(column.cast(pa.string()))
    keys = pa.array(list(SIDE_CODES))
    values = pa.array(list(SIDE_CODES.values()))
    return pc.take(values, pc.index_in(codes, value_set=keys))


def corporate_actions(raw: pa.Table, symbol: str | None) -> list[dict[str, Any]]:
    """Dividends and splits from zipline-style ``dividend``/``split`` columns (0 and 1 mean none)."""
    names = {n.lower(): n for n in raw.column_names}
    if "dividend" not in names and "split" not in names:
        return []
    date_column = _find(names, TS)
    symbol_column = _find(names, SYMBOL)
    actions = []
    for row in raw.to_pylist():
        day = row[date_column] if date_column else None
        if isinstance(day, datetime):
            day = day.date()
        who = symbol or (row[symbol_column] if symbol_column else None)
        if not isinstance(day, date) or who is None:
            continue
        dividend = row.get(names.get("dividend", ""), 0) or 0
        split = row.get(names.get("split", ""), 1) or 1
        if dividend:
            actions.append({"symbol": who, "ex_date": day, "kind": "dividend", "value": dividend})
        if split != 1:
            kind = "split" if split > 1 else "reverse_split"
            actions.append({"symbol": who, "ex_date": day, "kind": kind, "value": split})
    return actions


# --- LOBSTER --------------------------------------------------------------------------------------------------

LOBSTER_TYPES = {1: "new", 2: "cancel", 3: "cancel", 4: "execute", 5: "hidden_execute", 7: "halt"}
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

"""Strategy signals at COPY speed: ``db.signals`` of the sync Database.

``write`` takes Arrow, pandas, polars, a dict of columns or dict rows (columns ts, instance_id, security_id or
symbol, signal, and optional strength, confidence, price, quantity), checks every row (known instance and
security, buy/sell/hold, strength and confidence in [0, 1], positive price and quantity, no missing values) and
writes them by binary COPY in one transaction. Policy "reject" (the default) raises on the first bad row and
writes nothing; "quarantine" leaves the bad rows out and records each in ``data_quality_logs`` with the write.
Reads select by instance, security and time range and return rows, Arrow, pandas or polars.
"""

# WARNING: generated from signals_async.py by tools/async_to_sync.py; edit the async source and run
# `python tools/async_to_sync.py`. A unit test fails when this file is stale.

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import Connection, sql
from psycopg.rows import TupleRow

from tradedb.columnar.binary_encode import encode_copy, mask
from tradedb.columnar.formats import ReadFormat, check_format, convert
from tradedb.columnar.reader import copy_table
from tradedb.db.counters import COUNTERS
from tradedb.errors import ValidationError
from tradedb.marketdata import check_range
from tradedb.strategies import _series as series
from tradedb.strategies import _sql as q

if TYPE_CHECKING:
    from tradedb.db.connections import Connections
    from tradedb.marketdata.api import MarketData

SignalPolicy = Literal["reject", "quarantine"]
TABLE = "strategy_engine.strategy_signals"
SIGNALS = ("buy", "sell", "hold")
_READ_COLUMNS = (
    ("signal_id", "signal_id::text", pa.string()),
    ("ts", "ts", series.TS),
    ("instance_id", "instance_id", pa.int64()),
    ("security_id", "security_id", pa.int64()),
    ("signal", "signal", pa.string()),
    ("strength", "strength", pa.float64()),
    ("confidence", "confidence", pa.float64()),
    ("price", "price::float8", pa.float64()),
    ("quantity", "quantity::float8", pa.float64()),
)
READ_SCHEMA = pa.schema([(name, kind) for name, _, kind in _READ_COLUMNS])


@dataclass
class SignalWriteResult:
    """What a write did: ``rows`` given = ``written`` + ``rejected``; ``findings`` name each rejected row."""

    rows: int = 0
    written: int = 0
    rejected: int = 0
    findings: list[dict[str, Any]] = field(default_factory=list)


class Signals:
    """The signals API of one Database (``db.signals``)."""

    def __init__(self, db: Connections, market_data: MarketData) -> None:
        self._db = db
        self._md = market_data

    def write(self, data: Any, *, policy: SignalPolicy = "reject") -> SignalWriteResult:
        """Check and write signals in one transaction (see the module docstring)."""
        if policy not in ("reject", "quarantine"):
            raise ValidationError(f"policy must be reject or quarantine, got {policy!r}")
        tables = [t for t in series.chunks(data, series.SIGNALS) if t.num_rows]
        if not tables:
            return SignalWriteResult()
        raw = pa.concat_tables(tables, promote_options="default")
        ids = self._md.security_ids(series.symbols_of(raw)) if "symbol" in raw.column_names else None
        table = series.normalize(raw, series.SIGNALS, ids)
        problems = self._problems(table)
        result = SignalWriteResult(rows=table.num_rows)
        bad = np.zeros(table.num_rows, dtype=bool)
        for check_type, where, message in problems:
            if policy == "reject":
                first, count = int(np.flatnonzero(where)[0]), int(where.sum())
                raise ValidationError(f"signals: row {first}: {message} ({count} row(s); nothing written)")
            rows = np.flatnonzero(where & ~bad)  # a row with several problems is one finding (its first)
            result.findings.extend(_finding(table, int(i), check_type, message) for i in rows)
            bad |= where
        good = table.filter(pa.array(~bad))
        result.rejected = int(bad.sum())
        result.written = good.num_rows
        if good.num_rows:
            self._md.ensure_partitions(TABLE, good)
        with self._db.transaction() as conn:
            if good.num_rows:
                _copy_moved(conn, good)
            if result.findings:
                conn.execute(q.SIGNAL_FINDINGS, (json.dumps(result.findings, default=str),))
        COUNTERS.wrote(TABLE, result.written)
        return result

    def _problems(self, table: pa.Table) -> list[tuple[str, np.ndarray, str]]:
        n = table.num_rows
        found: list[tuple[str, np.ndarray, str]] = []
        for name in ("ts", "instance_id", "security_id", "signal"):
            missing = ~mask(table[name].is_valid())
            if missing.any():
                found.append(("missing_value", missing, f"{name} is missing"))
        found.append(
            (
                "invalid_value",
                ~mask(pc.is_in(table["signal"], value_set=pa.array(SIGNALS))),
                "signal is not buy, sell or hold",
            )
        )
        for name in ("strength", "confidence"):
            values = table[name].to_numpy(zero_copy_only=False)
            with np.errstate(invalid="ignore"):
                outside = ~np.isnan(values) & ((values < 0) | (values > 1))
            found.append(("invalid_value", outside, f"{name} is outside [0, 1]"))
        for name in ("price", "quantity"):
            values = table[name].to_numpy(zero_copy_only=False)
            with np.errstate(invalid="ignore"):
                found.append(("invalid_value", values <= 0, f"{name} must be positive"))
        for name, query, what in (
            ("instance_id", q.KNOWN_INSTANCES, "unknown strategy instance"),
            ("security_id", q.KNOWN_SECURITIES, "unknown security"),
        ):
            ids = [i for i in pc.unique(table[name]).to_pylist() if i is not None]
            rows = self._db.fetch_all(query, (ids,), readonly=False) if ids else []
            known = pa.array([r[name] for r in rows], pa.int64())
            unknown = ~mask(pc.is_in(table[name], value_set=known)) & mask(table[name].is_valid())
            kind = "unknown_security" if name == "security_id" else "invalid_value"
            found.append((kind, unknown, what))
        return [(k, w.astype(bool), m) for k, w, m in found if len(w) == n and w.any()]

    def read(
        self,
        *,
        instance_id: int | None = None,
        security_id: int | None = None,
        symbol: str | None = None,
        start: Any = None,
        end: Any = None,
        as_: ReadFormat = "rows",
    ) -> Any:
        """Signals in time order, of one instance and/or one security (by id or symbol), in [start, end)."""
        check_format(as_)
        if symbol is not None:
            security_id = (self._md.security_ids([symbol]))[symbol]
        lo, hi = check_range(start, end) if start is not None or end is not None else (None, None)
        where: list[sql.Composable] = [sql.SQL("true")]
        for column, value in (("instance_id", instance_id), ("security_id", security_id)):
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ValidationError(f"{column} must be an integer, got {value!r}")
                where.append(sql.SQL("{} = {}").format(sql.Identifier(column), sql.Literal(value)))
        if lo is not None:
            where.append(sql.SQL("ts >= {} AND ts < {}").format(sql.Literal(lo), sql.Literal(hi)))
        query = sql.SQL("SELECT {} FROM strategy_engine.strategy_signals WHERE {} ORDER BY ts, signal_id").format(
            sql.SQL(", ").join(sql.SQL(expr) for _, expr, _ in _READ_COLUMNS), sql.SQL(" AND ").join(where)
        )
        return convert(copy_table(self._db, query, READ_SCHEMA), as_)


def _finding(table: pa.Table, row: int, check_type: str, message: str) -> dict[str, Any]:
    values = {name: table[name][row].as_py() for name in table.column_names}
    ts = values.get("ts")
    return {
        "security_id": values.get("security_id"),
        "check_type": check_type,
        "row_ts": ts.isoformat() if isinstance(ts, datetime) else None,
        "details": {"row": row, "message": message, "values": {k: str(v) for k, v in values.items()}},
    }


def _copy_moved(conn: Connection[TupleRow], table: pa.Table) -> None:
    """COPY into a session staging table (float8 price and quantity), then one INSERT casts them to numeric."""
    conn.execute(q.SIGNAL_STAGE)
    columns = series.SIGNALS.names
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(q.SIGNAL_STAGE_TABLE), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with conn.cursor().copy(statement) as copy:
        for part in encode_copy(table, columns):
            copy.write(part)
    conn.execute(q.MOVE_SIGNALS)

"""Backtest runs at COPY speed, their metrics, comparisons and optimizations: ``db.backtests`` of the sync Database.

``record`` writes a run in one transaction: the run row, then its equity curve, trades, position history and
simulated orders by binary COPY (each series may be an iterator of chunks: it streams), then the metrics and the
run's identity. A run's identity (``run_key``) is a hash of what defines it: strategy, normalized parameters,
period, capital, cost models, seed, code version and metric conventions; its ``content_hash`` hashes what it
produced. Recording the same identity again with the same content returns the stored run (a no-op); with other
content it raises BacktestConflict. A failure before any row was sent writes nothing; a failure after (a bad
chunk in a stream) rolls everything back and leaves a ``failed`` run with the error and no rows. Simulated orders
and fills live in ``backtest_*`` tables only: they never touch execution's orders, positions or risk checks.
"""

# WARNING: generated from backtests_async.py by tools/async_to_sync.py; edit the async source and run
# `python tools/async_to_sync.py`. A unit test fails when this file is stale.

from __future__ import annotations

import builtins
import contextlib
import hashlib
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import Connection, sql
from psycopg.rows import TupleRow, dict_row
from psycopg.types.json import Jsonb

from tradedb.columnar.binary_encode import encode_copy
from tradedb.columnar.formats import ReadFormat, check_format, convert
from tradedb.columnar.reader import copy_arrow, copy_table
from tradedb.db.outbox import emit
from tradedb.db.outbox_rules import new_event
from tradedb.errors import BacktestConflict, NotFoundError, TradeDBError, ValidationError
from tradedb.strategies import _series as series
from tradedb.strategies import _sql as q
from tradedb.strategies import metrics as m
from tradedb.strategies import params as p
from tradedb.strategies import report as tearsheet
from tradedb.strategies.api import Strategies, Strategy, check_id

if TYPE_CHECKING:
    from tradedb.db.connections import Connections
    from tradedb.marketdata.api import MarketData

#: Metrics kept as columns of backtest_runs (every metric is in its ``metrics`` jsonb).
HEADLINE = ("total_return", "sharpe_ratio", "max_drawdown", "win_rate", "trade_count")
_SERIES = {"equity": series.EQUITY, "trades": series.TRADES, "positions": series.POSITIONS, "orders": series.ORDERS}
_ORDER = {"equity": "ts", "trades": "executed_at, trade_id", "positions": "ts, security_id", "orders": "order_id"}
_RUN_COLUMNS = ("run_id", "created_at", "finished_at", "started_at", "trade_count")


@dataclass(frozen=True)
class RecordedRun:
    """The outcome of ``record``: the run's id, whether this call created it, and its metrics."""

    run_id: int
    created: bool
    metrics: dict[str, Any]


class Backtests:
    """The backtests API of one Database (``db.backtests``)."""

    def __init__(self, db: Connections, strategies: Strategies, market_data: MarketData) -> None:
        self._db = db
        self._strategies = strategies
        self._md = market_data

    # --- recording ----------------------------------------------------------------------------------------------

    def record(
        self,
        strategy: int | str,
        *,
        equity: Any,
        parameters: Mapping[str, Any] | None = None,
        trades: Any = None,
        positions: Any = None,
        orders: Any = None,
        version: str | None = None,
        instance_id: int | None = None,
        initial_capital: float | Decimal | None = None,
        commission_model: Mapping[str, Any] | None = None,
        slippage_model: Mapping[str, Any] | None = None,
        random_seed: int | None = None,
        code_version: str | None = None,
        benchmark: Any = None,
        periods_per_year: float = m.DAILY,
        risk_free: float = 0.0,
    ) -> RecordedRun:
        """Record a finished backtest of ``strategy`` (id or name) with ``parameters`` and return its id.

        ``equity``: columns ts (tz-aware), equity, optional cash; strictly increasing times. ``trades``:
        security_id or symbol, side, quantity, price, executed_at, optional commission, slippage, pnl, order_id.
        ``positions``: security_id or symbol, ts, quantity (signed), optional avg_price, market_value.
        ``orders``: order_id, ts, security_id or symbol, side, quantity, optional order_type, limit_price, status.
        Each is an Arrow table, a pandas or polars DataFrame, a dict of columns, a list of dict rows, or an
        iterator of those chunks. ``benchmark`` (ts and a value column, or a pandas Series) gives alpha and beta.
        ``initial_capital`` defaults to the first equity point. See :mod:`tradedb.strategies.metrics` for the
        conventions (``periods_per_year``, ``risk_free``).
        """
        found = self._strategies.get(strategy, version=version)
        checked = found.validate(parameters)
        checked.raise_for_errors(found.label)
        values = p.json_values(found.params, checked.values())
        m.check_annualization(periods_per_year, risk_free)
        if instance_id is not None and (self._strategies.instance(instance_id))["strategy_id"] != found.strategy_id:
            raise ValidationError(f"strategy instance {instance_id} is not an instance of {found.label}")
        identity = {
            "strategy_id": found.strategy_id,
            "parameters": values,
            "commission_model": _json_model(commission_model, "commission_model"),
            "slippage_model": _json_model(slippage_model, "slippage_model"),
            "random_seed": _check_seed(random_seed),
            "code_version": _check_text(code_version, "code_version"),
            "periods_per_year": float(periods_per_year),
            "risk_free": float(risk_free),
        }
        capital = _check_capital(initial_capital)
        bench = None if benchmark is None else _benchmark(benchmark)
        run = {
            **identity,
            "instance_id": instance_id,
            "parameters": Jsonb(values),
            "commission_model": Jsonb(identity["commission_model"]),
            "slippage_model": Jsonb(identity["slippage_model"]),
            "period_start": "-infinity",
            "period_end": "infinity",
            "initial_capital": capital if capital is not None else Decimal(1),
            "status": "running",
        }
        inputs = {"equity": equity, "trades": trades, "positions": positions, "orders": orders}
        prepared = {name: self._prepare(_SERIES[name], data) for name, data in inputs.items()}
        sent = [False]

        def write(conn: Connection[TupleRow]) -> RecordedRun:
            stored = RecordedRun(0, False, {})
            cursor = conn.cursor(row_factory=dict_row)
            # A savepoint, so that finding the run already stored can undo this attempt and still return.
            with conn.transaction() as attempt:
                cursor.execute(q.INSERT_RUN, run)
                row = cursor.fetchone()
                assert row is not None
                run_id = row["run_id"]
                kept: dict[str, series.Accumulator] = {}
                for name, data in inputs.items():
                    kept[name] = self._copy_series(conn, run_id, _SERIES[name], prepared[name], data, sent=sent)
                curve = kept["equity"]
                ts, eq = curve.times(), curve.column("equity")
                metrics = _metrics(kept, ts, eq, bench, periods_per_year=periods_per_year, risk_free=risk_free)
                start_equity = Decimal(repr(float(eq[0])))
                key_fields = {
                    **identity,
                    "period_start": str(ts[0]),
                    "period_end": str(ts[-1]),
                    # As given: a capital taken from the curve is a result, not an input.
                    "initial_capital": None if capital is None else str(capital),
                }
                run_key = _hash(p.canonical_json(key_fields))
                content = _hash(p.canonical_json({n: a.content_hash() for n, a in kept.items()}))
                cursor.execute(q.LOCK_KEY, (run_key,))
                cursor.execute(q.RUN_BY_KEY, (run_key,))
                existing = cursor.fetchone()
                if existing is not None:
                    # The same inputs again: a no-op when the results agree, a conflict when they do not.
                    if existing["content_hash"] != content:
                        raise BacktestConflict(
                            f"backtest run {existing['run_id']} has the same strategy, parameters, period, capital, "
                            "models, seed and code version but different results; record it with another "
                            "code_version or random_seed"
                        )
                    stored = RecordedRun(existing["run_id"], False, {})
                    raise psycopg.Rollback(attempt)
                headline = {k: metrics.get(k) for k in HEADLINE}
                cursor.execute(
                    q.FINISH_RUN,
                    {
                        **headline,
                        "total_return": _decimal(headline["total_return"]),
                        "run_id": run_id,
                        "run_key": run_key,
                        "content_hash": content,
                        "period_start": m.instant(ts[0]),
                        "period_end": m.instant(ts[-1]),
                        "initial_capital": capital if capital is not None else start_equity,
                        "metrics": Jsonb(metrics),
                    },
                )
                if self._db.settings.events_outbox:
                    finished = {
                        "run_id": run_id,
                        "strategy_id": found.strategy_id,
                        "instance_id": instance_id,
                        "period_start": m.instant(ts[0]),
                        "period_end": m.instant(ts[-1]),
                        # NaN (a metric without enough data) is not JSON: it is null in the event.
                        **{
                            k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in headline.items()
                        },
                    }
                    emit(cursor, [new_event("backtest", run_id, "backtest.finished", finished)])
                return RecordedRun(run_id, True, metrics)
            return stored

        try:
            outcome = self._db.run_transaction(write, retries=0)
        except BacktestConflict:
            raise
        except (TradeDBError, ValueError, TypeError, pa.ArrowException) as exc:
            if sent[0]:
                self._record_failure(run, prepared["equity"][0], exc)
            raise
        if not outcome.created:
            return RecordedRun(outcome.run_id, False, (self.run(outcome.run_id))["metrics"])
        return outcome

    def _prepare(self, kind: series.Series, data: Any) -> tuple[series.Accumulator, _Tables]:
        """Check an in-memory series whole before the transaction (so its errors write nothing); a stream is
        checked chunk by chunk as it is copied."""
        acc = series.Accumulator(kind, keep=_KEEP.get(kind.name, ()))
        if data is None:
            if kind is series.EQUITY:
                raise ValidationError("equity is required: a run is its equity curve")
            return acc, []
        whole = series.as_table(data)
        if whole is None:
            return acc, None
        table = self._checked(kind, whole, acc)
        _check_complete(acc)
        if kind.security and acc.securities:
            with self._db.connection() as conn:
                _check_securities(conn, acc.securities)
        return acc, [] if table is None else [table]

    def _checked(self, kind: series.Series, chunk: pa.Table, acc: series.Accumulator) -> pa.Table | None:
        ids = (
            self._md.security_ids(series.symbols_of(chunk))
            if kind.security and "symbol" in chunk.column_names
            else None
        )
        table = series.normalize(chunk, kind, ids)
        if table.num_rows == 0:
            return None
        acc.add(table)
        return table

    def _copy_series(
        self,
        conn: Connection[TupleRow],
        run_id: int,
        kind: series.Series,
        prepared: tuple[series.Accumulator, _Tables],
        data: Any,
        *,
        sent: builtins.list[bool],
    ) -> series.Accumulator:
        acc, tables = prepared
        statement = q.copy_into(kind.table, [*kind.names, "run_id"])
        for chunk in series.chunks(data, kind) if tables is None else tables:
            table = self._checked(kind, chunk, acc) if tables is None else chunk
            if table is None:
                continue
            if tables is None and kind.security:  # this chunk's ids only: earlier chunks were checked
                _check_securities(conn, set(pc.unique(table["security_id"]).to_pylist()))
            run_column = pa.array(np.full(table.num_rows, run_id, dtype=np.int64))
            payload = encode_copy(table.append_column("run_id", run_column), [*kind.names, "run_id"])
            sent[0] = True
            with conn.cursor().copy(statement) as copy:
                for part in payload:
                    copy.write(part)
        if tables is None:
            _check_complete(acc)
        return acc

    def _record_failure(self, run: dict[str, Any], equity: series.Accumulator, exc: BaseException) -> None:
        """A ``failed`` run with the error and none of its rows; its period is what the curve covered so far."""
        message = exc.message if isinstance(exc, TradeDBError) else str(exc)
        seen = equity.times()
        start = m.instant(seen[0]) if len(seen) else datetime.now(UTC)
        end = m.instant(seen[-1]) if len(seen) > 1 else start + timedelta(microseconds=1)
        run = {**run, "period_start": start, "period_end": end}
        with contextlib.suppress(TradeDBError):  # the original error is the one to report
            self._db.fetch_one(q.INSERT_FAILED_RUN, {**run, "error": message[:2000]}, readonly=False)

    # --- reading ------------------------------------------------------------------------------------------------

    def run(self, run_id: int) -> dict[str, Any]:
        """One run: its row (parameters, period, models, status, headline metrics) and ``metrics``."""
        row = self._db.fetch_one(q.RUN, (check_id(run_id, "run_id"),), readonly=False)
        if row is None:
            raise NotFoundError(f"backtest run {run_id} does not exist")
        return row

    def delete(self, run_id: int) -> None:
        """Delete a run and every row of it (an optimization iteration that pointed at it keeps its score)."""
        self.run(run_id)
        with self._db.transaction() as conn:
            for statement in q.DELETE_RUN:
                conn.execute(statement, {"run_id": run_id})

    def runs(
        self,
        strategy: int | str | None = None,
        *,
        status: str | None = "completed",
        order_by: str = "run_id",
        descending: bool = True,
        limit: int = 100,
    ) -> builtins.list[dict[str, Any]]:
        """Runs (of one strategy, any version when given by name... by id: that version), newest first or ordered
        by any metric (``order_by="sharpe_ratio"``, ``"cagr"``, ...)."""
        strategy_id = None if strategy is None else (self._strategy(strategy)).strategy_id
        if not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0:
            raise ValidationError(f"limit must be a positive integer, got {limit!r}")
        if not isinstance(order_by, str) or not order_by:
            raise ValidationError(f"order_by must be a column or metric name, got {order_by!r}")
        if order_by in _RUN_COLUMNS:
            order: sql.Composable = sql.SQL("r.{} {}").format(
                sql.Identifier(order_by), sql.SQL("DESC" if descending else "ASC")
            )
        else:
            order = q.metric_order(order_by, descending)
        query = sql.SQL(q.RUNS).format(order=order)
        return self._db.fetch_all(query, {"strategy_id": strategy_id, "status": status, "limit": limit}, readonly=False)

    def best(
        self, strategy: int | str, metric: str = "sharpe_ratio", *, n: int = 10, lowest: bool = False
    ) -> builtins.list[dict[str, Any]]:
        """The ``n`` completed runs of ``strategy`` with the highest ``metric`` (the lowest with ``lowest``)."""
        return self.runs(strategy, order_by=metric, descending=not lowest, limit=n)

    def sensitivity(
        self, strategy: int | str, parameter: str, metric: str = "sharpe_ratio"
    ) -> builtins.list[dict[str, Any]]:
        """``metric`` by value of ``parameter`` over the strategy's completed runs: runs, mean, min, max."""
        found = self._strategy(strategy)
        if parameter not in {s.name for s in found.params}:
            raise ValidationError(f"{parameter!r} is not a parameter of {found.label}")
        rows = self._db.fetch_all(
            q.SENSITIVITY, {"strategy_id": found.strategy_id, "parameter": parameter, "metric": metric}, readonly=False
        )
        spec = next(s for s in found.params if s.name == parameter)
        return [{**r, "value": p.from_json(spec, r["value"])} for r in rows]

    def compare(self, run_ids: Sequence[int], metrics: Sequence[str] | None = None) -> builtins.list[dict[str, Any]]:
        """One row per run: id, strategy, parameters and the chosen metrics (default: the main ones)."""
        wanted = list(metrics or COMPARED)
        rows = []
        for run_id in run_ids:
            run = self.run(run_id)
            stored = run["metrics"] or {}
            rows.append(
                {
                    "run_id": run["run_id"],
                    "strategy": f"{run['strategy']} v{run['strategy_version']}",
                    "status": run["status"],
                    "parameters": run["parameters"],
                    **{k: stored.get(k) for k in wanted},
                }
            )
        return rows

    def report(self, run_id: int, path: str | Path, *, compare: Sequence[int] = (), title: str | None = None) -> Path:
        """Write the tear sheet of ``run_id`` (other runs in ``compare`` overlaid) to ``path`` as one
        self-contained HTML file; return the path. See :mod:`tradedb.strategies.report`."""
        target = Path(path)
        if target.suffix.lower() not in (".html", ".htm"):
            raise ValidationError(f"the tear sheet is HTML: give a path ending in .html, got {str(path)!r}")
        if not target.parent.exists():
            raise ValidationError(f"directory {str(target.parent)!r} does not exist")
        curves = [self._curve(r) for r in (run_id, *compare)]
        target.write_text(tearsheet.render(curves[0], curves[1:], title=title), encoding="utf-8")
        return target

    def _curve(self, run_id: int) -> tearsheet.Curve:
        run = self.run(run_id)
        if run["status"] != "completed":
            raise ValidationError(f"backtest run {run_id} is {run['status']}: only a completed run has a tear sheet")
        table = self.equity(run_id)
        ts = table["ts"].cast(pa.int64()).to_numpy().astype("datetime64[us]")
        label = f"#{run_id} {run['strategy']} v{run['strategy_version']}"
        return tearsheet.Curve(label, run["metrics"] or {}, ts, table["equity"].to_numpy())

    def equity(self, run_id: int, *, as_: ReadFormat = "arrow") -> Any:
        """The equity curve (ts, equity, cash) in time order."""
        return self._read("equity", run_id, as_)

    def trades(self, run_id: int, *, as_: ReadFormat = "arrow") -> Any:
        """The simulated trades in execution order."""
        return self._read("trades", run_id, as_)

    def positions(self, run_id: int, *, as_: ReadFormat = "arrow") -> Any:
        """The position history."""
        return self._read("positions", run_id, as_)

    def orders(self, run_id: int, *, as_: ReadFormat = "arrow") -> Any:
        """The simulated orders."""
        return self._read("orders", run_id, as_)

    def stream(
        self, run_id: int, what: str = "equity", *, as_: ReadFormat = "arrow", piece_bytes: int = 8 << 20
    ) -> Iterator[Any]:
        """A series of a run in pieces of about ``piece_bytes`` of COPY data each (bounded memory), each piece an
        Arrow table (or ``as_`` "pandas", "polars", "rows")."""
        check_format(as_)
        kind = self._series(what)
        self.run(run_id)
        query = self._select(kind, run_id)
        for piece in copy_arrow(self._db, query, series.schema_of(kind), piece_bytes=piece_bytes):
            yield convert(piece, as_)

    def _read(self, what: str, run_id: int, as_: str) -> Any:
        check_format(as_)
        kind = self._series(what)
        self.run(run_id)
        return convert(copy_table(self._db, self._select(kind, run_id), series.schema_of(kind)), as_)

    @staticmethod
    def _series(what: str) -> series.Series:
        if what not in _SERIES:
            raise ValidationError(f"series must be one of {', '.join(_SERIES)}, got {what!r}")
        return _SERIES[what]

    @staticmethod
    def _select(kind: series.Series, run_id: int) -> sql.Composed:
        return q.select_series(kind.table, kind.names, _ORDER[kind.name], run_id)

    def _strategy(self, strategy: int | str) -> Strategy:
        return self._strategies.get(strategy)


def _metrics(
    kept: dict[str, series.Accumulator],
    ts: np.ndarray,
    equity: np.ndarray,
    bench: tuple[np.ndarray, np.ndarray] | None,
    *,
    periods_per_year: float,
    risk_free: float,
) -> dict[str, Any]:
    result = m.curve_metrics(ts, equity, periods_per_year=periods_per_year, risk_free=risk_free, benchmark=bench)
    trades = kept["trades"]
    years = (len(equity) - 1) / float(periods_per_year)
    result.update(
        m.trade_metrics(
            trades.column("quantity"),
            trades.column("price"),
            trades.column("pnl"),
            mean_equity=float(equity.mean()),
            years=years,
        )
    )
    positions = kept["positions"]
    cash = kept["equity"].column("cash")
    if positions.rows:
        result["exposure"] = m.exposure_from_positions(
            ts, positions.times(), positions.column("security_id"), positions.column("quantity")
        )
    elif len(cash) == len(equity):  # cash was given: invested where it differs from equity
        result["exposure"] = float(np.mean(cash))
    else:
        result["exposure"] = None
    return result


#: A series checked in memory (its tables), or None for a stream (checked as it is copied).
_Tables = builtins.list[pa.Table] | None
#: The columns each series keeps in memory for the metrics.
_KEEP = {
    "equity": ("equity", "cash"),
    "trades": ("quantity", "price", "pnl"),
    "positions": ("quantity", "security_id"),
}


def _check_complete(acc: series.Accumulator) -> None:
    if acc.series is series.EQUITY and acc.rows < 2:
        raise ValidationError(f"equity has {acc.rows} point(s); a run needs at least 2 (metrics of an empty run)")


def _check_securities(conn: Connection[TupleRow], ids: set[int]) -> None:
    cursor = conn.execute(q.KNOWN_SECURITIES, (sorted(ids),))
    known = {r[0] for r in cursor.fetchall()}
    unknown = sorted(ids - known)
    if unknown:
        raise ValidationError(f"unknown securities (not in shared.securities): {unknown[:5]}")


#: The metrics ``compare`` shows by default.
COMPARED = (
    "total_return",
    "cagr",
    "annual_volatility",
    "sharpe_ratio",
    "sortino_ratio",
    "calmar_ratio",
    "max_drawdown",
    "win_rate",
    "profit_factor",
    "trade_count",
    "exposure",
    "alpha",
    "beta",
)


def _hash(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=20).hexdigest()


def _json_model(model: Mapping[str, Any] | None, what: str) -> dict[str, Any] | None:
    if model is None:
        return None
    if not isinstance(model, Mapping):
        raise ValidationError(f"{what} must be a mapping (e.g. {{'type': 'per_share', 'rate': 0.005}}), got {model!r}")
    try:
        return dict(json.loads(p.canonical_json(dict(model))))
    except (TypeError, ValueError) as exc:  # pragma: no cover - canonical_json stringifies
        raise ValidationError(f"{what} is not JSON-serializable: {exc}") from exc


def _check_seed(seed: Any) -> int | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int) or not -(2**63) <= seed < 2**63:
        raise ValidationError(f"random_seed must be a 64-bit integer, got {seed!r}")
    return seed


def _check_text(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{what} must be non-empty text, got {value!r}")
    return value


def _check_capital(value: Any) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValidationError(f"initial_capital must be a positive number, got {value!r}")
    number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if not number.is_finite() or number <= 0:
        raise ValidationError(f"initial_capital must be a positive number, got {value!r}")
    return number


def _decimal(value: Any) -> Decimal | None:
    return None if value is None or not math.isfinite(value) else Decimal(repr(float(value)))


def _benchmark(data: Any) -> tuple[np.ndarray, np.ndarray]:
    """A benchmark series as (datetime64[us] ascending, float levels): a pandas Series with a DatetimeIndex, or a
    table with ts and one of value/close/price/equity."""
    if type(data).__module__.split(".")[0] == "pandas" and hasattr(data, "index") and not hasattr(data, "columns"):
        frame = data.rename("value").rename_axis("ts").reset_index()
        data = frame
    chunks = list(series.chunks(data, series.EQUITY))
    table = pa.concat_tables(chunks) if chunks else None
    if table is None or table.num_rows == 0:
        raise ValidationError("the benchmark series is empty")
    names = table.column_names
    value = next((c for c in ("value", "close", "price", "equity") if c in names), None)
    time = next((c for c in ("ts", "timestamp", "time", "date") if c in names), None)
    if value is None or time is None:
        raise ValidationError(f"the benchmark needs a time column and a value column (value/close/price); got {names}")
    normalized = series.normalize(pa.table({"ts": table[time], "equity": table[value]}), series.EQUITY)
    micros = normalized["ts"].cast(pa.int64()).to_numpy()
    order = np.argsort(micros, kind="stable")
    micros = micros[order]
    if (np.diff(micros) == 0).any():
        raise ValidationError("the benchmark has repeated timestamps")
    levels = normalized["equity"].to_numpy()[order].astype(np.float64)
    return micros.astype("datetime64[us]"), levels

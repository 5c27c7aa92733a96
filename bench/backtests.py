"""Benchmark: backtests, every figure against a baseline measured in the same run.

1. Recording a run with a 1M-point equity curve and 100k trades (``db.backtests.record``: checks, hashes,
   metrics, binary COPY, one transaction) against raw psycopg binary COPY of the same rows into the same tables
   (``copy.write_row`` with the column types set). Goal: rows/s >= 0.9x.
2. Reading the run's equity curve back as Arrow (``db.backtests.equity``) against ``pandas.read_sql`` of the same
   query. Goal: >= 3x.
3. Metrics of a 1M-point curve (``metrics.curve_metrics``: returns, CAGR, volatility, Sharpe, Sortino, drawdown
   and its periods, Calmar, alpha and beta) against empyrical-reloaded computing the same metrics. Goal: within
   2x of empyrical's time.
"""

from __future__ import annotations

import os
import statistics
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime

import empyrical  # type: ignore[import-untyped]
import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa

import tradedb
from _server import bench_database, bench_server
from tradedb.columnar.binary_encode import encode_copy
from tradedb.marketdata.securities import upsert
from tradedb.strategies import Param
from tradedb.strategies import metrics as m

POINTS = int(os.environ.get("TRADEDB_BENCH_EQUITY_POINTS", "1000000"))
TRADES = POINTS // 10
ROUNDS = 3
DBNAME = "tdbbench_backtests"
T0 = datetime(2020, 1, 1, tzinfo=UTC)


def median(values: list[float]) -> float:
    return statistics.median(values)


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def generated(security_id: int, seed: int) -> tuple[pa.Table, pa.Table]:
    rng = np.random.default_rng(seed)
    ts = pa.array(
        (np.datetime64(T0.replace(tzinfo=None), "us") + np.arange(POINTS) * np.timedelta64(60, "s")).astype(
            "datetime64[us]"
        ),
        pa.timestamp("us", tz="UTC"),
    )
    equity = 1e6 * np.cumprod(1 + rng.normal(0.00001, 0.0005, POINTS))
    curve = pa.table({"ts": ts, "equity": equity, "cash": equity * 0.3})
    trade_ts = ts.take(pa.array(np.sort(rng.choice(POINTS, TRADES, replace=False))))
    pnl = np.where(np.arange(TRADES) % 2 == 1, rng.normal(5, 50, TRADES), np.nan)
    trades = pa.table(
        {
            "security_id": pa.array(np.full(TRADES, security_id), pa.int64()),
            "side": pa.array(np.where(np.arange(TRADES) % 2 == 0, "buy", "sell")),
            "quantity": rng.uniform(1, 500, TRADES),
            "price": rng.uniform(10, 200, TRADES),
            "commission": np.full(TRADES, 1.0),
            "pnl": pa.array(pnl, from_pandas=True),
            "executed_at": trade_ts,
        }
    )
    return curve, trades


def raw_copy(url: str, run_id: int, curve: pa.Table, trades: pa.Table) -> None:
    """The baseline: psycopg's own binary COPY, row by row, of the same rows."""
    eq_rows = list(zip(*(curve[c].to_pylist() for c in ("ts", "equity", "cash")), strict=True))
    tr_rows = list(
        zip(
            *(
                trades[c].to_pylist()
                for c in ("security_id", "side", "quantity", "price", "commission", "pnl", "executed_at")
            ),
            strict=True,
        )
    )
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY strategy_engine.backtest_equity_curve (run_id, ts, equity, cash) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["int8", "timestamptz", "float8", "float8"])
            for row in eq_rows:
                copy.write_row((run_id, *row))
        with cur.copy(
            "COPY strategy_engine.backtest_trades (run_id, security_id, side, quantity, price, commission, pnl, "
            "executed_at) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["int8", "int8", "text", "float8", "float8", "float8", "float8", "timestamptz"])
            for row in tr_rows:
                copy.write_row((run_id, *row))
        for table in ("backtest_equity_curve", "backtest_trades", "backtest_runs"):
            conn.execute(f"DELETE FROM strategy_engine.{table} WHERE run_id = %s", (run_id,))  # noqa: S608


def server_copy(url: str, run_id: int, curve: pa.Table, trades: pa.Table) -> None:
    """The floor: the same rows already encoded as binary COPY (outside the timing), only sent."""
    eq = curve.append_column("run_id", pa.array(np.full(curve.num_rows, run_id), pa.int64()))
    tr = trades.append_column("run_id", pa.array(np.full(trades.num_rows, run_id), pa.int64()))
    eq_columns = ["ts", "equity", "cash", "run_id"]
    tr_columns = ["security_id", "side", "quantity", "price", "commission", "pnl", "executed_at", "run_id"]
    payloads = [(eq_columns, encode_copy(eq, eq_columns)), (tr_columns, encode_copy(tr, tr_columns))]
    tables = ("backtest_equity_curve", "backtest_trades")
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        started = time.perf_counter()
        for table, (columns, payload) in zip(tables, payloads, strict=True):
            with cur.copy(f"COPY strategy_engine.{table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
                for part in payload:
                    copy.write(part)
        SERVER_TIMES.append(time.perf_counter() - started)
        conn.rollback()


SERVER_TIMES: list[float] = []


def bench_record(db: tradedb.Database, url: str, security: int) -> int:
    ours, raw = [], []
    run_id = 0
    for r in range(ROUNDS):
        curve, trades = generated(security, seed=r)

        def record(curve: pa.Table = curve, trades: pa.Table = trades, k: int = r) -> None:
            db.backtests.record("bench", parameters={"k": k}, equity=curve, trades=trades, periods_per_year=252 * 390)

        ours.append(timed(record))
        run_id = db.backtests.runs("bench", limit=1)[0]["run_id"]
        placeholder = int(
            db.fetch_value(
                "INSERT INTO strategy_engine.backtest_runs (strategy_id, period_start, period_end, initial_capital) "
                "SELECT strategy_id, now(), now() + interval '1 day', 1 FROM strategy_engine.strategies "
                "WHERE name = 'bench' RETURNING run_id",
                readonly=False,
            )
        )

        def copy(curve: pa.Table = curve, trades: pa.Table = trades, into: int = placeholder) -> None:
            raw_copy(url, into, curve, trades)

        raw.append(timed(copy))
        server_copy(url, placeholder, curve, trades)
    rows = POINTS + TRADES
    print(f"\nrecording a run of {POINTS:,} equity points and {TRADES:,} trades, medians of {ROUNDS}:")
    print(f"  db.backtests.record      {median(ours):6.3f} s  {rows / median(ours):>11,.0f} rows/s")
    print(f"  raw psycopg binary COPY  {median(raw):6.3f} s  {rows / median(raw):>11,.0f} rows/s")
    print(f"  pre-encoded, only sent   {median(SERVER_TIMES):6.3f} s  {rows / median(SERVER_TIMES):>11,.0f} rows/s")
    print(
        f"  record: {median(raw) / median(ours):.2f}x raw psycopg binary COPY (goal >= 0.9x); "
        f"{median(SERVER_TIMES) / median(ours):.2f}x the server's COPY of pre-encoded rows"
    )
    return int(run_id)


def bench_read(db: tradedb.Database, url: str, run_id: int) -> None:
    from sqlalchemy import create_engine

    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    query = "SELECT ts, equity, cash FROM strategy_engine.backtest_equity_curve WHERE run_id = %(run)s ORDER BY ts"
    ours = [timed(lambda: db.backtests.equity(run_id)) for _ in range(ROUNDS)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = [timed(lambda: pd.read_sql(query, engine, params={"run": run_id})) for _ in range(ROUNDS)]
    engine.dispose()
    print(f"\nreading the equity curve back ({POINTS:,} rows), medians of {ROUNDS}:")
    print(f"  db.backtests.equity (Arrow)  {median(ours):6.3f} s")
    print(f"  pandas.read_sql              {median(theirs):6.3f} s")
    print(f"  Arrow read: {median(theirs) / median(ours):.1f}x pandas.read_sql (goal >= 3x)")


def bench_metrics() -> None:
    rng = np.random.default_rng(11)
    b = rng.normal(0.0002, 0.01, POINTS - 1)
    r = 0.0001 + 0.7 * b + rng.normal(0, 0.004, POINTS - 1)
    equity = 1e6 * np.cumprod(np.concatenate([[1.0], 1 + r]))
    bench = 100 * np.cumprod(np.concatenate([[1.0], 1 + b]))
    ts = (np.datetime64("2000-01-01", "us") + np.arange(POINTS) * np.timedelta64(1, "D")).astype("datetime64[us]")

    def ours() -> None:
        m.curve_metrics(ts, equity, benchmark=(ts, bench), risk_free=0.00001)

    def theirs() -> None:
        returns = equity[1:] / equity[:-1] - 1
        factor = bench[1:] / bench[:-1] - 1
        empyrical.cum_returns_final(returns)
        empyrical.annual_return(returns)
        empyrical.annual_volatility(returns)
        empyrical.sharpe_ratio(returns, risk_free=0.00001)
        empyrical.sortino_ratio(returns, required_return=0.00001)
        empyrical.downside_risk(returns, required_return=0.00001)
        empyrical.max_drawdown(returns)
        empyrical.calmar_ratio(returns)
        empyrical.alpha_beta(returns, factor, risk_free=0.00001)

    mine = [timed(ours) for _ in range(ROUNDS)]
    ref = [timed(theirs) for _ in range(ROUNDS)]
    print(f"\nmetrics of a {POINTS:,}-point curve with a benchmark, medians of {ROUNDS}:")
    print(f"  tradedb metrics (and the top drawdown periods)  {median(mine) * 1000:7.1f} ms")
    print(f"  empyrical-reloaded, the same metrics            {median(ref) * 1000:7.1f} ms")
    print(f"  tradedb: {median(mine) / median(ref):.2f}x empyrical's time (goal <= 2x)")


def main() -> None:
    with bench_server() as admin, bench_database(admin, DBNAME) as (url, settings):
        with tradedb.connect(url, settings=settings) as db:
            db.strategies.register("bench", [Param("k", "int")])
            upsert(db, [{"symbol": "BENCH", "exchange_mic": "XNAS"}])
            security = db.market_data.security_ids(["BENCH"])["BENCH"]
            run_id = bench_record(db, url, security)
            bench_read(db, url, run_id)
        bench_metrics()


if __name__ == "__main__":
    main()

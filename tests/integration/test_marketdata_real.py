"""Real market data from ../shared/data (see its README): LOBSTER, Binance, TrueFX, HistData, Databento, S&P 500.

Skipped, saying why, when the data folder is absent. The files are never copied into the repository.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

import tradedb
from tests.conftest import SHARED_DATA, TestDatabase, run_cli
from tests.integration.market import assert_bars_equal, lobster_minute_bars
from tradedb.marketdata import files as ingest_files

DATA = SHARED_DATA
pytestmark = pytest.mark.usefixtures("shared_data")
LOBSTER = DATA / "01_lobster_amzn_2012-06-21_L1" / "AMZN_2012-06-21_34200000_57600000_message_1.csv"
TICKS = DATA / "02_tick_quotes_trades"
SP500 = DATA / "03_daily_ohlcv" / "sp500_5yr_individual" / "individual_stocks_5yr.tar.gz"


@pytest.fixture(scope="module")
def conn(db: TestDatabase) -> Iterator[tradedb.Database]:
    with tradedb.connect(db.url, settings=db.settings) as database:
        yield database


def scalar(database: tradedb.Database, query: str, params: tuple[Any, ...] = ()) -> Any:
    return database.fetch_value(query, params)


def test_lobster_day_and_bars_equal_an_independent_computation(conn: tradedb.Database) -> None:
    day = ingest_files.read_lobster(LOBSTER)
    assert (day.symbol, day.day) == ("AMZN", date(2012, 6, 21))
    md = conn.market_data
    events = md.write_order_book_events(
        day.events, source="lobster", symbol="AMZN", tz="America/New_York", create_securities=True
    )
    quotes = md.write_quotes(day.quotes, source="lobster", symbol="AMZN", tz="America/New_York")
    trades = md.write_trades(day.trades, source="lobster", symbol="AMZN", tz="America/New_York")
    assert (events.written, events.rejected) == (57_515, 0)
    assert (trades.written, trades.rejected) == (8_974 + 2_445, 0)
    assert quotes.rejected == 0 and 0 < quotes.written < 57_515
    # The first message: 09:30:00.01746 New York time (EDT) is 13:30:00.01746 UTC.
    first = scalar(conn, "SELECT min(ts) FROM data_ingestion.order_book_events WHERE source = 'lobster'")
    assert first == datetime(2012, 6, 21, 13, 30, 0, 17460, tzinfo=UTC)

    start, end = datetime(2012, 6, 21, 13, 30, tzinfo=UTC), datetime(2012, 6, 21, 20, 0, tzinfo=UTC)
    stored = md.aggregate_bars("market_trades", "1m", start, end, symbols=["AMZN"], source="lobster")
    ours = md.bars("AMZN", start, end, timeframe="1m", source="lobster", as_="pandas")
    assert stored == len(ours)

    assert_bars_equal(ours.set_index("ts"), lobster_minute_bars(LOBSTER))


def test_binance_trades_and_quotes_parquet(conn: tradedb.Database) -> None:
    md = conn.market_data
    raw = ingest_files.read_table(TICKS / "binance_btcusdt_trades_2021-01-08.parquet", "parquet")
    trades = ingest_files.canonical(raw, "trades", symbol="BTC/USDT").table
    result = md.write_trades(trades, source="binance", symbol="BTC/USDT", create_securities=True, asset_type="crypto")
    assert (result.written, result.rejected) == (2_001, 0)
    quotes_raw = ingest_files.read_table(TICKS / "binance_btcusdt_quotes_2021-01-08.parquet", "parquet")
    result = md.write_quotes(ingest_files.canonical(quotes_raw, "quotes").table, source="binance")
    assert (result.written, result.rejected) == (451, 0)
    sides = {
        r["aggressor_side"]: r["n"]
        for r in conn.fetch_all(
            "SELECT aggressor_side, count(*) AS n FROM data_ingestion.market_trades WHERE source = 'binance' GROUP BY 1"
        )
    }
    makers = raw["buyer_maker"].to_pylist()
    assert sides == {"sell": makers.count("True"), "buy": makers.count("False")}
    latest = md.latest_quotes(["BTC/USDT"])["BTC/USDT"]
    assert latest is not None and latest["ts"] == max(quotes_raw["timestamp"].to_pylist())


def test_truefx_repeated_timestamps_all_land(conn: tradedb.Database) -> None:
    path = TICKS / "truefx_usdjpy_ticks_2013-01.csv"
    raw = pd.read_csv(path)
    assert raw["timestamp"].duplicated().any()  # the point of this file
    exact = int(raw.duplicated().sum())
    table = ingest_files.canonical(ingest_files.read_table(path, "csv"), "quotes", symbol="USD/JPY").table
    result = conn.market_data.write_quotes(
        table, source="truefx", symbol="USD/JPY", policy="log", create_securities=True, asset_type="fx"
    )
    assert (result.written, result.rejected, result.warnings) == (1_000, 0, exact)


def test_histdata_est_without_daylight_saving(db: TestDatabase, conn: tradedb.Database) -> None:
    conn.market_data.write_quotes(
        [(datetime(2020, 1, 1, tzinfo=UTC), "EUR/USD", 1.0, 1.1)],
        source="seed-fx",
        create_securities=True,
        asset_type="fx",
    )
    path = TICKS / "histdata_eurusd_ticks_2020-01.csv"
    done = run_cli(
        "ingest",
        "quotes",
        str(path),
        "--format",
        "histdata",
        "--symbol",
        "EUR/USD",
        "--source",
        "histdata",
        "--json",
        env=db.env(),
    )
    assert done.returncode == 0, done.stderr
    rows = conn.fetch_all(
        "SELECT min(ts) AS first, max(ts) AS last, count(*) AS n FROM data_ingestion.quotes WHERE source = 'histdata'"
    )
    # 17:00:00.065 EST (UTC-5 all year, HistData's convention) is 22:00:00.065 UTC.
    assert rows == [
        {
            "first": datetime(2020, 1, 1, 22, 0, 0, 65_000, tzinfo=UTC),
            "last": datetime(2020, 1, 2, 4, 0, 52, 125_000, tzinfo=UTC),
            "n": 9_500,
        }
    ]


def test_databento_cme_csv(db: TestDatabase, conn: tradedb.Database) -> None:
    common = ("--source", "databento", "--create-securities", "--asset-type", "future", "--json")
    # Without a venue trade id, two prints alike in every column are indistinguishable: `log` keeps both.
    trades = run_cli(
        "ingest",
        "trades",
        str(TICKS / "databento_glbx_esu4_trades_2024-07-01T23-58.csv"),
        "--policy",
        "log",
        *common,
        env=db.env(),
    )
    assert trades.returncode == 0, trades.stderr
    bars = run_cli(
        "ingest",
        "bars",
        str(TICKS / "databento_glbx_esu4_nqu4_ohlcv-1m_2024-07-01T23-40.csv"),
        "--timeframe",
        "1m",
        *common,
        env=db.env(),
    )
    assert bars.returncode == 0, bars.stderr
    quotes = run_cli(
        "ingest",
        "quotes",
        str(TICKS / "databento_glbx_esu4_mbp-1_2024-07-01T23-58.csv"),
        "--policy",
        "quarantine",
        *common,
        env=db.env(),
    )
    assert quotes.returncode == 0, quotes.stderr
    counts = {
        r["table_name"]: r["rows"]
        for r in conn.fetch_all(
            "SELECT table_name, sum(row_count) AS rows FROM data_ingestion.coverage WHERE source = 'databento' "
            "GROUP BY 1"
        )
    }
    raw_quotes = pd.read_csv(TICKS / "databento_glbx_esu4_mbp-1_2024-07-01T23-58.csv")
    # PostgreSQL keeps microseconds: events apart by nanoseconds only become repeats.
    raw_quotes["ts_us"] = raw_quotes["ts_event"].str[:26]
    repeats = int(raw_quotes[["ts_us", "bid_px_00", "ask_px_00", "bid_sz_00", "ask_sz_00"]].duplicated().sum())
    assert counts == {"market_trades": 120, "bars": 60, "quotes": 2_288 - repeats}
    sides = conn.fetch_all(
        "SELECT aggressor_side, count(*) AS n FROM data_ingestion.market_trades WHERE source = 'databento' "
        "GROUP BY 1 ORDER BY 1"
    )
    raw_trades = pd.read_csv(TICKS / "databento_glbx_esu4_trades_2024-07-01T23-58.csv")
    assert {r["aggressor_side"]: r["n"] for r in sides} == {
        "buy": int((raw_trades["side"] == "B").sum()),
        "sell": int((raw_trades["side"] == "A").sum()),
    }


def test_sp500_daily_bars_quarantine_and_reconcile(db: TestDatabase, conn: tradedb.Database) -> None:
    table = ingest_files.canonical(ingest_files.read_table(SP500, "csv"), "bars").table
    assert table.num_rows == 619_040
    md = conn.market_data
    options: dict[str, Any] = {"source": "sp500", "timeframe": "1d", "policy": "quarantine"}
    first = md.write_bars(table, create_securities=True, **options)
    assert first.rows == 619_040
    # The data's README: 11 rows with empty prices, 23 with inconsistent OHLC (those 11 among them).
    assert first.findings == {"missing_value": 11, "ohlc_violation": 23}
    assert (first.written, first.rejected) == (619_040 - 23, 23)
    stored = scalar(conn, "SELECT count(*) FROM data_ingestion.bars WHERE source = 'sp500'")
    assert stored == first.written
    # One log row per finding: the 11 rows with empty prices are logged under both of their checks.
    logged = conn.fetch_all(
        "SELECT check_type, count(*) AS n, count(DISTINCT details->>'row') AS rows"
        " FROM data_ingestion.data_quality_logs WHERE source = 'sp500' GROUP BY 1 ORDER BY 1"
    )
    found = [(r["check_type"], r["n"], r["rows"]) for r in logged]
    assert found == [("missing_value", 11, 11), ("ohlc_violation", 23, 23)]
    distinct = "SELECT count(DISTINCT details->>'row') FROM data_ingestion.data_quality_logs WHERE source = 'sp500'"
    assert scalar(conn, distinct) == 23
    assert scalar(conn, "SELECT count(DISTINCT security_id) FROM data_ingestion.bars WHERE source = 'sp500'") == 505
    coverage = md.coverage(table="bars", source="sp500")
    assert sum(c["row_count"] for c in coverage) == first.written and len(coverage) == 505

    again = md.write_bars(table, on_conflict="skip", **options)
    assert (again.written, again.skipped, again.rejected) == (0, first.written, 23)
    replaced = md.write_bars(table, on_conflict="replace", **options)
    assert (replaced.written, replaced.replaced) == (first.written, first.written)
    assert scalar(conn, "SELECT count(*) FROM data_ingestion.bars WHERE source = 'sp500'") == first.written
    assert sum(c["row_count"] for c in md.coverage(table="bars", source="sp500")) == first.written
    aapl = md.bars("AAPL", date(2013, 2, 8), date(2013, 2, 9), source="sp500")
    assert [(b["open"], b["close"]) for b in aapl] == [(67.7142, 67.8542)]


def test_zipline_splits_and_dividends_adjust_bars(db: TestDatabase, conn: tradedb.Database) -> None:
    path = DATA / "03_daily_ohlcv" / "zipline_csvdir_daily" / "KO.csv.gz"
    done = run_cli(
        "ingest", "bars", str(path), "--symbol", "KO", "--source", "zipline", "--create-securities", env=db.env()
    )
    assert done.returncode == 0, done.stderr
    adjusted = conn.market_data.adjusted_bars("KO", date(2012, 8, 9), date(2012, 8, 15), source="zipline")
    raw = {r["ts"].date(): r for r in conn.market_data.bars("KO", date(2012, 8, 9), date(2012, 8, 15))}
    before, after = date(2012, 8, 10), date(2012, 8, 13)
    by_day = {r["ts"].date(): r for r in adjusted}
    # 2:1 on 2012-08-13: the day before is halved (and any later dividend factor applied), the split day is not.
    assert by_day[after]["close"] == pytest.approx(raw[after]["close"] * by_day[after]["factor"])
    assert by_day[before]["factor"] == pytest.approx(by_day[after]["factor"] / 2)
    actions = conn.fetch_all("SELECT kind, count(*) AS n FROM data_ingestion.corporate_actions GROUP BY 1")
    assert {r["kind"]: r["n"] for r in actions}["split"] == 1
    assert np.isclose(raw[before]["close"] / 2, by_day[before]["close"] / by_day[after]["factor"])
    assert isinstance(adjusted, list) and all(isinstance(r["factor"], float) for r in adjusted)


def test_cli_ingest_lobster(db: TestDatabase, conn: tradedb.Database) -> None:
    done = run_cli(
        "ingest", "lobster", str(LOBSTER), "--source", "lobster-cli", "--create-securities", "--json", env=db.env()
    )
    assert done.returncode == 0, done.stderr
    results = {r["table"]: r for r in json.loads(done.stdout)}
    assert results["order_book_events"]["written"] == 57_515
    assert results["market_trades"]["written"] == 8_974 + 2_445
    assert results["quotes"]["rejected"] == 0
    again = run_cli(
        "ingest", "lobster", str(LOBSTER), "--source", "lobster-cli", "--on-conflict", "skip", "--json", env=db.env()
    )
    assert again.returncode == 0, again.stderr
    assert all(r["written"] == 0 for r in json.loads(again.stdout))


def reference_adjusted_close(frame: pd.DataFrame, method: str) -> np.ndarray:
    """Adjusted closes computed straight from the vendor file, one dividend at a time (no tradedb code)."""
    close = frame["close"].to_numpy(dtype=float)
    factor = np.ones(len(frame))
    for i in np.flatnonzero(frame["dividend"].to_numpy(dtype=float) > 0):
        d = float(frame["dividend"].iloc[i])
        if method == "previous_close":
            factor[:i] *= 1.0 - d / close[i - 1]
        else:
            factor[:i] *= close[i] / (close[i] + d)
    for i in np.flatnonzero(frame["split"].to_numpy(dtype=float) != 1.0):
        factor[:i] /= float(frame["split"].iloc[i])
    adjusted: np.ndarray = close * factor
    return adjusted


@pytest.mark.parametrize("method", ["previous_close", "ex_close"])
def test_dividend_methods_match_an_independent_computation(
    db: TestDatabase, conn: tradedb.Database, method: str
) -> None:
    path = DATA / "03_daily_ohlcv" / "zipline_csvdir_daily" / "AAPL.csv.gz"
    frame = pd.read_csv(path, parse_dates=["date"])
    assert (frame["dividend"] > 0).sum() >= 8  # quarterly dividends over three years: a real test of both methods
    if not conn.market_data.coverage(symbol="AAPL", source="zipline-div"):
        done = run_cli(
            "ingest", "bars", str(path), "--symbol", "AAPL", "--source", "zipline-div", "--create-securities",
            env=db.env(),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    first, last = frame["date"].iloc[0].date(), frame["date"].iloc[-1].date() + timedelta(days=1)
    adjusted = conn.market_data.adjusted_bars(
        "AAPL", first, last, source="zipline-div", as_="pandas", dividend_method=method
    )
    expected = reference_adjusted_close(frame, method)
    assert len(adjusted) == len(frame)
    np.testing.assert_allclose(adjusted["close"].to_numpy(), expected, rtol=1e-12)
    other = "ex_close" if method == "previous_close" else "previous_close"
    assert not np.allclose(expected, reference_adjusted_close(frame, other), rtol=1e-9)  # the methods differ
    with pytest.raises(tradedb.ValidationError, match="dividend_method"):
        conn.market_data.adjusted_bars("AAPL", first, last, dividend_method="yahoo")

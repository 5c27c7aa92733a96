"""Portfolio snapshots and daily performance against a real database, checked against an independent pandas
computation (cash-flow PnL, which does not depend on average-cost accounting) and empyrical's ratios, on a generated
book and on real daily closes."""

from __future__ import annotations

import gzip
import math
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import empyrical  # type: ignore[import-untyped]
import pandas as pd
import pytest

import tradedb
from tests.conftest import TestDatabase, run_cli
from tests.integration.facade import Api
from tradedb import NotFoundError, ValidationError

CAPITAL = 1_000_000


@pytest.fixture(params=["sync", "async"])
def api(request: pytest.FixtureRequest, db: TestDatabase) -> Iterator[Api]:
    handle = Api(str(request.param), db.url, db.settings)
    yield handle
    handle.close()


@pytest.fixture
def owner(db: TestDatabase) -> Iterator[tradedb.Database]:
    with tradedb.connect(db.url, settings=db.settings, max_size=2) as handle:
        yield handle


def new_book(owner: tradedb.Database, symbols: list[str]) -> tuple[str, dict[str, int]]:
    account = f"P-{uuid.uuid4().hex[:10]}"
    owner.accounts.create(account, "analytics book", capital=CAPITAL)
    owner.risk.set_limit(account, "max_position_notional", 10**12)
    tag = uuid.uuid4().hex[:4].upper()
    return account, {s: owner.securities.add(f"{s}{tag}", exchange="XNAS") for s in symbols}


def run_book(
    owner: tradedb.Database, account: str, ids: dict[str, int], closes: pd.DataFrame, seed: int, n_fills: int
) -> pd.DataFrame:
    """Write ``closes`` (trading days x symbols) as daily bars, record random fills on those days; return them."""
    bars = [
        {"ts": datetime(d.year, d.month, d.day, tzinfo=UTC), "security_id": ids[s], "open": float(c),
         "high": float(c), "low": float(c), "close": float(c), "volume": 1.0}
        for d, row in closes.iterrows() for s, c in row.items()
    ]  # fmt: skip
    owner.market_data.write_bars(bars, source="analytics-test", timeframe="1d")
    rng = random.Random(seed)
    trading_days = list(closes.index)
    fills = []
    for n in range(n_fills):
        day = rng.choice(trading_days[:-1])
        symbol = rng.choice(list(ids))
        side = rng.choice(["buy", "buy", "sell"])
        quantity = Decimal(rng.randint(1, 400))
        price = (Decimal(repr(float(closes.at[day, symbol]))) * Decimal(rng.randint(990, 1010)) / 1000).quantize(
            Decimal("0.0001")
        )
        commission = Decimal(rng.randint(0, 500)) / 100
        at = datetime(day.year, day.month, day.day, 14, tzinfo=UTC) + timedelta(seconds=n)
        placed = owner.execution.submit_order(
            account_id=account, security_id=ids[symbol], side=side, quantity=quantity, order_type="limit",
            limit_price=price,
        )  # fmt: skip
        owner.execution.record_fill(
            f"P-{uuid.uuid4().hex}", placed["order_id"], quantity, price, commission=commission, executed_at=at
        )
        fills.append({"day": day.date(), "symbol": symbol, "side": side, "quantity": float(quantity),
                      "price": float(price), "commission": float(commission), "at": at})  # fmt: skip
    return pd.DataFrame(fills).sort_values("at")


def reference(fills: pd.DataFrame, closes: pd.DataFrame, last: date) -> pd.DataFrame:
    """Daily performance by cash flows: PnL = cash spent and received + positions at the close."""
    days = pd.date_range(fills["day"].min(), last, freq="D")
    marks = closes.reindex(closes.index.union(days)).ffill().reindex(days)
    signed = fills["quantity"] * fills["side"].map({"buy": 1.0, "sell": -1.0})
    fills = fills.assign(signed=signed, cash=-signed * fills["price"] - fills["commission"],
                         notional=fills["quantity"] * fills["price"], day=pd.to_datetime(fills["day"]))  # fmt: skip
    held = fills.pivot_table(index="day", columns="symbol", values="signed", aggfunc="sum").reindex(days).fillna(0)
    held = held.cumsum().reindex(columns=marks.columns, fill_value=0.0)
    cash = fills.groupby("day")["cash"].sum().reindex(days).fillna(0).cumsum()
    total = cash + (held * marks).sum(axis=1)
    frame = pd.DataFrame({"total": total})
    frame["pnl"] = total.diff().fillna(total.iloc[0])
    frame["equity"] = CAPITAL + total
    before = frame["equity"].shift(1).fillna(CAPITAL)
    frame["daily_return"] = frame["pnl"] / before
    frame["total_return"] = frame["equity"] / CAPITAL - 1
    peak = frame["equity"].cummax().clip(lower=CAPITAL)
    frame["max_drawdown"] = ((peak - frame["equity"]) / peak).cummax()
    returns = frame["daily_return"]
    frame["volatility"] = returns.expanding(2).std() * math.sqrt(252)
    frame["sharpe_ratio"] = returns.expanding(2).mean() / returns.expanding(2).std() * math.sqrt(252)
    frame["turnover"] = fills.groupby("day")["notional"].sum().reindex(days).fillna(0) / before
    frame["trade_count"] = fills.groupby("day").size().reindex(days).fillna(0).astype(int)
    traded = frame["pnl"] != 0
    frame["win_rate"] = (frame["pnl"] > 0).cumsum() / traded.cumsum()
    return frame


def compare(got: list[Any], want: pd.DataFrame) -> None:
    assert [d.date for d in got] == [t.date() for t in want.index]
    for d, (_, w) in zip(got, want.iterrows(), strict=True):
        scale = max(1.0, abs(float(w["total"])))
        assert abs(float(d.pnl) - w["pnl"]) <= 1e-6 * scale, d.date
        assert abs(float(d.equity) - w["equity"]) <= 1e-6 * scale, d.date
        for field in ("daily_return", "total_return", "max_drawdown", "turnover"):
            assert math.isclose(float(getattr(d, field)), w[field], rel_tol=1e-7, abs_tol=1e-12), (d.date, field)
        for field in ("volatility", "sharpe_ratio", "win_rate"):
            value = getattr(d, field)
            if pd.isna(w[field]):
                assert value is None, (d.date, field)
            else:
                assert math.isclose(value, w[field], rel_tol=1e-6, abs_tol=1e-9), (d.date, field)
        assert d.trade_count == w["trade_count"]


def generated_closes(seed: int, symbols: list[str], days: int) -> pd.DataFrame:
    rng = random.Random(seed)
    index = pd.bdate_range("2025-03-03", periods=days)
    prices = {s: [100.0] for s in symbols}
    for s in symbols:
        for _ in range(days - 1):
            prices[s].append(round(prices[s][-1] * (1 + rng.gauss(0, 0.02)), 4))
    return pd.DataFrame(prices, index=index)


def test_daily_performance_matches_a_cash_flow_reference(owner: tradedb.Database) -> None:
    symbols = ["AA", "BB", "CC"]
    closes = generated_closes(11, symbols, 30)
    account, ids = new_book(owner, symbols)
    fills = run_book(owner, account, ids, closes, seed=5, n_fills=40)
    last = closes.index[-1].date() + timedelta(days=2)  # a weekend after the last close: marks carry over
    got = owner.analytics.daily_performance(account, end=last)
    compare(got, reference(fills, closes, last))
    # Stored as computed; empyrical agrees on the ratios of the whole period.
    stored = owner.analytics.performance(account)
    assert [(r["date"], r["pnl"], r["equity"]) for r in stored] == [(d.date, d.pnl, d.equity) for d in got]
    returns = pd.Series([float(d.daily_return) for d in got])
    assert math.isclose(got[-1].sharpe_ratio or 0, empyrical.sharpe_ratio(returns), rel_tol=1e-9)
    assert math.isclose(got[-1].sortino_ratio or 0, empyrical.sortino_ratio(returns), rel_tol=1e-9)
    assert math.isclose(got[-1].volatility or 0, empyrical.annual_volatility(returns), rel_tol=1e-9)
    assert math.isclose(got[-1].max_drawdown, -empyrical.max_drawdown(returns), rel_tol=1e-6, abs_tol=1e-12)
    # A window recomputes and stores only its days.
    window = owner.analytics.daily_performance(account, start=got[5].date, end=got[9].date)
    assert [(d.date, d.equity) for d in window] == [(d.date, d.equity) for d in got[5:10]]


def test_daily_performance_on_real_daily_closes(owner: tradedb.Database, shared_data: Path) -> None:
    folder = shared_data / "03_daily_ohlcv" / "zipline_csvdir_daily"
    frames = {}
    for symbol in ("KO", "MSFT", "IBM"):
        with gzip.open(folder / f"{symbol}.csv.gz", "rt") as f:
            frames[symbol] = pd.read_csv(f, parse_dates=["date"]).set_index("date")["close"]
    closes = pd.DataFrame(frames).dropna().iloc[:45]
    account, ids = new_book(owner, list(frames))
    fills = run_book(owner, account, ids, closes, seed=23, n_fills=35)
    last = closes.index[-1].date()
    compare(owner.analytics.daily_performance(account, end=last), reference(fills, closes, last))


def test_mark_to_market_stores_the_portfolio(api: Api, db: TestDatabase) -> None:
    with tradedb.connect(db.url, settings=db.settings, max_size=1) as owner:
        account, ids = new_book(owner, ["LONG", "SHRT", "FLAT"])
        for symbol, side, price in (("LONG", "buy", 50), ("SHRT", "sell", 20), ("FLAT", "buy", 10)):
            placed = owner.execution.submit_order(account_id=account, security_id=ids[symbol], side=side,
                                                  quantity=10, order_type="limit", limit_price=price)  # fmt: skip
            owner.execution.record_fill(f"M-{uuid.uuid4().hex}", placed["order_id"], 10, price)
    analytics = api.feature("analytics")
    checks = analytics.mark_to_market([account], marks={ids["LONG"]: 55, ids["SHRT"]: 18, ids["FLAT"]: 10})
    assert checks[0].exposure == {"gross": 830, "net": 470, "long": 650, "short": -180}
    stored = {r["security_id"]: r for r in analytics.portfolio(account)}
    assert (stored[ids["LONG"]]["market_value"], stored[ids["LONG"]]["unrealized_pnl"]) == (550, 50)
    assert (stored[ids["SHRT"]]["market_value"], stored[ids["SHRT"]]["unrealized_pnl"]) == (-180, 20)
    # A position closed since leaves the snapshot at the next mark.
    with tradedb.connect(db.url, settings=db.settings, max_size=1) as owner:
        placed = owner.execution.submit_order(account_id=account, security_id=ids["FLAT"], side="sell", quantity=10,
                                              order_type="limit", limit_price=12)  # fmt: skip
        owner.execution.record_fill(f"M-{uuid.uuid4().hex}", placed["order_id"], 10, 12)
    analytics.mark_to_market([account], marks={ids["LONG"]: 55, ids["SHRT"]: 18})
    rows = {r["security_id"]: r for r in analytics.portfolio(account)}
    assert rows[ids["FLAT"]]["quantity"] == 0 and rows[ids["FLAT"]]["realized_pnl"] == 20


def test_bad_performance_requests_are_refused(owner: tradedb.Database) -> None:
    account = f"NC-{uuid.uuid4().hex[:8]}"
    owner.accounts.create(account, "no capital")
    with pytest.raises(ValidationError, match="has no capital"):
        owner.analytics.daily_performance(account)
    with pytest.raises(ValidationError, match="capital must be > 0"):
        owner.accounts.set_capital(account, -5)
    owner.accounts.set_capital(account, 5000)
    assert owner.analytics.daily_performance(account) == []  # no fills, nothing to measure
    with pytest.raises(ValidationError, match="start must be a date"):
        owner.analytics.daily_performance(account, start="yesterday")
    with pytest.raises(ValidationError, match="is after end"):
        owner.analytics.daily_performance(account, start="2026-02-01", end="2026-01-01")
    with pytest.raises(NotFoundError, match="unknown account"):
        owner.analytics.daily_performance("NOBODY")


def test_cli_shows_portfolio_and_performance(db: TestDatabase) -> None:
    with tradedb.connect(db.url, settings=db.settings, max_size=1) as owner:
        account, ids = new_book(owner, ["CLI"])
        placed = owner.execution.submit_order(account_id=account, security_id=ids["CLI"], side="buy", quantity=4,
                                              order_type="limit", limit_price=25)  # fmt: skip
        owner.execution.record_fill(f"C-{uuid.uuid4().hex}", placed["order_id"], 4, 25)
        owner.market_data.write_trades(
            [{"ts": datetime.now(UTC), "security_id": ids["CLI"], "price": 26.0, "size": 1.0}], source="cli"
        )
    shown = run_cli("portfolio", "--account", account, "--mark", env=db.env())
    assert shown.returncode == 0, shown.stderr
    assert "104" in shown.stdout and f"{account}: gross 104, net 104" in shown.stdout
    perf = run_cli("performance", account, "--compute", env=db.env())
    assert perf.returncode == 0, perf.stderr
    assert "1000004" in perf.stdout

"""Backtest metrics against empyrical-reloaded (the reference library) and plain-Python references, on generated
returns and on real daily closes from ../shared/data."""

from __future__ import annotations

import gzip
import math
from typing import Any

import empyrical  # type: ignore[import-untyped]
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tests.conftest import SHARED_DATA
from tradedb.errors import ValidationError
from tradedb.strategies import metrics as m

ZIPLINE = SHARED_DATA / "03_daily_ohlcv" / "zipline_csvdir_daily"
RTOL = 1e-9


def days(n: int, start: str = "2020-01-01") -> np.ndarray:
    stamps: np.ndarray = pd.date_range(start, periods=n, freq="D").to_numpy().astype("datetime64[us]")
    return stamps


def closes(symbol: str) -> pd.Series:
    path = ZIPLINE / f"{symbol}.csv.gz"
    if not path.exists():
        pytest.skip(f"{path} is not available")
    with gzip.open(path, "rt") as f:
        frame = pd.read_csv(f, parse_dates=["date"])
    return frame.set_index("date")["close"].astype(float)


def close_to(got: Any, want: float) -> bool:
    if want is None or (isinstance(want, float) and not math.isfinite(want)):
        return got is None
    return got is not None and math.isclose(got, want, rel_tol=RTOL, abs_tol=1e-14)


def assert_matches_empyrical(
    equity: np.ndarray,
    *,
    ppy: float = 252.0,
    risk_free: float = 0.0,
    bench: np.ndarray | None = None,
    skip: tuple[str, ...] = (),
) -> dict[str, Any]:
    ts = days(len(equity))
    got = m.curve_metrics(
        ts, equity, periods_per_year=ppy, risk_free=risk_free, benchmark=None if bench is None else (ts, bench)
    )
    r = equity[1:] / equity[:-1] - 1
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):  # empyrical's own inf and NaN results
        want = reference_metrics(r, ppy=ppy, risk_free=risk_free, bench=bench)
    for name, value in want.items():
        if name not in skip:
            assert close_to(got[name], float(value)), (name, got[name], value)
    return got


def reference_metrics(r: np.ndarray, *, ppy: float, risk_free: float, bench: np.ndarray | None) -> dict[str, Any]:
    want = {
        "total_return": empyrical.cum_returns_final(r),
        "cagr": empyrical.annual_return(r, annualization=ppy),
        "annual_volatility": empyrical.annual_volatility(r, annualization=ppy),
        "sharpe_ratio": empyrical.sharpe_ratio(r, risk_free=risk_free, annualization=ppy),
        "sortino_ratio": empyrical.sortino_ratio(r, required_return=risk_free, annualization=ppy),
        "downside_risk": empyrical.downside_risk(r, required_return=risk_free, annualization=ppy),
        "max_drawdown": empyrical.max_drawdown(r),
        "calmar_ratio": empyrical.calmar_ratio(r, annualization=ppy),
    }
    if bench is not None:
        b = bench[1:] / bench[:-1] - 1
        alpha, beta = empyrical.alpha_beta(r, b, risk_free=risk_free, annualization=ppy)
        want |= {"alpha": alpha, "beta": beta}
    return want


#: Returns a price can express: a move under 1e-9 is below any quote's resolution, and ratios of such moves are
#: differences of numbers near 1 that lose every significant digit (no two implementations agree there).
RETURNS = st.just(0.0) | st.floats(1e-9, 0.2) | st.floats(-0.2, -1e-9)


@settings(max_examples=60, deadline=None)
@given(
    returns=st.lists(RETURNS, min_size=3, max_size=400).map(np.array),
    ppy=st.sampled_from([252.0, 12.0, 365.0, 252.0 * 390]),
    risk_free=st.sampled_from([0.0, 0.0001]),
)
def test_generated_returns_match_empyrical(returns: np.ndarray, ppy: float, risk_free: float) -> None:
    equity = 1000.0 * np.cumprod(np.concatenate([[1.0], 1 + returns]))
    # Ratios over the deviation of nearly constant returns divide by rounding residue (~1e-18): no two
    # implementations agree there, so those two are compared only where the returns vary.
    spread = np.ptp(equity[1:] / equity[:-1] - 1)
    noisy = ("sharpe_ratio", "annual_volatility") if 0 < spread < 1e-6 else ()
    assert_matches_empyrical(equity, ppy=ppy, risk_free=risk_free, skip=noisy)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_generated_curves_with_a_benchmark_match_empyrical(seed: int) -> None:
    rng = np.random.default_rng(seed)
    b = rng.normal(0.0004, 0.011, 2000)
    r = 0.0002 + 0.8 * b + rng.normal(0, 0.006, 2000)
    equity = 1e6 * np.cumprod(np.concatenate([[1.0], 1 + r]))
    bench = 100 * np.cumprod(np.concatenate([[1.0], 1 + b]))
    got = assert_matches_empyrical(equity, bench=bench, risk_free=0.00005)
    assert 0.7 < got["beta"] < 0.9


def test_real_daily_closes_match_empyrical() -> None:
    ko, aapl = closes("KO"), closes("AAPL")
    common = ko.index.intersection(aapl.index)
    assert len(common) > 700
    got = assert_matches_empyrical(aapl[common].to_numpy(), bench=ko[common].to_numpy())
    assert got["max_drawdown"] < -0.2  # AAPL fell by more than a fifth from its 2012 peak
    assert_matches_empyrical(ko.to_numpy(), ppy=252.0, risk_free=0.0001)


def reference_drawdowns(ts: np.ndarray, equity: np.ndarray) -> list[tuple[Any, Any, Any, float]]:
    """Plain Python: every drawdown (peak, trough, recovery, depth), deepest first."""
    periods: list[tuple[int, int, int | None]] = []
    peak_i, low_i, under = 0, 0, False
    for i in range(1, len(equity)):
        if equity[i] >= equity[peak_i]:
            if under:
                periods.append((peak_i, low_i, i))
                under = False
            peak_i = i
        else:
            if not under or equity[i] < equity[low_i]:
                low_i = i  # the first lowest point
            under = True
    if under:
        periods.append((peak_i, low_i, None))
    out = [(ts[p], ts[t], None if r is None else ts[r], (equity[t] - equity[p]) / equity[p]) for p, t, r in periods]
    return sorted(out, key=lambda x: x[3])  # deepest first; equal depths in time order


@settings(max_examples=80, deadline=None)
@given(returns=arrays(np.float64, st.integers(2, 200), elements=st.floats(-0.1, 0.1, allow_nan=False)))
def test_drawdown_periods_match_a_plain_python_reference(returns: np.ndarray) -> None:
    equity = 100.0 * np.cumprod(np.concatenate([[1.0], 1 + returns]))
    ts = days(len(equity))
    got = m.drawdown_periods(ts, equity, m.drawdown(equity), top=1000)
    want = reference_drawdowns(ts, equity)
    assert len(got) == len(want)
    for period, (peak, trough, recovery, depth) in zip(got, want, strict=True):
        assert period.peak == m.instant(peak)
        assert math.isclose(period.depth, depth, rel_tol=1e-12, abs_tol=1e-15)
        assert period.trough == m.instant(trough)
        assert period.recovery == (None if recovery is None else m.instant(recovery))


def test_trade_metrics_match_a_plain_python_reference() -> None:
    rng = np.random.default_rng(7)
    pnl = rng.normal(10, 100, 500)
    pnl[::3] = np.nan  # opening trades carry no pnl
    qty, price = rng.uniform(1, 100, 500), rng.uniform(10, 200, 500)
    got = m.trade_metrics(qty, price, pnl, mean_equity=1e6, years=2.0)
    closed = [p for p in pnl if not math.isnan(p)]
    wins, losses = [p for p in closed if p > 0], [p for p in closed if p < 0]
    assert got["trade_count"] == 500
    assert got["win_rate"] == len(wins) / len(closed)
    assert math.isclose(got["profit_factor"], sum(wins) / -sum(losses), rel_tol=1e-12)
    assert math.isclose(got["average_win"], sum(wins) / len(wins), rel_tol=1e-12)
    assert math.isclose(got["average_loss"], sum(losses) / len(losses), rel_tol=1e-12)
    assert math.isclose(
        got["turnover"], sum(abs(q * p) for q, p in zip(qty, price, strict=True)) / 1e6 / 2, rel_tol=1e-12
    )


def test_exposure_counts_points_with_any_position() -> None:
    ts = days(10)
    # security 1 long from day 2 to day 5, security 2 short from day 7 on
    pos_ts = np.array([ts[2], ts[5], ts[7]])
    exposure = m.exposure_from_positions(ts, pos_ts, np.array([1, 1, 2]), np.array([5.0, 0.0, -3.0]))
    assert exposure == pytest.approx(6 / 10)  # days 2, 3, 4 and 7, 8, 9


@pytest.mark.parametrize(
    ("equity", "message"),
    [
        (np.array([100.0]), "at least 2 points"),
        (np.array([], dtype=float), "at least 2 points"),
        (np.array([100.0, np.nan, 101.0]), "NaN or infinite at point 1"),
        (np.array([100.0, np.inf]), "NaN or infinite at point 1"),
        (np.array([100.0, -1.0]), "must be positive"),
    ],
)
def test_bad_curves_are_typed_errors(equity: np.ndarray, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        m.curve_metrics(days(len(equity)), equity)


def test_a_benchmark_that_does_not_overlap_the_run_is_refused() -> None:
    equity = np.array([100.0, 101.0, 102.0, 101.5])
    later = days(4, start="2030-01-01")
    with pytest.raises(ValidationError, match="does not overlap the run"):
        m.curve_metrics(days(4), equity, benchmark=(later, np.array([1.0, 2.0, 3.0, 4.0])))


def test_bad_annualization_is_refused() -> None:
    with pytest.raises(ValidationError, match="periods_per_year"):
        m.curve_metrics(days(3), np.array([1.0, 2.0, 3.0]), periods_per_year=0)
    with pytest.raises(ValidationError, match="risk_free"):
        m.curve_metrics(days(3), np.array([1.0, 2.0, 3.0]), risk_free=float("nan"))

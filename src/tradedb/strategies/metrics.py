"""Performance metrics of a backtest, computed from its equity curve and trades with NumPy.

Conventions (the ones empyrical uses, which the tests hold these to within 1e-9 relative):

- returns are simple returns between consecutive equity points: ``equity[i] / equity[i-1] - 1``;
- ``periods_per_year`` annualizes (252 for daily points, the default; 252 * 390 for one-minute points of a US
  equity session; 365 for crypto days). CAGR is ``(end / start) ** (periods_per_year / returns) - 1``: years are
  counted in periods, not calendar time;
- ``risk_free`` is a rate per period, subtracted from every return (Sharpe, alpha); Sortino's required return is
  the same rate; volatility and Sharpe use the sample standard deviation (ddof=1);
- drawdown is equity over its running peak, minus one (so never positive); Calmar is CAGR over |max drawdown|,
  undefined (None) without a drawdown;
- alpha and beta regress returns on the benchmark's returns over the same periods (the benchmark's level at each
  equity instant is its last value at or before it); alpha is annualized as ``(1 + mean excess) ** ppy - 1``.

Trade metrics use the trades' ``pnl`` (realized profit of a closing trade; opening trades carry none): win rate is
winners over trades with a pnl, profit factor gross profit over gross loss, averages per winner and per loser.
Exposure is the share of equity points at which any position is held (from the position history, else from a
cash column: cash differing from equity). Turnover is traded notional over mean equity, per year.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from tradedb.errors import ValidationError

DAILY = 252.0


@dataclass(frozen=True)
class DrawdownPeriod:
    """One drawdown: from the peak before it to the trough, and the first point back at the peak (None: not yet)."""

    peak: datetime
    trough: datetime
    recovery: datetime | None
    depth: float  # negative fraction of the peak

    def as_dict(self) -> dict[str, Any]:
        return {
            "peak": self.peak.isoformat(),
            "trough": self.trough.isoformat(),
            "recovery": None if self.recovery is None else self.recovery.isoformat(),
            "depth": self.depth,
        }


def returns_of(equity: np.ndarray) -> np.ndarray:
    """Simple returns between consecutive points."""
    result: np.ndarray = equity[1:] / equity[:-1] - 1.0
    return result


def curve_metrics(
    ts: np.ndarray,
    equity: np.ndarray,
    *,
    periods_per_year: float = DAILY,
    risk_free: float = 0.0,
    benchmark: tuple[np.ndarray, np.ndarray] | None = None,
    top_drawdowns: int = 5,
) -> dict[str, Any]:
    """Metrics of an equity curve (``ts`` as datetime64[us] UTC, ascending; ``equity`` positive floats)."""
    check_curve(ts, equity)
    check_annualization(periods_per_year, risk_free)
    r = returns_of(equity)
    n = len(r)
    ppy = float(periods_per_year)
    adj = r - risk_free if risk_free else r
    # Identical returns have no dispersion: their computed deviation is a residue of rounding (~1e-18) that
    # would turn an undefined ratio into an arbitrary huge one, so it is taken as zero (as empyrical does).
    std = float(np.std(adj, ddof=1)) if n > 1 and adj.max() != adj.min() else 0.0 if n > 1 else float("nan")
    vol = float(np.std(r, ddof=1)) * ppy**0.5 if n > 1 else float("nan")
    downside = np.minimum(adj, 0.0)
    np.square(downside, out=downside)
    downside_risk = float(np.sqrt(np.mean(downside))) * ppy**0.5
    del downside
    # Growth and drawdown compound the returns (as empyrical does), so that every metric is a function of the
    # same returns; equity/equity[0] would differ in the last bits, which matters for tiny drawdowns.
    growth = float(np.prod(r + 1.0))
    cagr = _power(growth, ppy / n) - 1.0
    underwater = drawdown_of_returns(r)
    periods = drawdown_periods(ts, equity, underwater, top_drawdowns)
    max_dd = float(underwater.min())
    metrics: dict[str, Any] = {
        "periods": n,
        "periods_per_year": ppy,
        "risk_free": risk_free,
        "start_equity": float(equity[0]),
        "end_equity": float(equity[-1]),
        "total_return": growth - 1.0,
        "cagr": cagr,
        "annual_volatility": vol,
        "sharpe_ratio": _ratio(float(np.mean(adj)), std) * ppy**0.5 if n > 1 else None,
        "sortino_ratio": _ratio(float(np.mean(adj)) * ppy, downside_risk) if n > 1 else None,
        "downside_risk": downside_risk,
        "max_drawdown": max_dd,
        "calmar_ratio": cagr / abs(max_dd) if max_dd < 0 else None,
        "max_drawdown_peak": periods[0].peak.isoformat() if periods else None,
        "max_drawdown_trough": periods[0].trough.isoformat() if periods else None,
        "max_drawdown_recovery": (
            periods[0].recovery.isoformat() if periods and periods[0].recovery is not None else None
        ),
        "drawdown_periods": [p.as_dict() for p in periods],
    }
    if benchmark is not None:
        metrics.update(_alpha_beta(ts, r, adj, benchmark, ppy=ppy, risk_free=risk_free))
    return {k: _finite_or_none(v) for k, v in metrics.items()}


def trade_metrics(
    quantity: np.ndarray, price: np.ndarray, pnl: np.ndarray, *, mean_equity: float, years: float
) -> dict[str, Any]:
    """Trade metrics (``pnl`` NaN for trades that close nothing)."""
    closed = pnl[~np.isnan(pnl)]
    wins, losses = closed[closed > 0], closed[closed < 0]
    gross_loss = float(-losses.sum())
    notional = float(np.abs(quantity * price).sum())
    return {
        "trade_count": len(quantity),
        "closed_trades": len(closed),
        "win_rate": len(wins) / len(closed) if len(closed) else None,
        "profit_factor": float(wins.sum()) / gross_loss if gross_loss > 0 else None,
        "average_win": float(wins.mean()) if len(wins) else None,
        "average_loss": float(losses.mean()) if len(losses) else None,
        "net_pnl": float(closed.sum()),
        "turnover": notional / mean_equity / years if years > 0 and mean_equity > 0 else None,
    }


def exposure_from_positions(
    ts: np.ndarray, position_ts: np.ndarray, position_security: np.ndarray, position_quantity: np.ndarray
) -> float:
    """Share of equity points at which any position is non-zero (each security's quantity holds until its next
    row)."""
    held = np.zeros(len(ts), dtype=bool)
    for security in np.unique(position_security):
        pick = position_security == security
        order = np.argsort(position_ts[pick], kind="stable")
        when, qty = position_ts[pick][order], position_quantity[pick][order]
        at = np.searchsorted(when, ts, side="right") - 1
        valid = at >= 0
        held[valid] |= qty[at[valid]] != 0
    return float(held.mean())


def drawdown(equity: np.ndarray) -> np.ndarray:
    """Equity's fall from its running peak, as a (non-positive) fraction of the peak."""
    peak = np.maximum.accumulate(equity)
    result: np.ndarray = np.subtract(equity, peak)
    np.divide(result, peak, out=result)
    return result


def drawdown_of_returns(returns: np.ndarray) -> np.ndarray:
    """The drawdown at each point of the curve the returns compound to from 100 (one value per point, the
    first 0), computed as empyrical computes it."""
    curve = np.empty(len(returns) + 1)
    curve[0] = 100.0
    np.add(returns, 1.0, out=curve[1:])
    np.cumprod(curve[1:], out=curve[1:])
    np.multiply(curve[1:], 100.0, out=curve[1:])
    peak = np.maximum.accumulate(curve)
    np.subtract(curve, peak, out=curve)
    np.divide(curve, peak, out=curve)
    return curve


def drawdown_periods(ts: np.ndarray, equity: np.ndarray, underwater: np.ndarray, top: int) -> list[DrawdownPeriod]:
    """The ``top`` deepest drawdowns, deepest first."""
    below = underwater < 0
    if top <= 0 or not below.any():
        return []
    edges = np.diff(below.astype(np.int8), prepend=np.int8(0), append=np.int8(0))
    starts = np.flatnonzero(edges == 1)  # first point under water
    ends = np.flatnonzero(edges == -1)  # first point back at the peak (== len when never)
    depths = np.minimum.reduceat(underwater, starts)
    chosen = np.argsort(depths, kind="stable")[:top]
    result = []
    for k in chosen:
        s, e = int(starts[k]), int(ends[k])
        trough = s + int(np.argmin(underwater[s:e]))
        recovery = instant(ts[e]) if e < len(equity) else None
        result.append(DrawdownPeriod(instant(ts[s - 1]), instant(ts[trough]), recovery, float(depths[k])))
    return result


def check_curve(ts: np.ndarray, equity: np.ndarray) -> None:
    """Typed errors for a curve metrics cannot be computed from."""
    if len(equity) < 2:
        raise ValidationError(f"metrics need an equity curve of at least 2 points, this run has {len(equity)}")
    if not np.isfinite(equity).all():
        bad = int(np.flatnonzero(~np.isfinite(equity))[0])
        raise ValidationError(f"equity is NaN or infinite at point {bad} ({instant(ts[bad]).isoformat()})")
    if (equity <= 0).any():
        bad = int(np.flatnonzero(equity <= 0)[0])
        raise ValidationError(f"equity must be positive; point {bad} ({instant(ts[bad]).isoformat()}) is {equity[bad]}")


def check_annualization(periods_per_year: float, risk_free: float) -> None:
    if isinstance(periods_per_year, bool) or not isinstance(periods_per_year, int | float) or periods_per_year <= 0:
        raise ValidationError(f"periods_per_year must be a positive number, got {periods_per_year!r}")
    if isinstance(risk_free, bool) or not isinstance(risk_free, int | float) or not np.isfinite(risk_free):
        raise ValidationError(f"risk_free must be a finite rate per period, got {risk_free!r}")


def _alpha_beta(
    ts: np.ndarray,
    r: np.ndarray,
    adj: np.ndarray,
    benchmark: tuple[np.ndarray, np.ndarray],
    *,
    ppy: float,
    risk_free: float,
) -> dict[str, Any]:
    bench_ts, bench_level = benchmark
    if len(bench_ts) == 0:
        raise ValidationError("the benchmark series is empty")
    if not np.isfinite(bench_level).all() or (bench_level <= 0).any():
        raise ValidationError("the benchmark's values must be positive and finite")
    at = np.searchsorted(bench_ts, ts, side="right") - 1
    level = np.where(at >= 0, bench_level[np.maximum(at, 0)], np.nan)
    b = level[1:] / level[:-1] - 1.0
    # A period the benchmark does not cover (before its first value, or no change of instant) counts as missing.
    b[(at[1:] < 0) | (at[:-1] < 0) | (ts[1:] > bench_ts[-1])] = np.nan
    overlap = int(np.count_nonzero(~np.isnan(b)))
    if overlap < 2:
        raise ValidationError(
            f"the benchmark does not overlap the run: {overlap} common period(s) between "
            f"{instant(bench_ts[0]).isoformat()}..{instant(bench_ts[-1]).isoformat()} and the equity curve"
        )
    independent = np.where(np.isnan(r), np.nan, b)
    residual = independent - np.nanmean(independent)
    variance = float(np.nanmean(np.square(residual)))
    beta = float(np.nanmean(residual * r)) / variance if variance >= 1e-30 else float("nan")
    alpha_series = adj - beta * (b - risk_free)
    alpha = _power(1.0 + float(np.nanmean(alpha_series)), ppy) - 1.0
    return {"alpha": alpha, "beta": beta, "benchmark_periods": overlap}


def _power(base: float, exponent: float) -> float:
    """``base ** exponent`` as a float that may be inf (a huge annualization), never an OverflowError."""
    with np.errstate(over="ignore"):
        return float(np.power(np.float64(base), exponent))


def _ratio(numerator: float, denominator: float) -> float:
    if denominator == 0:
        return float("nan")
    return numerator / denominator


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def instant(value: np.datetime64 | np.int64 | int) -> datetime:
    micros = int(np.asarray(value).astype("datetime64[us]").astype(np.int64))
    return datetime.fromtimestamp(micros / 1e6, tz=UTC).replace(microsecond=micros % 1_000_000)

"""Analytics without I/O: an account's daily performance from its fills, daily closes and capital.

Each day (UTC) the fills of that day are applied with the execution arithmetic (average cost, net realized PnL), the
open positions are valued at the day's close (the last bar close or trade at or before the day's end), and:
- ``pnl``: the day's change in total PnL (realized + unrealized); ``equity``: capital + total PnL;
- ``daily_return``: the day's PnL over the equity before it; ``total_return``: equity over capital, minus one;
- ``max_drawdown``: the largest fall from a peak of equity (capital the first peak), as a fraction of the peak;
- ``volatility``, ``sharpe_ratio``, ``sortino_ratio``: of the daily returns so far, annualised over 252 days
  (sample standard deviation; Sortino's downside deviation over every day, as empyrical computes it; risk-free 0);
- ``win_rate``: the share of days with a nonzero PnL that were up; ``turnover``: the notional traded over the equity
  before the day; ``trade_count``: the fills of the day.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from tradedb.errors import ValidationError
from tradedb.execution import PositionState, apply_fill

TRADING_DAYS = 252
#: The fields of DailyPerformance stored in analytics.performance_metrics.
STORED = (
    "date",
    "total_return",
    "daily_return",
    "sharpe_ratio",
    "sortino_ratio",
    "max_drawdown",
    "volatility",
    "win_rate",
    "trade_count",
    "pnl",
    "equity",
    "turnover",
)
_ZERO = Decimal(0)


@dataclass(frozen=True)
class DayFill:
    """A fill, with the UTC day it was executed on (fills come in application order)."""

    security_id: int
    side: str
    quantity: Decimal
    price: Decimal
    commission: Decimal
    day: date


@dataclass(frozen=True)
class DailyPerformance:
    """One day of an account's performance."""

    date: date
    pnl: Decimal
    equity: Decimal
    daily_return: Decimal
    total_return: Decimal
    max_drawdown: float
    volatility: float | None
    sharpe_ratio: float | None
    sortino_ratio: float | None
    win_rate: float | None
    trade_count: int
    turnover: Decimal
    #: Open positions without a close that day (valued at cost: no unrealized PnL).
    unpriced: tuple[int, ...] = ()


def days_between(first: date, last: date) -> list[date]:
    """Every day from ``first`` to ``last``, both included."""
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _ratios(returns: list[float]) -> tuple[float | None, float | None, float | None]:
    """Annualised volatility, Sharpe and Sortino of daily returns (None where undefined)."""
    if len(returns) < 2:
        return None, None, None
    mean = sum(returns) / len(returns)
    std = math.sqrt(sum((r - mean) ** 2 for r in returns) / (len(returns) - 1))
    downside = math.sqrt(sum(min(r, 0.0) ** 2 for r in returns) / len(returns))
    scale = math.sqrt(TRADING_DAYS)
    return (
        std * scale,
        mean / std * scale if std > 0 else None,
        mean / downside * scale if downside > 0 else None,
    )


def daily_performance(
    capital: Decimal,
    fills: Sequence[DayFill],
    closes: Mapping[tuple[int, date], Decimal | None],
    days: Sequence[date],
) -> list[DailyPerformance]:
    """The performance of every day in ``days`` (consecutive, from the first fill's day or before).

    A day's fills are applied in the order given (fill id: the order they were applied in); the total PnL of a day
    does not depend on that order, only its split into realized and unrealized does.
    """
    by_day: dict[date, list[DayFill]] = {}
    for fill in fills:
        by_day.setdefault(fill.day, []).append(fill)
    if fills and days and min(by_day) < days[0]:
        raise ValueError("days must start on or before the first fill's day")
    positions: dict[int, PositionState] = {}
    previous_total, previous_equity, peak, worst = _ZERO, capital, capital, 0.0
    returns: list[float] = []
    up = traded_days = 0
    result = []
    for day in days:
        todays = by_day.get(day, [])
        notional = _ZERO
        for fill in todays:
            state = positions.get(fill.security_id, PositionState())
            positions[fill.security_id] = apply_fill(state, fill.side, fill.quantity, fill.price, fill.commission)
            notional += fill.quantity * fill.price
        total, unpriced = _ZERO, []
        for security_id, state in positions.items():
            total += state.realized_pnl
            if state.quantity == 0:
                continue
            close = closes.get((security_id, day))
            if close is None:
                unpriced.append(security_id)
                continue
            assert state.avg_price is not None
            total += state.quantity * (close - state.avg_price)
        if previous_equity <= 0:
            raise ValidationError(f"the account's equity fell to {previous_equity} before {day}: returns are undefined")
        pnl = total - previous_total
        equity = capital + total
        daily_return = pnl / previous_equity
        returns.append(float(daily_return))
        peak = max(peak, equity)
        worst = max(worst, float((peak - equity) / peak)) if peak > 0 else worst
        if pnl != 0:
            traded_days += 1
            up += pnl > 0
        volatility, sharpe, sortino = _ratios(returns)
        result.append(
            DailyPerformance(
                date=day,
                pnl=pnl,
                equity=equity,
                daily_return=daily_return,
                total_return=equity / capital - 1,
                max_drawdown=worst,
                volatility=volatility,
                sharpe_ratio=sharpe,
                sortino_ratio=sortino,
                win_rate=up / traded_days if traded_days else None,
                trade_count=len(todays),
                turnover=notional / previous_equity,
                unpriced=tuple(sorted(unpriced)),
            )
        )
        previous_total, previous_equity = total, equity
    return result

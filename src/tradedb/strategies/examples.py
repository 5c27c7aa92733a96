"""A small, complete strategy to show the pieces working together: a moving-average crossover on one price
series, simulated with NumPy (long when the fast average is above the slow one, flat otherwise; all in at the
close of the bar after the cross, whole shares, a commission per share).

It is an example, not a backtesting engine: no slippage model, no partial fills, one security.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from tradedb.errors import ValidationError
from tradedb.strategies.params import Param

MA_CROSSOVER_PARAMS = (
    Param("fast", "int", required=True, min=2, max=200, optimizable=True, description="Fast average, in bars"),
    Param("slow", "int", required=True, min=3, max=1000, optimizable=True, description="Slow average, in bars"),
    Param("commission_per_share", "float", default=0.005, min=0, description="Commission per share traded"),
)


@dataclass(frozen=True)
class Simulation:
    """What a simulation produced, ready for ``db.backtests.record``."""

    equity: pa.Table
    trades: pa.Table
    positions: pa.Table


def ma_crossover(
    ts: np.ndarray,
    close: np.ndarray,
    security_id: int,
    *,
    fast: int,
    slow: int,
    capital: float = 100_000.0,
    commission_per_share: float = 0.005,
) -> Simulation:
    """Simulate the crossover on ``close`` (times ``ts`` as datetime64[us], ascending)."""
    if fast >= slow:
        raise ValidationError(f"fast ({fast}) must be shorter than slow ({slow})")
    if len(close) <= slow + 1:
        raise ValidationError(f"{len(close)} bars are too few for a {slow}-bar average")
    fast_ma = _moving_average(close, fast)
    slow_ma = _moving_average(close, slow)
    signal = np.zeros(len(close), dtype=bool)
    signal[slow - 1 :] = fast_ma[slow - 1 :] > slow_ma[slow - 1 :]
    # Act on the next bar: the decision at bar i is known only at its close.
    held = np.concatenate([[False], signal[:-1]])
    cash, shares, cost = capital, 0.0, 0.0
    equity, cash_held = np.empty(len(close)), np.empty(len(close))
    times = ts.astype("datetime64[us]").astype(object)
    trades: list[dict[str, object]] = []
    positions: list[dict[str, object]] = []
    for i, price in enumerate(close.tolist()):
        if held[i] and shares == 0:
            shares = float(int(cash // (price + commission_per_share)))
            if shares > 0:
                fee = shares * commission_per_share
                cash -= shares * price + fee
                cost = price
                trades.append(
                    {
                        "side": "buy",
                        "quantity": shares,
                        "price": price,
                        "commission": fee,
                        "pnl": None,
                        "executed_at": times[i],
                    }
                )
                positions.append({"ts": times[i], "quantity": shares, "avg_price": price})
        elif not held[i] and shares > 0:
            fee = shares * commission_per_share
            cash += shares * price - fee
            pnl = shares * (price - cost) - 2 * fee  # net of both commissions
            trades.append(
                {
                    "side": "sell",
                    "quantity": shares,
                    "price": price,
                    "commission": fee,
                    "pnl": pnl,
                    "executed_at": times[i],
                }
            )
            positions.append({"ts": times[i], "quantity": 0.0, "avg_price": None})
            shares = 0.0
        equity[i], cash_held[i] = cash + shares * price, cash
    stamps = pa.array(ts.astype("datetime64[us]"), pa.timestamp("us", tz="UTC"))
    for row in (*trades, *positions):
        row["security_id"] = security_id
    return Simulation(
        pa.table({"ts": stamps, "equity": equity, "cash": cash_held}),
        pa.Table.from_pylist(trades, schema=_TRADES),
        pa.Table.from_pylist(positions, schema=_POSITIONS),
    )


_UTC_US = pa.timestamp("us", tz="UTC")
_TRADES = pa.schema(
    [
        ("security_id", pa.int64()),
        ("side", pa.string()),
        ("quantity", pa.float64()),
        ("price", pa.float64()),
        ("commission", pa.float64()),
        ("pnl", pa.float64()),
        ("executed_at", _UTC_US),
    ]
)
_POSITIONS = pa.schema(
    [("security_id", pa.int64()), ("ts", _UTC_US), ("quantity", pa.float64()), ("avg_price", pa.float64())]
)


def _moving_average(values: np.ndarray, window: int) -> np.ndarray:
    sums = np.cumsum(np.concatenate([[0.0], values]))
    result = np.full(len(values), np.nan)
    result[window - 1 :] = (sums[window:] - sums[:-window]) / window
    return result

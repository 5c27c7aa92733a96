"""Market data through the one driver of both APIs, and small data helpers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from tests.conftest import TestDatabase
from tests.integration.facade import Api, Feature

T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)


def Market(kind: str, db: TestDatabase, **kwargs: Any) -> Feature:
    """``db.market_data`` of a sync or async Database (``kind``), driven the same way (see ``facade``)."""
    return Api(kind, db.url, db.settings, **kwargs).feature("market_data")


def count(db: TestDatabase, table: str, where: str = "true", params: tuple[Any, ...] = ()) -> int:
    with db.connect() as conn:
        row = conn.execute(f"SELECT count(*) FROM data_ingestion.{table} WHERE {where}", params).fetchone()
    assert row is not None
    return int(str(row[0]))


def quotes(symbol: str, n: int, *, start: datetime = T0, step: timedelta = timedelta(seconds=1)) -> pa.Table:
    bid = 100 + np.arange(n) * 0.01
    return pa.table(
        {
            "ts": pa.array([start + i * step for i in range(n)], pa.timestamp("us", "UTC")),
            "symbol": [symbol] * n,
            "bid": bid,
            "ask": bid + 0.02,
            "bid_size": np.full(n, 100.0),
            "ask_size": np.full(n, 200.0),
        }
    )


def lobster_minute_bars(message_file: Any) -> pd.DataFrame:
    """The independent reference for 1-minute trade bars of a LOBSTER message file (AMZN, 2012-06-21): executions
    (types 4 and 5) at New York time, grouped by UTC minute with pandas."""
    raw = pd.read_csv(message_file)
    executed = raw[raw["Type"].isin([4, 5])].copy()
    executed["ts"] = (
        pd.Timestamp("2012-06-21", tz="America/New_York") + pd.to_timedelta(executed["Time"], unit="s")
    ).dt.tz_convert("UTC")
    executed["price"] = executed["Price"] / 10_000
    grouped = executed.groupby(executed["ts"].dt.floor("1min"))
    return pd.DataFrame(
        {
            "open": grouped["price"].first(),
            "high": grouped["price"].max(),
            "low": grouped["price"].min(),
            "close": grouped["price"].last(),
            "volume": grouped["Size"].sum().astype(float),
            "trade_count": grouped["price"].size(),
        }
    )


def assert_bars_equal(ours: pd.DataFrame, expected: pd.DataFrame) -> None:
    """tradedb's bars (indexed by ts) equal the reference's columns, minute by minute."""
    ours = ours[expected.columns].copy()
    ours.index = ours.index.as_unit("ns")
    expected = expected.copy()
    expected.index = expected.index.as_unit("ns")
    pd.testing.assert_frame_equal(ours, expected, check_names=False, check_index_type=False, check_dtype=False)

"""Market data through the one driver of both APIs, and small data helpers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
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

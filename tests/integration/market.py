"""Drive ``db.market_data`` of a sync or async Database with the same calls, and small data helpers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa

import tradedb
from tests.conftest import TestDatabase

T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)


class Market:
    """Drive ``db.market_data`` of a sync or async Database with the same calls."""

    def __init__(self, kind: str, db: TestDatabase, **kwargs: Any) -> None:
        self.kind = kind
        if kind == "async":
            self.runner: asyncio.Runner | None = asyncio.Runner()
            self.adb = tradedb.connect_async(db.url, settings=db.settings, **kwargs)
        else:
            self.runner = None
            self.db = tradedb.connect(db.url, settings=db.settings, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if self.runner is None:
            return getattr(self.db.market_data, name)
        method = getattr(self.adb.market_data, name)
        runner = self.runner

        def call(*args: Any, **kwargs: Any) -> Any:
            return runner.run(method(*args, **kwargs))

        return call

    def stream(self, *args: Any, **kwargs: Any) -> list[Any]:
        if self.runner is None:
            return list(self.db.market_data.stream(*args, **kwargs))

        async def collect() -> list[Any]:
            return [piece async for piece in self.adb.market_data.stream(*args, **kwargs)]

        return self.runner.run(collect())

    def close(self) -> None:
        if self.runner is None:
            self.db.close()
        else:
            self.runner.run(self.adb.close())
            self.runner.close()


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

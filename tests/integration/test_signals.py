"""Strategy signals: binary COPY writes under a quality policy, reads by instance, security and time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import tradedb
from tests.conftest import TestDatabase
from tests.integration.facade import Api, Feature
from tradedb.errors import NotFoundError, ValidationError
from tradedb.marketdata.securities import upsert
from tradedb.strategies import Param

T0 = datetime(2025, 3, 3, 14, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def setup(db: TestDatabase) -> dict[str, int]:
    """Two securities and two instances of one strategy."""
    with tradedb.connect(db.url, settings=db.settings) as handle:
        upsert(handle, [{"symbol": "SIGA", "exchange_mic": "XNAS"}, {"symbol": "SIGB", "exchange_mic": "XNAS"}])
        ids = handle.market_data.security_ids(["SIGA", "SIGB"])
        handle.strategies.register("signal_source", [Param("k", "int", default=1)])
        one = handle.strategies.create_instance("signal_source", "one")["instance_id"]
        two = handle.strategies.create_instance("signal_source", "two")["instance_id"]
    return {**ids, "one": one, "two": two}


@pytest.fixture(params=["sync", "async"])
def signals(request: pytest.FixtureRequest, db: TestDatabase) -> Iterator[Feature]:
    api = Api(request.param, db.url, db.settings)
    yield api.feature("signals")
    api.close()


def batch(setup: dict[str, int], n: int, *, instance: str = "one", start: datetime = T0) -> pd.DataFrame:
    rng = np.random.default_rng(n)
    return pd.DataFrame(
        {
            "ts": [start + timedelta(minutes=i) for i in range(n)],
            "instance_id": setup[instance],
            "symbol": ["SIGA", "SIGB"] * (n // 2) + ["SIGA"] * (n % 2),
            "signal": rng.choice(["buy", "sell", "hold"], n),
            "confidence": rng.uniform(0, 1, n),
            "price": rng.uniform(10, 20, n),
            "quantity": np.full(n, 100.0),
        }
    )


def test_signals_round_trip_in_every_format(signals: Feature, setup: dict[str, int]) -> None:
    day = T0 + timedelta(days=10 if signals.kind == "sync" else 20)
    given = batch(setup, 500, start=day)
    result = signals.write(given)
    assert (result.rows, result.written, result.rejected) == (500, 500, 0)
    rows = signals.read(instance_id=setup["one"], start=day, end=day + timedelta(days=1))
    assert len(rows) == 500
    assert [r["confidence"] for r in rows] == pytest.approx(list(given.confidence), rel=1e-15)
    assert rows[0]["ts"] == day and rows[0]["signal"] == given.signal[0]
    assert rows[0]["price"] == pytest.approx(given.price[0], rel=1e-12)  # stored as numeric, read as float
    one_security = signals.read(symbol="SIGB", start=day, end=day + timedelta(days=1), as_="arrow")
    assert isinstance(one_security, pa.Table) and one_security.num_rows == 250
    assert set(one_security["security_id"].to_pylist()) == {setup["SIGB"]}
    frame = signals.read(instance_id=setup["one"], start=day, end=day + timedelta(minutes=10), as_="pandas")
    assert len(frame) == 10 and list(frame.columns)[:3] == ["signal_id", "ts", "instance_id"]
    assert isinstance(
        signals.read(security_id=setup["SIGA"], start=day, end=day + timedelta(days=1), as_="polars"), pl.DataFrame
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"confidence": 1.5}, "confidence is outside \\[0, 1\\]"),
        ({"confidence": -0.1}, "confidence is outside \\[0, 1\\]"),
        ({"signal": "short"}, "signal is not buy, sell or hold"),
        ({"quantity": 0.0}, "quantity must be positive"),
        ({"instance_id": 987654}, "unknown strategy instance"),
        ({"ts": None}, "ts is missing"),
    ],
)
def test_a_bad_row_rejects_the_whole_batch(
    signals: Feature, setup: dict[str, int], db: TestDatabase, change: dict[str, Any], message: str
) -> None:
    given = batch(setup, 20, start=T0 + timedelta(days=40))
    for column, value in change.items():
        given[column] = given[column].astype(object)
        given.loc[7, column] = value
    before = count(db)
    with pytest.raises(ValidationError, match=f"row 7: {message}"):
        signals.write(given)
    assert count(db) == before


def test_quarantine_writes_the_good_rows_and_logs_the_bad(
    signals: Feature, setup: dict[str, int], db: TestDatabase
) -> None:
    day = T0 + timedelta(days=60 if signals.kind == "sync" else 70)
    given = batch(setup, 30, start=day)
    given["confidence"] = given["confidence"].astype(object)
    given.loc[3, "confidence"] = 2.0
    given.loc[5, "signal"] = "maybe"
    given["security_id"] = [setup["SIGA"]] * 30
    given = given.drop(columns="symbol")
    given.loc[9, "security_id"] = 987654321
    result = signals.write(given, policy="quarantine")
    assert (result.rows, result.written, result.rejected) == (30, 27, 3)
    assert sorted(f["details"]["row"] for f in result.findings) == [3, 5, 9]
    stored = signals.read(instance_id=setup["one"], start=day, end=day + timedelta(days=1))
    assert len(stored) == 27
    with db.connect() as conn:
        logged = conn.execute(
            "SELECT check_type, (details->>'row')::int FROM data_ingestion.data_quality_logs "
            "WHERE table_name = 'strategy_engine.strategy_signals' AND row_ts >= %s AND row_ts < %s ORDER BY 2",
            (day, day + timedelta(days=1)),
        ).fetchall()
    assert logged == [("invalid_value", 3), ("invalid_value", 5), ("unknown_security", 9)]


def test_bad_calls_are_typed_errors(signals: Feature, setup: dict[str, int]) -> None:
    with pytest.raises(ValidationError, match="policy"):
        signals.write(batch(setup, 2), policy="log")
    with pytest.raises(ValidationError, match="column 'signal' is missing"):
        signals.write(batch(setup, 2).drop(columns="signal"))
    with pytest.raises(NotFoundError, match="NOPE"):
        signals.write(batch(setup, 2).assign(symbol="NOPE"))
    with pytest.raises(ValidationError, match="as_"):
        signals.read(instance_id=setup["one"], as_="csv")
    assert signals.write([]).rows == 0


def count(db: TestDatabase) -> int:
    with db.connect() as conn:
        row = conn.execute("SELECT count(*) FROM strategy_engine.strategy_signals").fetchone()
    assert row is not None
    return int(str(row[0]))

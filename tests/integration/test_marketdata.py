"""db.market_data against a real PostgreSQL: writes, checks, coverage, reads, derived bars (sync and async)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tradedb
from tests.conftest import TIMESCALE, TestDatabase
from tests.integration.facade import Feature
from tests.integration.market import T0, count, quotes
from tradedb import ConfigError, NotFoundError, TradeDBError, UnknownExchange, ValidationError
from tradedb.marketdata._sql import LATEST_QUOTES


def test_append_skip_replace(md: Feature, db: TestDatabase) -> None:
    symbol = f"AP{md.kind[0].upper()}"
    data = quotes(symbol, 500)
    first = md.write_quotes(data, source=f"t1-{md.kind}", create_securities=True, batch_rows=128)
    assert (first.rows, first.written, first.skipped, first.rejected, first.batches) == (500, 500, 0, 0, 4)
    again = md.write_quotes(data, source=f"t1-{md.kind}", on_conflict="skip")
    assert (again.written, again.skipped) == (0, 500)
    assert count(db, "quotes", f"source = 't1-{md.kind}'") == 500
    # Replace exactly the batch's window: rows of the window that are not in the batch go, others stay.
    changed = data.slice(100, 100).set_column(2, "bid", pa.array(np.full(100, 99.0)))
    replaced = md.write_quotes(changed, source=f"t1-{md.kind}", on_conflict="replace")
    assert (replaced.written, replaced.replaced) == (100, 100)
    assert count(db, "quotes", f"source = 't1-{md.kind}'") == 500
    assert count(db, "quotes", f"source = 't1-{md.kind}' AND bid = 99.0") == 100
    # A window with nothing stored: skip and replace have nothing to skip or replace (and COPY straight in).
    later = quotes(symbol, 20, start=T0 + timedelta(days=1))
    fresh = md.write_quotes(later.slice(0, 10), source=f"t1-{md.kind}", on_conflict="skip")
    assert (fresh.written, fresh.skipped) == (10, 0)
    fresh = md.write_quotes(later.slice(10, 10), source=f"t1-{md.kind}", on_conflict="replace")
    assert (fresh.written, fresh.replaced) == (10, 0)
    assert count(db, "quotes", f"source = 't1-{md.kind}'") == 520
    md.write_quotes(later, source=f"t1-{md.kind}", on_conflict="skip")
    assert count(db, "quotes", f"source = 't1-{md.kind}'") == 520
    cov = md.coverage(symbol=symbol)
    assert [(c["table_name"], c["row_count"]) for c in cov] == [("quotes", 520)]
    assert cov[0]["first_ts"] == T0 and cov[0]["last_ts"] == T0 + timedelta(days=1, seconds=19)


def test_input_shapes_are_all_accepted(md: Feature, db: TestDatabase) -> None:
    symbol = f"SH{md.kind[0].upper()}"
    base = quotes(symbol, 3)
    md.write_quotes(base, source=f"shape-arrow-{md.kind}", create_securities=True)
    md.write_quotes(base.to_batches()[0], source=f"shape-batch-{md.kind}")
    md.write_quotes(pa.RecordBatchReader.from_batches(base.schema, base.to_batches()), source=f"shape-reader-{md.kind}")
    md.write_quotes(base.to_pandas(), source=f"shape-pandas-{md.kind}")
    md.write_quotes(pl.from_arrow(base), source=f"shape-polars-{md.kind}")
    md.write_quotes(base.to_pylist(), source=f"shape-dicts-{md.kind}")
    md.write_quotes([tuple(r.values()) for r in base.to_pylist()], source=f"shape-tuples-{md.kind}")

    @dataclass
    class Q:
        ts: datetime
        symbol: str
        bid: float
        ask: float

    md.write_quotes([Q(T0, symbol, 1.0, 1.1)], source=f"shape-dataclass-{md.kind}")
    ids = md.security_ids([symbol])
    md.write_quotes([{"ts": T0, "security_id": ids[symbol], "bid": 1.0, "ask": 1.2}], source=f"shape-id-{md.kind}")
    assert count(db, "quotes", f"source LIKE 'shape-%%-{md.kind}' AND security_id = %s", (ids[symbol],)) == 7 * 3 + 2


def test_policies(md: Feature, db: TestDatabase) -> None:
    symbol = f"PO{md.kind[0].upper()}"
    rows = [
        (T0, symbol, 10.0, 10.1, 1.0, 1.0),
        (T0 + timedelta(seconds=1), symbol, 10.2, 10.1, 1.0, 1.0),  # crossed
        (T0 + timedelta(seconds=2), symbol, -1.0, 10.1, 1.0, 1.0),  # non-positive price
        (T0 + timedelta(seconds=3), symbol, 10.0, 10.1, -5.0, 1.0),  # negative size
        (T0 + timedelta(seconds=4), symbol, math.nan, 10.1, 1.0, 1.0),  # NaN
        (T0 + timedelta(seconds=5), symbol, 10.0, 10.1, 1.0, 1.0),
        (T0 + timedelta(seconds=5), symbol, 10.0, 10.1, 1.0, 1.0),  # exact repeat
        (T0 + timedelta(seconds=6), "NOSUCH", 10.0, 10.1, 1.0, 1.0),  # unknown security
    ]
    md.write_quotes(rows[:1], source=f"pol-{md.kind}", create_securities=True)
    with pytest.raises(ValidationError, match=r"6 quotes row\(s\) failed.*row 1 \(crossed_quote\)"):
        md.write_quotes(rows, source=f"pol-reject-{md.kind}")
    assert count(db, "quotes", f"source = 'pol-reject-{md.kind}'") == 0
    kept = md.write_quotes(rows, source=f"pol-q-{md.kind}", policy="quarantine")
    assert (kept.written, kept.rejected) == (2, 6)
    assert kept.findings == {
        "crossed_quote": 1,
        "non_positive_price": 1,
        "negative_size": 1,
        "non_finite": 1,
        "duplicate": 1,
        "unknown_security": 1,
    }
    logged = md.quality(source=f"pol-q-{md.kind}", limit=100)
    assert sorted(r["check_type"] for r in logged) == sorted(kept.findings)
    unknown = next(r for r in logged if r["check_type"] == "unknown_security")
    assert unknown["details"]["values"]["symbol"] == "NOSUCH" and unknown["status"] == "fail"
    # log: the repeat is written (a warning); rows the table cannot hold are still kept out, and recorded.
    written = md.write_quotes(rows, source=f"pol-log-{md.kind}", policy="log")
    assert (written.written, written.rejected, written.warnings) == (3, 5, 1)
    statuses = {r["check_type"]: r["status"] for r in md.quality(source=f"pol-log-{md.kind}")}
    assert statuses["duplicate"] == "warning" and statuses["crossed_quote"] == "fail"


def test_naive_times_need_a_zone(md: Feature, db: TestDatabase) -> None:
    symbol = f"TZ{md.kind[0].upper()}"
    naive = [(datetime(2026, 3, 2, 9, 30), symbol, 1.0, 1.1)]
    with pytest.raises(ValidationError, match="without a time zone"):
        md.write_quotes(naive, source=f"tz-{md.kind}", create_securities=True)
    md.write_quotes(naive, source=f"tz-{md.kind}", tz="America/New_York", create_securities=True)
    rows = md.quotes(symbol, T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    assert [r["ts"] for r in rows] == [datetime(2026, 3, 2, 14, 30, tzinfo=UTC)]


def test_bad_input_is_typed_and_writes_nothing(md: Feature, db: TestDatabase) -> None:
    symbol = f"BD{md.kind[0].upper()}"
    good = quotes(symbol, 2)
    md.write_quotes(good, source=f"bad-seed-{md.kind}", create_securities=True)
    cases: list[tuple[dict[str, Any], Any, str]] = [
        ({"source": ""}, good, "source"),
        ({"source": "x" * 40}, good, "source"),
        ({"source": f"b-{md.kind}", "on_conflict": "upsert"}, good, "on_conflict"),
        ({"source": f"b-{md.kind}", "policy": "ignore"}, good, "policy"),
        ({"source": f"b-{md.kind}", "batch_rows": 0}, good, "batch_rows"),
        ({"source": f"b-{md.kind}", "writers": 0}, good, "writers"),
        ({"source": f"b-{md.kind}"}, good.append_column("bidd", pa.array([1.0, 2.0])), "unknown column"),
        ({"source": f"b-{md.kind}"}, good.drop_columns(["ts"]), "'ts'"),
        ({"source": f"b-{md.kind}"}, good.drop_columns(["symbol"]), "name no security"),
        ({"source": f"b-{md.kind}"}, "not rows", "data must be"),
        ({"source": f"b-{md.kind}"}, [(T0, symbol, "abc", 1.0)], "bid"),
        ({"source": f"b-{md.kind}", "tz": "Mars/Olympus"}, [(datetime(2026, 1, 1), symbol, 1.0, 1.1)], "time zone"),
    ]
    for kwargs, data, needle in cases:
        with pytest.raises(ValidationError, match=needle):
            md.write_quotes(data, **kwargs)
    with pytest.raises(ValidationError, match="timeframe"):
        md.write_bars([(T0, symbol, 1.0, 1.0, 1.0, 1.0, 1.0)], source=f"b-{md.kind}", timeframe="7m")
    with pytest.raises(NotFoundError, match="unknown symbol"):
        md.latest_quotes(["NOPE"])
    with pytest.raises(ValidationError, match="as_"):
        md.quotes(symbol, T0, T0 + timedelta(1), as_="excel")
    with pytest.raises(ValidationError, match="before end"):
        md.quotes(symbol, T0, T0)
    with pytest.raises(ValidationError, match="time zone"):
        md.quotes(symbol, datetime(2026, 1, 1), datetime(2026, 2, 1))
    assert count(db, "quotes", f"source = 'b-{md.kind}'") == 0


def test_a_failed_batch_writes_nothing(md: Feature, db: TestDatabase) -> None:
    symbol = f"FB{md.kind[0].upper()}"
    md.write_quotes(quotes(symbol, 1), source=f"fb-seed-{md.kind}", create_securities=True)

    def stream() -> Iterator[dict[str, Any]]:
        for i in range(250):
            yield {"ts": T0 + timedelta(seconds=i), "symbol": symbol, "bid": 1.0, "ask": 1.1}
        yield {"ts": T0, "symbol": symbol, "bid": 2.0, "ask": 1.0}  # crossed, in the third batch

    with pytest.raises(ValidationError, match="earlier batches of this stream, 200 rows, were written"):
        md.write_quotes(stream(), source=f"fb-{md.kind}", batch_rows=100)
    assert count(db, "quotes", f"source = 'fb-{md.kind}'") == 200
    # In memory, the same input writes nothing: the first batch's transaction waits for the others' checks.
    with pytest.raises(ValidationError, match="nothing was written"):
        md.write_quotes(list(stream()), source=f"fb-mem-{md.kind}", batch_rows=100)
    assert count(db, "quotes", f"source = 'fb-mem-{md.kind}'") == 0


def test_latest_quotes_is_one_probe_per_symbol(md: Feature, db: TestDatabase) -> None:
    names = [f"LQ{md.kind[0].upper()}{i}" for i in range(5)]
    for i, name in enumerate(names[:4]):
        md.write_quotes(quotes(name, 10 + i), source=f"lq-{md.kind}", create_securities=True)
    md.write_quotes(quotes(names[4], 1), source=f"lq-{md.kind}", create_securities=True)
    md.write_quotes(quotes(names[4], 1, start=T0 - timedelta(days=3)), source=f"lq-old-{md.kind}")
    latest = md.latest_quotes(names)
    assert list(latest) == names
    for i, name in enumerate(names[:4]):
        row = latest[name]
        assert row is not None and row["ts"] == T0 + timedelta(seconds=9 + i)
    assert latest[names[4]] is not None and latest[names[4]]["source"] == f"lq-{md.kind}"
    # Rows written around tradedb have no coverage: the walk down the partitions finds them.
    bypass = f"LQ{md.kind[0].upper()}X"
    md.write_quotes(quotes(bypass, 1), source=f"lq-seed-{md.kind}", create_securities=True)
    with db.connect() as conn:
        conn.execute(
            "INSERT INTO data_ingestion.quotes (ts, security_id, bid, ask, source) "
            "SELECT %s, security_id, 5.0, 5.1, 'raw' FROM shared.securities WHERE symbol = %s",
            (T0 + timedelta(days=1), bypass),
        )
    walked = md.latest_quotes([bypass], source="raw")[bypass]
    assert walked is not None and walked["bid"] == 5.0
    only_old = md.latest_quotes([names[4]], source=f"lq-old-{md.kind}")[names[4]]
    assert only_old is not None and only_old["ts"] == T0 - timedelta(days=3)
    with db.connect() as conn:
        plan = "\n".join(
            str(r[0])
            for r in conn.execute(
                "EXPLAIN (COSTS OFF) " + LATEST_QUOTES,
                {"ids": "{1,2,3}", "source": None, "lo": T0, "hi": T0 + timedelta(seconds=9)},
            ).fetchall()
        )
    # The span of last times keeps the plan to the partition(s) holding it, not every partition of the table.
    assert plan.count("Index Scan") + plan.count("Seq Scan") <= 3, plan
    assert "quotes_default" not in plan, plan


def test_reads_in_every_format(md: Feature, db: TestDatabase) -> None:
    symbol = f"RD{md.kind[0].upper()}"
    data = quotes(symbol, 1000, step=timedelta(milliseconds=10))
    data = data.set_column(
        2, "bid", pa.array([None if i % 7 == 0 else 1.0 + i / 64 for i in range(1000)], pa.float64())
    )
    md.write_quotes(data, source=f"rd-{md.kind}", create_securities=True)
    start, end = T0, T0 + timedelta(minutes=1)
    arrow = md.quotes(symbol, start, end, as_="arrow")
    assert arrow.num_rows == 1000 and arrow["bid"].null_count == 143
    assert arrow["ts"].to_pylist() == data["ts"].to_pylist()
    assert arrow["bid"].to_pylist() == data["bid"].to_pylist()
    rows = md.quotes(symbol, start, end)
    assert len(rows) == 1000 and rows[1]["bid"] == 1.015625
    frame = md.quotes(symbol, start, end, as_="pandas")
    assert isinstance(frame, pd.DataFrame) and len(frame) == 1000
    polars_frame = md.quotes(symbol, start, end, as_="polars")
    assert isinstance(polars_frame, pl.DataFrame) and polars_frame.height == 1000
    pieces = md.stream("quotes", symbol, start, end, chunk_bytes=4096)
    assert len(pieces) > 5
    assert pa.concat_tables(pieces).equals(arrow)
    empty = md.quotes(symbol, end, end + timedelta(minutes=1), as_="arrow")
    assert empty.num_rows == 0 and empty.schema == arrow.schema


def test_aggregate_bars_from_trades(md: Feature, db: TestDatabase) -> None:
    symbol = f"AG{md.kind[0].upper()}"
    prices = [10.0, 12.0, 9.0, 11.0, 20.0, 21.0]
    sizes = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    offsets = [0, 10, 20, 59, 60, 61]
    rows = [
        {"ts": T0 + timedelta(seconds=o), "symbol": symbol, "price": p, "size": s, "trade_id": str(i)}
        for i, (o, p, s) in enumerate(zip(offsets, prices, sizes, strict=True))
    ]
    md.write_trades(rows, source=f"ag-{md.kind}", create_securities=True)
    stored = md.aggregate_bars(
        "market_trades", "1m", T0, T0 + timedelta(minutes=5), symbols=[symbol], source=f"ag-{md.kind}"
    )
    assert stored == 2
    bars = md.bars(symbol, T0, T0 + timedelta(minutes=5), timeframe="1m")
    assert [(b["open"], b["high"], b["low"], b["close"], b["volume"], b["trade_count"]) for b in bars] == [
        (10.0, 12.0, 9.0, 11.0, 10.0, 4),
        (20.0, 21.0, 20.0, 21.0, 11.0, 2),
    ]
    assert bars[0]["vwap"] == pytest.approx((10 + 24 + 27 + 44) / 10)
    # Computing again replaces, it does not double count.
    assert (
        md.aggregate_bars(
            "market_trades", "1m", T0, T0 + timedelta(minutes=5), symbols=[symbol], source=f"ag-{md.kind}"
        )
        == 2
    )
    cov = {(c["table_name"], c["timeframe"]): c["row_count"] for c in md.coverage(symbol=symbol)}
    assert cov == {("market_trades", ""): 6, ("bars", "1m"): 2}


def test_adjusted_bars_and_gaps(md: Feature, db: TestDatabase) -> None:
    symbol = f"AD{md.kind[0].upper()}"
    days = [date(2026, 1, 5) + timedelta(days=i) for i in range(10)]
    days = [d for d in days if d.weekday() < 5 and d != date(2026, 1, 8)]
    rows = [
        {"ts": d, "symbol": symbol, "open": 100.0, "high": 101.0, "low": 99.0, "close": 100.0, "volume": 1000.0}
        for d in days
    ]
    md.write_bars(rows, source=f"ad-{md.kind}", timeframe="1d", create_securities=True)
    md.write_corporate_actions(
        [
            {"symbol": symbol, "ex_date": date(2026, 1, 12), "kind": "split", "value": 2},
            {"symbol": symbol, "ex_date": date(2026, 1, 7), "kind": "dividend", "value": 1},
        ],
        source=f"ad-{md.kind}",
    )
    adjusted = md.adjusted_bars(symbol, date(2026, 1, 1), date(2026, 2, 1))
    by_day = {r["ts"].date(): r for r in adjusted}
    assert by_day[date(2026, 1, 13)]["close"] == 100.0
    assert by_day[date(2026, 1, 9)]["close"] == 50.0 and by_day[date(2026, 1, 9)]["volume"] == 2000.0
    assert by_day[date(2026, 1, 5)]["close"] == pytest.approx(100.0 * 0.99 / 2)
    missing = md.gaps(symbol, date(2026, 1, 5), date(2026, 1, 15))
    assert missing == [{"session": date(2026, 1, 8)}]
    nyse = md.gaps(symbol, date(2026, 1, 1), date(2026, 1, 15), calendar="XNYS")
    assert {"session": date(2026, 1, 2)} in nyse and {"session": date(2026, 1, 1)} not in nyse
    tick = quotes(symbol, 3, step=timedelta(seconds=1))
    md.write_quotes(tick, source=f"ad-{md.kind}")
    md.write_quotes(quotes(symbol, 1, start=T0 + timedelta(minutes=5)), source=f"ad-{md.kind}")
    holes = md.gaps(symbol, T0, T0 + timedelta(hours=1), table="quotes", expected="1m")
    assert [(h["gap_start"], h["gap_end"]) for h in holes] == [(T0 + timedelta(seconds=2), T0 + timedelta(minutes=5))]


@pytest.mark.skipif(TIMESCALE, reason="hypertables have no default partition: TimescaleDB makes the chunks")
def test_service_role_writes_to_the_default_partition_until_maintained(db: TestDatabase) -> None:
    from tradedb.ops import maintenance

    far = datetime(2019, 5, 6, 10, tzinfo=UTC)
    with tradedb.connect(db.url, settings=db.settings) as owner:
        owner.market_data.write_quotes(quotes("SVC", 1), source="svc", create_securities=True)
    with tradedb.connect(db.url, settings=db.settings, service="data_ingestion") as svc:
        result = svc.market_data.write_quotes(quotes("SVC", 50, start=far, step=timedelta(minutes=2)), source="svc")
    assert result.written == 50
    assert count(db, "quotes_default", "source = 'svc'") == 50
    report = maintenance.maintain(settings=db.settings, url=db.server_url, ahead=0)
    moved = {k: v for k, v in report.moved.items() if "quotes_p2019" in k}
    assert sum(moved.values()) == 50 and len(moved) == 2
    assert count(db, "quotes_default") == 0
    assert count(db, "quotes", "source = 'svc'") == 51


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=10**9),
            st.one_of(st.none(), st.floats(min_value=0.01, max_value=1e6)),
            st.one_of(st.none(), st.floats(min_value=0, max_value=1e9)),
            st.one_of(st.none(), st.text(alphabet="abcdef0123456789-é", min_size=0, max_size=12)),
            st.sampled_from(["buy", "sell", None]),
        ),
        min_size=1,
        max_size=40,
        unique_by=lambda r: r[0],
    )
)
def test_binary_copy_round_trips(db: TestDatabase, rows: list[tuple[Any, ...]]) -> None:
    """Whatever shapes the rows have (NULLs, text lengths), what is read back is what was written."""
    with tradedb.connect(db.url, settings=db.settings) as conn:
        md = conn.market_data
        md.write_quotes(quotes("RT", 1), source="rt-seed", create_securities=True)
        conn.execute("DELETE FROM data_ingestion.market_trades WHERE source = 'rt'")
        data = [
            {
                "ts": T0 + timedelta(microseconds=us),
                "symbol": "RT",
                "price": price if price is not None else 1.0,
                "size": size if size else 1.0,
                "trade_id": tid,
                "aggressor_side": side,
            }
            for us, price, size, tid, side in rows
        ]
        md.write_trades(data, source="rt")
        back = conn.fetch_all(
            "SELECT ts, price, size, trade_id, aggressor_side FROM data_ingestion.market_trades "
            "WHERE source = 'rt' ORDER BY ts"
        )
    expected = sorted(
        ((d["ts"], d["price"], d["size"], d["trade_id"], d["aggressor_side"]) for d in data), key=lambda r: r[0]
    )
    assert [tuple(r.values()) for r in back] == expected


def test_dataframe_extras_are_explained_when_missing(db: TestDatabase, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_polars(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "polars":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    with tradedb.connect(db.url, settings=db.settings) as conn:
        conn.market_data.write_quotes(quotes("PX", 1), source="px", create_securities=True)
        monkeypatch.setattr(builtins, "__import__", no_polars)
        with pytest.raises(ConfigError, match=r"tradedb\[dataframes\]"):
            conn.market_data.quotes("PX", T0, T0 + timedelta(1), as_="polars")
    assert issubclass(ConfigError, TradeDBError)


def test_replace_of_unordered_input_keeps_every_row(md: Feature, db: TestDatabase) -> None:
    """Batches cut from shuffled rows would have overlapping windows: one would replace another's rows."""
    names = [f"UO{md.kind[0].upper()}{i}" for i in range(3)]
    rows = [(T0 + timedelta(seconds=i), names[i % 3], 1.0, 1.1) for i in range(300)]
    rng = np.random.default_rng(3)
    shuffled = [rows[i] for i in rng.permutation(len(rows))]
    for name in names:
        md.write_quotes([(T0, name, 1.0, 1.1)], source=f"uo-seed-{md.kind}", create_securities=True)
    for _ in range(2):
        result = md.write_quotes(shuffled, source=f"uo-{md.kind}", on_conflict="replace", batch_rows=50)
        assert result.written == 300
        assert count(db, "quotes", f"source = 'uo-{md.kind}'") == 300


def test_quotes_of_several_contributors_are_read_and_filtered(md: Feature, db: TestDatabase) -> None:
    symbol = f"CTB{md.kind[0].upper()}"
    rows = [
        {"ts": T0, "symbol": symbol, "bid": 1.0, "ask": 1.1, "contributor": bank}
        for bank in ("BANK-A", "BANK-B", "BANK-C")
    ]
    result = md.write_quotes(rows, source=f"ctb-{md.kind}", create_securities=True)
    assert (result.written, result.findings) == (3, {})
    every = md.quotes(symbol, T0, T0 + timedelta(seconds=1), as_="arrow")
    assert sorted(every["contributor"].to_pylist()) == ["BANK-A", "BANK-B", "BANK-C"]
    one = md.quotes(symbol, T0, T0 + timedelta(seconds=1), contributor="BANK-B")
    assert [(r["contributor"], r["bid"]) for r in one] == [("BANK-B", 1.0)]
    too_long = [{**rows[0], "contributor": "X" * 65}]
    with pytest.raises(ValidationError, match="invalid_value"):
        md.write_quotes(too_long, source=f"ctb-{md.kind}")
    with pytest.raises(ValidationError, match="contributor= filters quotes only"):
        md.trades(symbol, T0, T0 + timedelta(seconds=1), contributor="BANK-B")


def test_bars_of_an_unknown_security_id_are_refused_without_a_foreign_key(md: Feature, db: TestDatabase) -> None:
    """bars has no foreign key (migration 0006, for COPY speed): the writer itself refuses ids it does not know."""
    bar = {"ts": T0, "security_id": 987_654_321, "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0}
    with pytest.raises(ValidationError, match="unknown_security"):
        md.write_bars([bar], source=f"nofk-{md.kind}", timeframe="1m")
    kept_out = md.write_bars([bar], source=f"nofk-{md.kind}", timeframe="1m", policy="quarantine")
    assert (kept_out.written, kept_out.rejected) == (0, 1)
    assert count(db, "bars", "source = %s", (f"nofk-{md.kind}",)) == 0
    with db.connect() as conn:
        fks = conn.execute(
            "SELECT count(*) FROM pg_constraint WHERE conrelid = 'data_ingestion.bars'::regclass AND contype = 'f'"
        ).fetchone()
    assert fks == (0,)


def test_adjusted_bars_take_one_record_per_action_and_do_not_depend_on_the_window(md: Feature) -> None:
    """A split recorded by two vendors is one split; a dividend's factor uses the closes around its ex-date even
    when the window asked for ends before it (issue 16)."""
    symbol = f"AW{md.kind[0].upper()}"
    days = [date(2026, 3, 2) + timedelta(days=i) for i in range(12)]
    days = [d for d in days if d.weekday() < 5]
    closes = [100.0 + i for i in range(len(days))]
    rows = [
        {"ts": d, "symbol": symbol, "open": c, "high": c, "low": c, "close": c, "volume": 1000.0}
        for d, c in zip(days, closes, strict=True)
    ]
    md.write_bars(rows, source="va", timeframe="1d", create_securities=True)
    split = {"symbol": symbol, "ex_date": days[8], "kind": "split", "value": 2}
    md.write_corporate_actions([split], source="va")
    md.write_corporate_actions([split], source="vb")
    md.write_corporate_actions([{"symbol": symbol, "ex_date": days[5], "kind": "dividend", "value": 1}], source="va")
    md.write_corporate_actions([{"symbol": symbol, "ex_date": days[5], "kind": "dividend", "value": 3}], source="vb")
    whole = {r["ts"].date(): r for r in md.adjusted_bars(symbol, days[0], days[-1] + timedelta(days=1), source="va")}
    # Once: 2, not 4; the dividend of the bars' own source (1, not 3), over the close before its ex-date.
    assert whole[days[0]]["close"] == pytest.approx(closes[0] / 2 * (1 - 1 / closes[4]))
    assert whole[days[-1]]["close"] == closes[-1]
    for method in ("previous_close", "ex_close"):
        full = md.adjusted_bars(symbol, days[0], days[-1] + timedelta(days=1), source="va", dividend_method=method)
        early = md.adjusted_bars(symbol, days[0], days[3], source="va", dividend_method=method)
        assert [r["close"] for r in early] == pytest.approx([r["close"] for r in full[:3]], rel=1e-15)
    # Without a source of its own, the first vendor by name is taken: "va" again.
    assert md.adjusted_bars(symbol, days[0], days[1])[0]["close"] == pytest.approx(whole[days[0]]["close"])


def _reference_latest(db: TestDatabase, symbol: str, source: str | None = None) -> tuple[Any, ...] | None:
    """The newest quote the usual way: a scan of the quotes table."""
    with db.connect() as conn:
        return conn.execute(
            "SELECT q.ts, q.bid, q.ask, q.source FROM data_ingestion.quotes q JOIN shared.securities s "
            "USING (security_id) WHERE s.symbol = %s AND (%s::text IS NULL OR q.source = %s) "
            "ORDER BY q.ts DESC LIMIT 1",
            (symbol, source, source),
        ).fetchone()


def test_latest_quotes_from_the_kept_last_quotes_are_never_stale(md: Feature, db: TestDatabase) -> None:
    """latest_quotes reads the last quotes the writers keep (issue 18): after appends, skips, replaces inside the
    stored span, two sources, and writes around tradedb seen by
    rebuild_coverage, it equals a scan of the quotes table."""
    symbol = f"KQ{md.kind[0].upper()}"
    source = f"kq-{md.kind}"

    def check(which: str | None = None) -> None:
        got = md.latest_quotes([symbol], source=which)[symbol]
        expected = _reference_latest(db, symbol, which)
        assert expected is not None and got is not None
        assert (got["ts"], got["bid"], got["ask"], got["source"]) == expected

    def kept() -> int:
        with db.connect() as conn:
            row = conn.execute(
                "SELECT count(*) FROM data_ingestion.last_quotes l JOIN shared.securities s USING (security_id) "
                "WHERE s.symbol = %s",
                (symbol,),
            ).fetchone()
        assert row is not None
        return int(str(row[0]))

    md.write_quotes(quotes(symbol, 50), source=source, create_securities=True)
    assert kept() == 1
    check()
    md.write_quotes(quotes(symbol, 20, start=T0 + timedelta(minutes=5)), source=source)  # newer
    check()
    md.write_quotes(quotes(symbol, 10), source=source, on_conflict="skip")  # older, already stored
    check()
    # Replace the first minute with fewer, different quotes: the newest stays the later batch's.
    shifted = quotes(symbol, 5).set_column(2, "bid", pa.array([7.0] * 5))
    md.write_quotes(shifted, source=source, on_conflict="replace")
    check()
    # Replace the start of the newest minute: the rows after the replaced window stay the newest.
    late = quotes(symbol, 3, start=T0 + timedelta(minutes=5)).set_column(2, "bid", pa.array([8.0] * 3))
    md.write_quotes(late, source=source, on_conflict="replace")
    check()
    md.write_quotes(quotes(symbol, 2, start=T0 + timedelta(hours=1)), source=f"{source}-b")  # a second source
    check()
    check(source)
    check(f"{source}-b")
    assert kept() == 2
    # A newer row written around tradedb: once rebuild_coverage has seen it, the kept quote no longer agrees with
    # coverage and the probes answer.
    with db.connect() as conn:
        conn.execute(
            "INSERT INTO data_ingestion.quotes (ts, security_id, bid, ask, source) "
            "SELECT %s, security_id, 9.0, 9.1, %s FROM shared.securities WHERE symbol = %s",
            (T0 + timedelta(hours=2), source, symbol),
        )
    md.rebuild_coverage("quotes")
    check()
    check(source)


def test_latest_quotes_answers_when_its_pooled_connections_were_ended(md: Feature, db: TestDatabase) -> None:
    """latest_quotes is one statement sent without the pool's checkout check (issue 18: one round trip): when the
    server has ended the pooled connections meanwhile, that attempt fails and is retried on a new connection."""
    symbol = f"PQ{md.kind[0].upper()}"
    md.write_quotes(quotes(symbol, 5), source=f"pq-{md.kind}", create_securities=True)
    first = md.latest_quotes([symbol])[symbol]
    assert first is not None and first["ts"] == T0 + timedelta(seconds=4)
    with db.connect(autocommit=True) as conn:
        ended = conn.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = 'tradedb'"
        ).fetchone()
    assert ended is not None and int(str(ended[0])) >= 1
    assert md.latest_quotes([symbol])[symbol] == first


def test_created_securities_get_a_known_venue_and_an_unknown_one_is_named(md: Feature, db: TestDatabase) -> None:
    """create_securities with exchange= adds a venue tradedb knows, as securities.add does (on a database whose
    exchanges table is empty this was a foreign-key error), and refuses an unknown MIC by name, writing nothing."""
    with db.connect(autocommit=True) as conn:
        conn.execute(
            "DELETE FROM shared.exchanges e WHERE mic = 'XLON'"
            " AND NOT EXISTS (SELECT 1 FROM shared.securities s WHERE s.exchange_mic = e.mic)"
        )
    symbol = f"VN{md.kind[0].upper()}"
    written = md.write_quotes(quotes(symbol, 3), source=f"venue-{md.kind}", exchange="XLON", create_securities=True)
    assert written.written == 3
    assert md.security_ids([symbol], exchange="XLON")[symbol] > 0
    with pytest.raises(UnknownExchange, match="ZZZZ"):
        md.write_quotes(quotes(f"{symbol}Z", 3), source=f"venue-z-{md.kind}", exchange="ZZZZ", create_securities=True)
    assert count(db, "quotes", f"source = 'venue-z-{md.kind}'") == 0

"""Market data logic without I/O: timestamps, checks, COPY encoding, CSV splitting, adjustment, sessions."""

from __future__ import annotations

import csv
import struct
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import SHARED_DATA
from tradedb import ValidationError
from tradedb.columnar import binary_copy
from tradedb.columnar.binary_encode import encode_copy
from tradedb.marketdata import _datasets as base
from tradedb.marketdata import _quality as quality
from tradedb.marketdata import _reading as read
from tradedb.marketdata import files as ingest_files

DATA = SHARED_DATA


def test_naive_times_are_refused_unless_a_zone_is_given() -> None:
    naive = pa.array([datetime(2020, 1, 1, 17, 0, 0, 65_000)], pa.timestamp("ms"))
    with pytest.raises(ValidationError, match="naive"):
        base.timestamps(naive, None)
    # HistData's EST without daylight saving: a fixed -05:00, in January and in July alike.
    assert base.timestamps(naive, "-05:00").to_pylist() == [datetime(2020, 1, 1, 22, 0, 0, 65_000, tzinfo=UTC)]
    july = pa.array([datetime(2020, 7, 1, 17)], pa.timestamp("s"))
    assert base.timestamps(july, "-05:00").to_pylist() == [datetime(2020, 7, 1, 22, tzinfo=UTC)]
    assert base.timestamps(july, "America/New_York").to_pylist() == [datetime(2020, 7, 1, 21, tzinfo=UTC)]
    text = pa.array(["2013-01-01 22:00:00.295+00:00", "2024-07-01T23:58:01.218218853Z"])
    assert base.timestamps(text, None).to_pylist() == [
        datetime(2013, 1, 1, 22, 0, 0, 295_000, tzinfo=UTC),
        datetime(2024, 7, 1, 23, 58, 1, 218_218, tzinfo=UTC),  # nanoseconds truncated to microseconds
    ]
    assert base.timestamps(pa.array([date(2016, 1, 12)]), None).to_pylist() == [datetime(2016, 1, 12, tzinfo=UTC)]
    with pytest.raises(ValidationError, match="must hold times"):
        base.timestamps(pa.array([1.5]), None)
    with pytest.raises(ValidationError, match=r"ambiguous|cannot be read"):
        base.timestamps(pa.array([datetime(2020, 11, 1, 1, 30)], pa.timestamp("s")), "America/New_York")


def table(**columns: object) -> pa.Table:
    return pa.table({k: pa.array(v) for k, v in columns.items()})


def test_checks_find_each_defect() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    bars = table(
        ts=[t0, t0 + timedelta(days=1), t0 + timedelta(days=2), t0 + timedelta(days=2), t0 + timedelta(days=3)],
        security_id=[1, 1, 1, 1, 1],
        timeframe=["1d"] * 5,
        open=[10.0, 10.0, 10.0, 10.0, None],
        high=[11.0, 9.0, 11.0, 11.5, 11.0],
        low=[9.0, 9.5, 9.0, 9.0, 9.0],
        close=[10.5, 10.0, 10.0, 10.0, 10.0],
        volume=[1.0, 1.0, 1.0, 1.0, 1.0],
        trade_count=pa.nulls(5, pa.int64()),
        vwap=pa.nulls(5, pa.float64()),
    )
    findings = quality.check(bars, base.BARS)
    assert findings.counts() == {"missing_value": 1, "ohlc_violation": 2, "duplicate": 1}
    assert findings.status["duplicate"] == quality.FAIL  # a keyed table cannot hold both
    assert findings.reasons(4) == ["missing_value", "ohlc_violation"]


#: Rows of (time in µs, a float, a text) with NULLs, for the binary COPY encoder and decoder.
COPY_ROWS = st.lists(
    st.tuples(
        st.integers(-(10**15), 10**15),
        st.one_of(st.none(), st.floats(allow_nan=False)),
        st.one_of(st.none(), st.text(max_size=20)),
    ),
    max_size=60,
)


@given(COPY_ROWS)
def test_copy_encoding_is_postgres_binary(rows: list[tuple[int, float | None, str | None]]) -> None:
    """Decode the stream by the PostgreSQL binary COPY format and get the rows back (in some order)."""
    data = pa.table(
        {
            "ts": pa.array([r[0] for r in rows], pa.int64()).cast(pa.timestamp("us", "UTC")),
            "x": pa.array([r[1] for r in rows], pa.float64()),
            "t": pa.array([r[2] for r in rows], pa.string()),
        }
    )
    stream = b"".join(bytes(b) for b in encode_copy(data, ["ts", "x", "t"], {"source": "src"}))
    assert stream.startswith(b"PGCOPY\n\xff\r\n\x00") and stream.endswith(b"\xff\xff")
    pos, decoded = 19, []
    while stream[pos : pos + 2] != b"\xff\xff":
        (nfields,) = struct.unpack(">h", stream[pos : pos + 2])
        pos += 2
        assert nfields == 4
        values = []
        for _ in range(nfields):
            (length,) = struct.unpack(">i", stream[pos : pos + 4])
            pos += 4
            values.append(None if length < 0 else stream[pos : pos + length])
            pos += max(length, 0)
        ts, x, t, source = values
        assert ts is not None and source == b"src"
        micros = struct.unpack(">q", ts)[0]
        decoded.append(
            (
                micros + 946_684_800_000_000,  # PostgreSQL counts from 2000-01-01
                None if x is None else struct.unpack(">d", x)[0],
                None if t is None else t.decode(),
            )
        )
    assert pos == len(stream) - 2
    assert sorted(decoded, key=repr) == sorted(rows, key=repr)


@settings(deadline=None)  # the first example compiles the decoder (numba) when its cache is cold
@given(COPY_ROWS)
def test_the_read_decoder_takes_back_what_the_write_encoder_wrote(
    rows: list[tuple[int, float | None, str | None]],
) -> None:
    """Writes encode binary COPY (marketdata._encoding), reads decode it (tradedb.columnar): two independent
    implementations of PostgreSQL's format that must agree (the encoder puts the constant column last)."""
    data = pa.table(
        {
            "ts": pa.array([r[0] for r in rows], pa.int64()).cast(pa.timestamp("us", "UTC")),
            "x": pa.array([r[1] for r in rows], pa.float64()),
            "t": pa.array([r[2] for r in rows], pa.string()),
        }
    )
    stream = b"".join(bytes(b) for b in encode_copy(data, ["ts", "x", "t"], {"source": "src"}))
    layout = pa.schema([*data.schema, ("source", pa.string())])
    decoded = binary_copy.decode(stream, layout)
    expected = data.append_column("source", pa.array(["src"] * len(rows), pa.string()))
    assert sorted(decoded.to_pylist(), key=repr) == sorted(expected.to_pylist(), key=repr)


def test_chunk_sizes_are_checked() -> None:
    assert read.check_chunk_bytes(4096) == 4096
    for bad in (10, True, "1MB"):
        with pytest.raises(ValidationError, match="chunk_bytes"):
            read.check_chunk_bytes(bad)


def test_weekday_sessions_and_expected_steps() -> None:
    missing = read.missing_sessions(
        [date(2026, 1, 5), date(2026, 1, 7)], datetime(2026, 1, 3, tzinfo=UTC), datetime(2026, 1, 10, tzinfo=UTC), None
    )
    assert missing == [{"session": date(2026, 1, 6)}, {"session": date(2026, 1, 8)}, {"session": date(2026, 1, 9)}]
    assert read.expected_step("90s", None) == timedelta(seconds=90)
    assert read.expected_step(None, "5m") == timedelta(minutes=5)
    with pytest.raises(ValidationError):
        read.expected_step("soon", None)


def test_adjustment_of_splits_and_dividends() -> None:
    bars = pa.table(
        {
            "ts": pa.array([datetime(2026, 1, d, tzinfo=UTC) for d in (5, 6, 7)]),
            "open": [100.0, 100.0, 50.0],
            "high": [100.0, 100.0, 50.0],
            "low": [100.0, 100.0, 50.0],
            "close": [100.0, 100.0, 50.0],
            "volume": [10.0, 10.0, 20.0],
            "vwap": pa.nulls(3, pa.float64()),
        }
    )
    out = read.adjust(
        bars,
        [
            {"ex_date": date(2026, 1, 6), "kind": "dividend", "value": 1},
            {"ex_date": date(2026, 1, 7), "kind": "split", "value": 2},
        ],
    )
    assert out["close"].to_pylist() == pytest.approx([49.5, 50.0, 50.0])
    assert out["volume"].to_pylist() == [20.0, 20.0, 20.0]
    # Quandl/CRSP style: the ex-date's close over itself plus the dividend (100 / 101), then the split.
    ex_close = read.adjust(
        bars,
        [
            {"ex_date": date(2026, 1, 6), "kind": "dividend", "value": 1},
            {"ex_date": date(2026, 1, 7), "kind": "split", "value": 2},
        ],
        "ex_close",
    )
    assert ex_close["close"].to_pylist() == pytest.approx([100 * 100 / 101 / 2, 50.0, 50.0], rel=1e-15)
    assert out["factor"].to_pylist() == pytest.approx([0.495, 0.5, 1.0])


def test_vendor_column_aliases_and_sides() -> None:
    raw = pa.table(
        {
            "ts_recv": ["2024-07-01T23:58:01Z"],
            "ts_event": ["2024-07-01T23:58:00Z"],
            "price": [5528.75],
            "size": [2],
            "side": ["A"],
            "sequence": [9060643],
            "symbol": ["ESU4"],
        }
    )
    ready = ingest_files.canonical(raw, "trades")
    trades = ready.table
    assert trades.column_names == ["ts", "symbol", "price", "size", "aggressor_side"]
    assert (ready.time_source, ready.ignored) == ("ts_event", ["ts_recv", "sequence"])
    assert trades["ts"].to_pylist() == ["2024-07-01T23:58:00Z"]
    assert trades["aggressor_side"].to_pylist() == ["sell"]
    maker = ingest_files.canonical(
        pa.table({"timestamp": [1610064000278], "price": [1.0], "quantity": [1.0], "buyer_maker": ["True"]}), "trades"
    ).table
    assert maker["aggressor_side"].to_pylist() == ["sell"]
    assert maker["ts"].to_pylist() == [datetime(2021, 1, 8, 0, 0, 0, 278000, tzinfo=UTC)]  # epoch milliseconds
    with pytest.raises(ValidationError, match="no time column"):
        ingest_files.canonical(pa.table({"price": [1.0]}), "trades")


@pytest.mark.usefixtures("shared_data")
def test_listing_files_skip_footers_and_test_issues() -> None:
    path = DATA / "04_symbol_master" / "nasdaq-listed-symbols.csv"
    rows, skipped = ingest_files.read_securities(path)
    with path.open(newline="") as handle:
        lines = list(csv.DictReader(handle))
    test_issues = sum(1 for line in lines if line["Test Issue"] == "Y")
    assert len(rows) == len(lines) - test_issues - 2  # less the "File Creation Time" footer and the blank line
    assert skipped == test_issues + 2 and not any(r["symbol"].startswith("File") for r in rows)
    assert all(r["exchange_mic"] == "XNAS" for r in rows)
    other, _ = ingest_files.read_securities(DATA / "04_symbol_master" / "other-listed.csv")
    assert {r["exchange_mic"] for r in other} == {"XNYS", "ARCX", "BATS", "XASE"}
    sp500, skipped = ingest_files.read_securities(DATA / "04_symbol_master" / "sp500-constituents.csv")
    assert len(sp500) == 503 and skipped == 0
    brk = next(r for r in sp500 if r["symbol"] == "BRK.B")
    assert brk["sector"] == "Financials" and brk["cik"] == "0001067983"


def test_histdata_reader(tmp_path: Path) -> None:
    path = tmp_path / "ticks.csv"
    path.write_text("20200101 170000065,1.121200,1.121720,0\n20200101 170010447,1.1212,1.12192,0\n")
    parsed = ingest_files.read_table(path, "histdata")
    assert parsed["ts"].to_pylist() == [
        datetime(2020, 1, 1, 17, 0, 0, 65_000),
        datetime(2020, 1, 1, 17, 0, 10, 447_000),
    ]
    assert np.allclose(parsed["bid"].to_numpy(), [1.1212, 1.1212])


def test_an_mbo_file_without_the_columns_it_needs_is_named(tmp_path: Path) -> None:
    path = tmp_path / "mbo.csv"
    path.write_text("ts_recv,action,side,price,size,order_id\n2024-05-08T00:00:00.000000000Z,A,B,1.5,1,7\n")
    with pytest.raises(ValidationError, match=r"mbo.csv: not a Databento MBO CSV with symbols: no symbol column"):
        ingest_files.read_mbo(path)
    path.write_text(path.read_text().replace("order_id\n", "order_id,symbol\n").replace(",7\n", ",7,ESM4\n"))
    path.write_text(path.read_text() + "2024-05-08T00:00:01.000000000Z,T,N,1.5,1,0,ESM4\n")
    events = ingest_files.read_mbo(path)
    assert events.select(["event_type", "order_ref", "side", "sequence"]).to_pylist() == [
        {"event_type": "new", "order_ref": "7", "side": "buy", "sequence": 2},
        {"event_type": "trade", "order_ref": None, "side": None, "sequence": 3},
    ]

"""TimescaleDB as a tested backend: the market-data tables converted into hypertables on a real TimescaleDB build
(`make test-timescale` builds it from ../shared/vendor against PostgreSQL 15) give the answers of native
partitions, keep their keys, indexes, triggers and grants, verify clean, and keep coverage right under retention.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import tradedb
from tests.conftest import PG15_BINDIR, make_settings
from tests.servers import PgInstance
from tradedb.errors import ArchiveError
from tradedb.ops import archive, maintenance, verify
from tradedb.ops import setup as provision

pytestmark = [
    pytest.mark.timescale,
    pytest.mark.skipif(
        not list(Path("/usr/lib/postgresql/15/lib").glob("timescaledb-*.so")),
        reason="TimescaleDB is not built for PostgreSQL 15 (make test-timescale builds it)",
    ),
]
T0 = datetime(2024, 5, 6, tzinfo=UTC)  # a Monday
TABLES = (
    "data_ingestion.quotes",
    "data_ingestion.market_trades",
    "data_ingestion.bars",
    "data_ingestion.order_book_events",
)


@pytest.fixture(scope="module")
def server() -> Iterator[PgInstance]:
    instance = PgInstance(bindir=PG15_BINDIR, prefix="tradedb-timescale-").start()
    instance.configure(**maintenance.TIMESCALEDB_SERVER_SETTINGS)
    instance.restart()
    yield instance
    instance.cleanup()


@pytest.fixture(scope="module")
def databases(server: PgInstance) -> dict[str, Any]:
    """Two tradedb databases on one server, the second converted to hypertables, holding the same writes."""
    made = {}
    for name in ("native", "hyper"):
        settings = make_settings(server.url(), f"tdbt_ts_{name}")
        provision.setup(settings=settings, url=server.url())
        made[name] = settings
    statements = maintenance.convert_to_hypertables(settings=made["hyper"], url=server.url())
    assert any("create_hypertable" in s for s in statements)
    assert maintenance.convert_to_hypertables(settings=made["hyper"], url=server.url()) == []  # nothing left to do
    for settings in made.values():
        with tradedb.connect(server.url(settings.trading_db_name), settings=settings) as db:
            write_market(db)
    return {"server": server, **made}


def write_market(db: tradedb.Database) -> None:
    n = 7_200  # two hours of quotes, two symbols, one a second: two hourly chunks or partitions
    ts = pa.array([T0 + timedelta(seconds=i // 2) for i in range(n)], pa.timestamp("us", "UTC"))
    bid = 100 + np.arange(n) * 0.01
    md = db.market_data
    md.write_quotes(
        pa.table(
            {
                "ts": ts,
                "symbol": ["TSA", "TSB"] * (n // 2),
                "bid": bid,
                "ask": bid + 0.02,
                "bid_size": np.full(n, 100.0),
                "ask_size": np.full(n, 200.0),
            }
        ),
        source="feed",
        exchange="XNAS",
        create_securities=True,
    )
    md.write_trades(
        pa.table(
            {
                "ts": ts[:1000],
                "symbol": ["TSA"] * 1000,
                "price": bid[:1000],
                "size": np.full(1000, 5.0),
                "trade_id": [str(i) for i in range(1000)],
            }
        ),
        source="feed",
        exchange="XNAS",
    )
    days = [T0 + timedelta(days=i) for i in range(30)]
    md.write_bars(
        pa.table(
            {
                "ts": pa.array(days, pa.timestamp("us", "UTC")),
                "symbol": ["TSA"] * 30,
                "open": np.full(30, 10.0),
                "high": np.full(30, 11.0),
                "low": np.full(30, 9.0),
                "close": np.linspace(10, 10.9, 30),
                "volume": np.full(30, 1e6),
            }
        ),
        source="daily",
        timeframe="1d",
        exchange="XNAS",
    )
    again = md.write_bars(  # a re-run by key: nothing new, on either backend
        pa.table(
            {
                "ts": pa.array(days[:3], pa.timestamp("us", "UTC")),
                "symbol": ["TSA"] * 3,
                "open": np.full(3, 10.0),
                "high": np.full(3, 11.0),
                "low": np.full(3, 9.0),
                "close": np.full(3, 10.0),
                "volume": np.full(3, 1e6),
            }
        ),
        source="daily",
        timeframe="1d",
        exchange="XNAS",
        on_conflict="skip",
    )
    assert (again.written, again.skipped) == (0, 3)


def answers(db: tradedb.Database) -> dict[str, Any]:
    md = db.market_data
    end = T0 + timedelta(days=31)
    md.aggregate_bars("market_trades", "1m", T0, end, source="feed")
    return {
        "quotes": md.quotes("TSB", T0, end, as_="arrow").to_pylist(),
        # Time order is the promise; ties (two trades in one second here) come in either backend's order.
        "trades": sorted(md.trades("TSA", T0, end), key=lambda r: (r["ts"], r["trade_id"])),
        "bars": md.bars("TSA", T0, end, timeframe="1d"),
        # VWAP is a float sum: the backends may add in another order (last-digit differences).
        "minute_bars": [
            {**b, "vwap": round(b["vwap"], 9)} for b in md.bars("TSA", T0, end, timeframe="1m", source="feed")
        ],
        "latest": md.latest_quotes(["TSA", "TSB"]),
        "coverage": sorted(
            (c["table_name"], c["source"], c["timeframe"], c["row_count"], c["first_ts"], c["last_ts"])
            for c in md.coverage()
        ),
    }


def test_hypertables_answer_as_native_partitions(databases: dict[str, Any]) -> None:
    server: PgInstance = databases["server"]
    found = {}
    for name in ("native", "hyper"):
        settings = databases[name]
        with tradedb.connect(server.url(settings.trading_db_name), settings=settings) as db:
            found[name] = answers(db)
            kinds = db.fetch_all(
                "SELECT c.oid::regclass::text AS t, c.relkind FROM pg_class c WHERE c.oid::regclass::text = ANY(%s)",
                (list(TABLES),),
            )
        assert {k["relkind"] for k in kinds} == ({"p"} if name == "native" else {"r"})
    for key in found["native"]:
        assert found["hyper"][key] == found["native"][key], key
    assert len(found["hyper"]["quotes"]) == 3600 and len(found["hyper"]["minute_bars"]) > 0


def test_converted_tables_keep_keys_indexes_triggers_grants_and_verify(databases: dict[str, Any]) -> None:
    server: PgInstance = databases["server"]
    catalog = """
        SELECT (SELECT array_agg(indexrelid::regclass::text ORDER BY 1) FROM pg_index WHERE indrelid = t::regclass),
               (SELECT array_agg(conname::text ORDER BY 1) FROM pg_constraint WHERE conrelid = t::regclass),
               (SELECT array_agg(tgname::text ORDER BY 1) FROM pg_trigger
                WHERE tgrelid = t::regclass AND NOT tgisinternal),
               (SELECT array_agg(format('%%s:%%s', grantee, privilege_type) ORDER BY 1)
                FROM information_schema.role_table_grants g WHERE g.table_schema || '.' || g.table_name = t),
               obj_description(t::regclass, 'pg_class')
        FROM unnest(%s::text[]) t ORDER BY t
    """
    shapes = {}
    for name in ("native", "hyper"):
        settings = databases[name]
        with tradedb.connect(server.url(settings.trading_db_name), settings=settings) as db:
            shapes[name] = db.fetch_all(catalog, (list(TABLES),))
        assert verify.verify(settings=settings, url=server.url()) == []
    assert shapes["hyper"] == shapes["native"]
    settings = databases["hyper"]
    with tradedb.connect(server.url(settings.trading_db_name), settings=settings) as db:
        enabled = db.fetch_all("SELECT hypertable_name, compression_enabled FROM timescaledb_information.hypertables")
        assert {(e["hypertable_name"], e["compression_enabled"]) for e in enabled} == {
            (t.split(".")[1], True) for t in TABLES
        }


def test_retention_drops_whole_chunks_and_coverage_follows(databases: dict[str, Any]) -> None:
    server: PgInstance = databases["server"]
    settings = databases["hyper"]
    cutoff_age = datetime.now(UTC) - (T0 + timedelta(days=15))  # keeps the last 15 daily bars
    retention = {"data_ingestion.bars": cutoff_age}
    report = maintenance.maintain(settings=settings, url=server.url(), retention=retention, ahead=0)
    assert "data_ingestion.bars" in report.hypertables and report.dropped
    assert all(name.startswith("_timescaledb_internal.") for name in report.dropped)
    assert report.created == []  # no partition DDL on hypertables
    assert report.compressed  # chunks older than a week (all of them here), compressed
    again = maintenance.maintain(settings=settings, url=server.url(), retention=retention, ahead=0)
    assert (again.dropped, again.compressed) == ([], [])  # nothing left to do
    with tradedb.connect(server.url(settings.trading_db_name), settings=settings) as db:
        kept = db.market_data.bars("TSA", T0, T0 + timedelta(days=31), timeframe="1d")
        entry = next(c for c in db.market_data.coverage(symbol="TSA") if c["table_name"] == "bars")
        assert entry["row_count"] == len(kept) and entry["first_ts"] == kept[0]["ts"]
        assert len(kept) < 30
        assert [b["close"] for b in kept] == pytest.approx(list(np.linspace(10, 10.9, 30))[30 - len(kept) :])
        compressed = db.fetch_value(
            "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = 'bars' AND is_compressed"
        )
        assert compressed == len(db.fetch_all("SELECT show_chunks('data_ingestion.bars')"))


def test_archive_refuses_hypertables_and_takes_native_partitions(databases: dict[str, Any], tmp_path: Path) -> None:
    """A hypertable's old chunks are compressed, not archived: the archive names that, nothing changes; the native
    database on the same server archives the same quotes."""
    server: PgInstance = databases["server"]
    now = T0 + timedelta(days=400)
    hyper = databases["hyper"]
    with pytest.raises(ArchiveError, match=r"data_ingestion\.quotes is a TimescaleDB hypertable"):
        archive.archive(settings=hyper, url=server.url(), location=str(tmp_path / "h"), after="quotes=30d", now=now)
    assert not (tmp_path / "h").exists()
    native = databases["native"]
    report = archive.archive(
        settings=native, url=server.url(), location=str(tmp_path / "n"), after="quotes=30d", now=now
    )
    assert sum(a.rows for a in report.archived) == 7_200
    with tradedb.connect(server.url(native.trading_db_name), settings=native) as db:
        quotes = db.market_data.quotes("TSA", T0, T0 + timedelta(hours=2), as_="arrow")
    with tradedb.connect(server.url(hyper.trading_db_name), settings=hyper) as db:
        assert db.market_data.quotes("TSA", T0, T0 + timedelta(hours=2), as_="arrow").equals(quotes)

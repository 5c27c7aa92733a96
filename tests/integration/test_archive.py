"""Cold partitions to Parquet: archived, verified, dropped, still read by every read, restored; tampering found."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pyarrow.fs import S3FileSystem

import tradedb
from tests.conftest import SHARED_DATA, TestDatabase, run_cli
from tests.integration.market import assert_bars_equal, lobster_minute_bars
from tests.servers import free_port
from tradedb import ValidationError
from tradedb.archive import files
from tradedb.errors import ArchiveCorrupt, ArchivedRange, ArchiveError, ConfigError
from tradedb.marketdata import files as ingest_files
from tradedb.ops import archive, maintenance

OLD = datetime(2019, 1, 2, 14, 0, tzinfo=UTC)
RECENT = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
AGES = "quotes=30d,market_trades=30d,bars=30d"


def seed(conn: tradedb.Database) -> None:
    """Quotes and trades of two symbols over three hourly partitions of 2019 and one of yesterday; daily bars of
    three months of 2019 and of yesterday."""
    md = conn.market_data
    quotes, trades, bars = [], [], []
    for symbol, base in (("ARA", 10.0), ("ARB", 20.0)):
        for minute in range(0, 180, 3):
            ts = OLD + timedelta(minutes=minute, microseconds=minute * 7)
            quotes.append((ts, symbol, base + minute / 100, base + minute / 100 + 0.01))
            trades.append({"ts": ts, "symbol": symbol, "price": base + minute / 100, "size": 100.0 + minute})
        for minute in range(0, 30, 5):
            ts = RECENT + timedelta(minutes=minute)
            quotes.append((ts, symbol, base, base + 0.02))
            trades.append({"ts": ts, "symbol": symbol, "price": base, "size": 1.0})
        for day in [*range(88), None]:
            ts = OLD.replace(hour=0) + timedelta(days=day) if day is not None else RECENT.replace(hour=0)
            close = base + (day or 0) / 10
            bars.append(
                {
                    "ts": ts,
                    "symbol": symbol,
                    "open": close,
                    "high": close + 1,
                    "low": close - 1,
                    "close": close,
                    "volume": 1000.0,
                }
            )
    md.write_quotes(quotes, source="arc", create_securities=True)
    md.write_trades(pa.Table.from_pylist(trades), source="arc")
    md.write_bars(pa.Table.from_pylist(bars), source="arc", timeframe="1d")
    # A second source, so the source filter has something to leave out.
    md.write_quotes([(OLD + timedelta(minutes=1), "ARA", 1.0, 1.5)], source="other")


def reads(conn: tradedb.Database) -> dict[str, Any]:
    """Everything the reads return over the whole span (old and recent)."""
    md, lo, hi = conn.market_data, OLD - timedelta(days=1), RECENT + timedelta(days=1)
    out: dict[str, Any] = {}
    for symbol in ("ARA", "ARB"):
        out[f"quotes {symbol}"] = md.quotes(symbol, lo, hi)
        out[f"quotes arc {symbol}"] = md.quotes(symbol, lo, hi, source="arc", as_="arrow").to_pylist()
        out[f"trades {symbol}"] = md.trades(symbol, lo, hi, as_="pandas").to_dict("list")
        out[f"bars {symbol}"] = md.bars(symbol, lo, hi, as_="arrow").to_pylist()
        pieces = list(md.stream("quotes", symbol, lo, hi, chunk_bytes=1024))
        out[f"stream {symbol}"] = pa.concat_tables(pieces).to_pylist()
        out[f"window {symbol}"] = md.quotes(symbol, OLD + timedelta(minutes=61), OLD + timedelta(minutes=125))
    return out


def catalog_rows(conn: tradedb.Database) -> list[dict[str, Any]]:
    return conn.fetch_all("SELECT * FROM data_ingestion.archives ORDER BY table_name, range_start, seq")


def exists(conn: tradedb.Database, relation: str) -> bool:
    return conn.fetch_value("SELECT to_regclass(%s) IS NOT NULL", (relation,)) is True


@pytest.fixture
def conn(fresh_db: TestDatabase) -> Iterator[tradedb.Database]:
    with tradedb.connect(fresh_db.url, settings=fresh_db.settings) as database:
        seed(database)
        yield database


def run_archive(db: TestDatabase, location: str | Path, **options: Any) -> archive.ArchiveReport:
    return archive.archive(settings=db.settings, url=db.url, location=str(location), after=AGES, **options)


def test_archived_partitions_are_read_as_before(fresh_db: TestDatabase, conn: tradedb.Database, tmp_path: Path) -> None:
    before = reads(conn)
    coverage = conn.market_data.coverage()
    assert len(before["quotes ARA"]) == 60 + 6 + 1 and len(before["window ARA"]) == 21
    plan = run_archive(fresh_db, tmp_path, dry_run=True)
    assert "data_ingestion.quotes_p20190102_1400" in plan.candidates and catalog_rows(conn) == []
    report = run_archive(fresh_db, tmp_path, rows_per_file=25)
    archived = {a.partition: a for a in report.archived}
    # Three hourly partitions of quotes and trades, three months of bars; yesterday's stay in PostgreSQL.
    assert {n for n in archived if n.startswith("quotes_")} == {f"quotes_p20190102_{h}00" for h in (14, 15, 16)}
    assert {n for n in archived if n.startswith("bars_")} == {"bars_p201901", "bars_p201902", "bars_p201903"}
    assert not exists(conn, "data_ingestion.quotes_p20190102_1400") and not exists(conn, "data_ingestion.bars_p201902")
    assert conn.fetch_value("SELECT count(*) FROM data_ingestion.quotes WHERE ts < '2020-01-01'") == 0
    rows = catalog_rows(conn)
    assert sum(r["row_count"] for r in rows if r["table_name"] == "quotes") == 121
    # 41 rows of a partition in files of about 25 rows: two files, split inside a security's rows.
    split = [r for r in rows if r["partition_name"] == "quotes_p20190102_1400"]
    assert [(r["seq"], r["row_count"]) for r in split] == [(0, 25), (1, 16)]
    ids = conn.market_data.security_ids(["ARA", "ARB"])
    spans = [(r["first_security_id"], r["last_security_id"]) for r in split]
    assert spans == [(ids["ARA"], ids["ARB"]), (ids["ARB"], ids["ARB"])]
    for r in rows:
        assert (tmp_path / r["path"]).stat().st_size == r["file_bytes"]
    # Every read gives what it gave from PostgreSQL, in the same order; coverage still says the rows are there.
    assert reads(conn) == before
    assert conn.market_data.coverage() == coverage
    # Bars computed from archived trades equal the bars computed before the archive.
    lo, hi = OLD, OLD + timedelta(hours=3)
    with pytest.raises(ArchivedRange, match="bars_p201901"):  # the bars would land in an archived month
        conn.market_data.aggregate_bars("market_trades", "1h", lo, hi, source="arc", target_source="agg-after")
    archive.restore("bars", lo, hi, settings=fresh_db.settings, url=fresh_db.url)
    n = conn.market_data.aggregate_bars("market_trades", "1h", lo, hi, source="arc", target_source="agg-after")
    assert n == 6
    fresh = conn.market_data.bars("ARA", lo, hi, timeframe="1h", source="agg-after")
    assert [b["close"] for b in fresh] == [10.57, 11.17, 11.77] and [b["trade_count"] for b in fresh] == [20] * 3
    # Archiving again takes only the month brought back (with its new bars), and the reads still agree.
    again = run_archive(fresh_db, tmp_path)
    assert [(a.partition, a.rows) for a in again.archived] == [("bars_p201901", 2 * 30 + 6)]
    assert reads(conn) == before


def test_restore_brings_the_range_back(fresh_db: TestDatabase, conn: tradedb.Database, tmp_path: Path) -> None:
    before = reads(conn)
    run_archive(fresh_db, tmp_path)
    # A write into an archived range is refused before anything is written.
    late = [(OLD + timedelta(hours=1, minutes=1), "ARA", 1.0, 1.1)]
    with (
        tradedb.connect(fresh_db.url, settings=fresh_db.settings) as other,
        pytest.raises(ArchivedRange, match=r"quotes_p20190102_1500.*tradedb archive restore"),
    ):
        other.market_data.write_quotes(late, source="late")
    assert conn.fetch_value("SELECT count(*) FROM data_ingestion.quotes WHERE source = 'late'") == 0
    # A writer that knew the partition before it was archived sends its rows to the default partition: they are
    # not lost, reads of the archived range show them beside the archived rows.
    conn.market_data.write_quotes(late, source="late")
    assert conn.fetch_value("SELECT count(*) FROM data_ingestion.quotes_default WHERE source = 'late'") == 1
    window = conn.market_data.quotes("ARA", OLD + timedelta(minutes=58), OLD + timedelta(minutes=64))
    assert [(q["ts"].minute, q["source"]) for q in window] == [(0, "arc"), (1, "late"), (3, "arc")]
    # Maintenance moves it into the partition again; the next archive run adds a file beside the archived ones.
    maintenance.maintain(settings=fresh_db.settings, url=fresh_db.url, ahead=0)
    assert exists(conn, "data_ingestion.quotes_p20190102_1500")
    again = run_archive(fresh_db, tmp_path)
    assert [(a.partition, a.rows) for a in again.archived] == [("quotes_p20190102_1500", 1)]
    hour = [(r["seq"], r["row_count"]) for r in catalog_rows(conn) if r["partition_name"] == "quotes_p20190102_1500"]
    assert hour == [(0, 40), (1, 1)]
    assert conn.market_data.quotes("ARA", OLD + timedelta(minutes=58), OLD + timedelta(minutes=64)) == window
    conn.market_data.write_quotes(late, source="late")  # this writer still knows no archive: the default again
    conn.execute("DELETE FROM data_ingestion.quotes WHERE source = 'late'")
    report = archive.restore(
        "quotes",
        OLD + timedelta(minutes=90),
        OLD + timedelta(minutes=100),
        settings=fresh_db.settings,
        url=fresh_db.url,
    )
    assert report.restored == ["data_ingestion.quotes_p20190102_1500"] and report.rows == 41
    assert exists(conn, "data_ingestion.quotes_p20190102_1500")
    assert conn.fetch_value("SELECT count(*) FROM data_ingestion.quotes_p20190102_1500") == 41
    conn.execute("DELETE FROM data_ingestion.quotes WHERE source = 'late'")
    assert {r["partition_name"] for r in catalog_rows(conn) if r["table_name"] == "quotes"} == {
        "quotes_p20190102_1400",
        "quotes_p20190102_1600",
    }
    # Reads mix archived hours and the restored one, in time order, as before; the database verifies.
    assert reads(conn) == before
    assert run_cli("verify", env=fresh_db.env()).returncode == 0
    # Trades keep their condition codes through the round trip (the writers do not take them: set by hand).
    conn.market_data.write_trades(
        [{"ts": OLD - timedelta(days=400), "symbol": "ARA", "price": 1.0, "size": 1.0}], source="cond"
    )
    conn.execute("UPDATE data_ingestion.market_trades SET conditions = '{@,\"F I\"}' WHERE source = 'cond'")
    run_archive(fresh_db, tmp_path)
    span = (OLD - timedelta(days=401), OLD - timedelta(days=399))
    archive.restore("market_trades", *span, settings=fresh_db.settings, url=fresh_db.url)
    assert conn.fetch_value("SELECT conditions FROM data_ingestion.market_trades WHERE source = 'cond'") == ["@", "F I"]
    # Restoring a partition that is back already would duplicate rows: refused, nothing changed.
    with tradedb.connect(fresh_db.url, settings=fresh_db.settings) as other:
        other.execute("CREATE TABLE data_ingestion.quotes_p20190102_1400 (LIKE data_ingestion.quotes)")
    with pytest.raises(ArchiveError, match="quotes_p20190102_1400 exists in PostgreSQL already"):
        archive.restore("quotes", OLD, OLD + timedelta(minutes=1), settings=fresh_db.settings, url=fresh_db.url)
    assert any(r["partition_name"] == "quotes_p20190102_1400" for r in catalog_rows(conn))


def test_a_file_edited_after_archiving_is_found(fresh_db: TestDatabase, conn: tradedb.Database, tmp_path: Path) -> None:
    run_archive(fresh_db, tmp_path)
    row = next(r for r in catalog_rows(conn) if r["partition_name"] == "quotes_p20190102_1500")
    path = tmp_path / row["path"]
    original = path.read_bytes()
    # A changed byte in the middle of the file: the read fails naming the file, the restore refuses.
    edited = bytearray(original)
    edited[len(edited) // 2] ^= 0xFF
    path.write_bytes(bytes(edited))
    with pytest.raises(ArchiveCorrupt, match=r"part-0000.parquet .*does not match its checksum"):
        conn.market_data.quotes("ARA", OLD, OLD + timedelta(hours=3))
    with pytest.raises(ArchiveCorrupt):
        archive.restore("quotes", OLD, OLD + timedelta(hours=3), settings=fresh_db.settings, url=fresh_db.url)
    assert not exists(conn, "data_ingestion.quotes_p20190102_1400")  # nothing restored, not even the good hour
    result = run_cli("archive", "verify", env=fresh_db.env())
    assert result.returncode == 9 and "FAILED quotes/quotes_p20190102_1500/part-0000.parquet" in result.stdout
    # Truncated, then missing: the same.
    path.write_bytes(original[: len(original) // 2])
    with pytest.raises(ArchiveCorrupt, match="does not match its checksum"):
        conn.market_data.quotes("ARB", OLD, OLD + timedelta(hours=3))
    path.unlink()
    with pytest.raises(ArchiveCorrupt, match="missing from the archive"):
        conn.market_data.quotes("ARA", OLD, OLD + timedelta(hours=3))
    # A file replaced by a valid Parquet file of other rows: its bytes differ, so it is found too.
    files.write(files.filesystem(str(tmp_path))[0], str(tmp_path), row["path"], files.schema("quotes").empty_table())
    with pytest.raises(ArchiveCorrupt):
        conn.market_data.quotes("ARA", OLD, OLD + timedelta(hours=3), as_="arrow")
    path.write_bytes(original)
    assert len(conn.market_data.quotes("ARA", OLD, OLD + timedelta(hours=3))) == 61
    assert run_cli("archive", "verify", env=fresh_db.env()).returncode == 0


def test_nothing_is_dropped_unless_its_archive_verified(
    fresh_db: TestDatabase, conn: tradedb.Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the archive folder should be")
    with pytest.raises(ArchiveError, match=r"cannot write quotes/quotes_p20190102_1400/part-0000\.parquet"):
        run_archive(fresh_db, blocker / "archive")
    assert exists(conn, "data_ingestion.quotes_p20190102_1400") and catalog_rows(conn) == []
    # A file that does not read back as written (here: the check fails on the second file) keeps the partition,
    # and the files already written for it are removed.
    real_write, calls = files.write, []

    def failing_write(fs: Any, root: str, path: str, table: pa.Table) -> files.Written:
        calls.append(path)
        if len(calls) == 2:
            raise ArchiveCorrupt(f"{path}: the file read back does not hold the rows written")
        return real_write(fs, root, path, table)

    monkeypatch.setattr(files, "write", failing_write)
    with pytest.raises(ArchiveCorrupt):
        run_archive(fresh_db, tmp_path / "archive", rows_per_file=25)
    assert exists(conn, "data_ingestion.quotes_p20190102_1400") and catalog_rows(conn) == []
    assert not list((tmp_path / "archive").rglob("*.parquet"))
    assert conn.fetch_value("SELECT count(*) FROM data_ingestion.quotes WHERE ts < '2020-01-01'") == 121


def test_bad_input_is_refused(fresh_db: TestDatabase, tmp_path: Path) -> None:
    settings = fresh_db.settings
    with pytest.raises(ValidationError, match="'orders' cannot be archived"):
        archive.archive(settings=settings, url=fresh_db.url, location=str(tmp_path), after="orders=30d")
    with pytest.raises(ValidationError, match="expected table="):
        archive.parse_after("quotes")
    assert archive.parse_after("data_ingestion.quotes=2w") == {"quotes": timedelta(weeks=2)}
    with pytest.raises(ConfigError, match="TRADEDB_ARCHIVE_URL"):
        archive.archive(settings=settings, url=fresh_db.url, after="quotes=30d")
    with pytest.raises(ConfigError, match="AWS_SECRET_ACCESS_KEY"):
        archive.archive(settings=settings, location="s3://b/p?secret_key=hunter2", after="quotes=30d")
    with pytest.raises(ConfigError, match="TRADEDB_ARCHIVE_AFTER"):
        archive.archive(settings=settings, url=fresh_db.url, location=str(tmp_path))
    with pytest.raises(ValidationError, match="not after start"):
        archive.restore("quotes", OLD, OLD, settings=settings, url=fresh_db.url)
    with pytest.raises(ValidationError, match="time zone"):
        archive.restore("quotes", OLD.replace(tzinfo=None), OLD, settings=settings, url=fresh_db.url)
    env = fresh_db.env(TRADEDB_ARCHIVE_URL=str(tmp_path))
    for args, code, needle in (
        (("archive", "--after", "fills=3d"), 8, "'fills' cannot be archived"),
        (("archive", "--location", "s3://b/p?secret_key=hunter2", "--after", "quotes=3d"), 2, "AWS_SECRET"),
        (("archive", "restore", "--table", "quotes", "--start", "2019-01-02", "--end", "2019-01-03"), 8, "zone"),
        (("archive", "list", "--table", "orders"), 8, "cannot be archived"),
    ):
        result = run_cli(*args, env=env)
        assert result.returncode == code, (args, result.stdout, result.stderr)
        assert needle in result.stderr and "Traceback" not in result.stderr and "hunter2" not in result.stderr


def test_cli_archives_lists_and_restores(fresh_db: TestDatabase, conn: tradedb.Database, tmp_path: Path) -> None:
    env = fresh_db.env(TRADEDB_ARCHIVE_URL=str(tmp_path), TRADEDB_ARCHIVE_AFTER="quotes=30d")
    dry = run_cli("archive", "--dry-run", env=env)
    assert dry.returncode == 0 and "would archive 3 partition(s)" in dry.stdout, dry.stderr
    done = run_cli("archive", env=env)
    assert done.returncode == 0 and "3 partition(s) archived" in done.stdout, done.stderr
    assert "archived quotes_p20190102_1400: 41 rows in 1 file(s)" in done.stdout
    listed = run_cli("archive", "list", "--json", env=env)
    assert listed.returncode == 0 and listed.stdout.count('"partition": "quotes_p2019') == 3
    assert run_cli("archive", "verify", env=env).stdout.strip() == "3 archived file(s) verified"
    back = run_cli(
        "archive", "restore", "--table", "quotes", "--start", "2019-01-01T00:00Z", "--end", "2019-01-03T00:00Z", env=env
    )
    assert back.returncode == 0 and "3 partition(s), 121 rows restored" in back.stdout, back.stderr
    assert catalog_rows(conn) == []
    # `tradedb maintain` archives first when both settings are there (before any retention could drop them).
    maintained = run_cli("maintain", "--json", env={**env, "TRADEDB_RETENTION": "quotes=60d"})
    assert maintained.returncode == 0, maintained.stderr
    report = json.loads(maintained.stdout)
    assert len(report["archived"]) == 3 and report["dropped"] == []
    assert len(catalog_rows(conn)) == 3


@pytest.fixture
def s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An S3-compatible server (moto's) on a free port, with a bucket; the archive URL for it."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "tradedb"),
        ("AWS_SECRET_ACCESS_KEY", "tradedb-secret"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        monkeypatch.setenv(name, value)
    url = f"s3://archive/tradedb?endpoint_override=127.0.0.1:{port}&scheme=http&region=us-east-1"
    admin = S3FileSystem(
        endpoint_override=f"127.0.0.1:{port}", scheme="http", region="us-east-1", allow_bucket_creation=True
    )
    admin.create_dir("archive")
    try:
        yield url
    finally:
        server.stop()


def test_s3_archive_is_read_and_restored(fresh_db: TestDatabase, conn: tradedb.Database, s3: str) -> None:
    before = reads(conn)
    report = run_archive(fresh_db, s3)
    assert len(report.archived) == 9
    rows = catalog_rows(conn)
    assert {r["location"] for r in rows} == {s3} and "secret" not in s3
    assert reads(conn) == before
    assert archive.verify(settings=fresh_db.settings, url=fresh_db.url) == (len(rows), [])
    restored = archive.restore(
        "bars", OLD - timedelta(days=1), OLD + timedelta(days=400), settings=fresh_db.settings, url=fresh_db.url
    )
    assert restored.rows == 2 * 88
    assert reads(conn) == before


@pytest.mark.usefixtures("shared_data")
def test_real_trades_archived_give_the_same_bars_as_pandas(fresh_db: TestDatabase, tmp_path: Path) -> None:
    """LOBSTER's AMZN day (2012): archived, its 1-minute bars computed from the Parquet files equal an independent
    pandas computation over the vendor's file, and every read equals the read before the archive."""
    lobster = SHARED_DATA / "01_lobster_amzn_2012-06-21_L1" / "AMZN_2012-06-21_34200000_57600000_message_1.csv"
    day = ingest_files.read_lobster(lobster)
    start, end = datetime(2012, 6, 21, 13, 30, tzinfo=UTC), datetime(2012, 6, 21, 20, 0, tzinfo=UTC)
    with tradedb.connect(fresh_db.url, settings=fresh_db.settings) as conn:
        md = conn.market_data
        md.write_trades(day.trades, source="lobster", symbol="AMZN", tz="America/New_York", create_securities=True)
        md.write_quotes(day.quotes, source="lobster", symbol="AMZN", tz="America/New_York")
        trades_before = md.trades("AMZN", start, end, as_="arrow")
        quotes_before = md.quotes("AMZN", start, end, as_="arrow")
        report = run_archive(fresh_db, tmp_path)
        heap = sum(a.heap_bytes for a in report.archived if a.table == "quotes")
        parquet = sum(a.file_bytes for a in report.archived if a.table == "quotes")
        assert parquet * 3 < heap, (parquet, heap)
        # The same rows in time order (rows at one instant come in no defined order, from PostgreSQL as from files).
        for after, before in (
            (md.trades("AMZN", start, end, as_="arrow"), trades_before),
            (md.quotes("AMZN", start, end, as_="arrow"), quotes_before),
        ):
            assert after["ts"].equals(before["ts"])
            keys = [(name, "ascending") for name in before.column_names]
            assert after.sort_by(keys).equals(before.sort_by(keys))
        stored = md.aggregate_bars("market_trades", "1m", start, end, symbols=["AMZN"], source="lobster")
        ours = md.bars("AMZN", start, end, timeframe="1m", source="lobster", as_="pandas").set_index("ts")
    expected = lobster_minute_bars(lobster)
    assert stored == len(expected)
    assert_bars_equal(ours, expected)


def test_location_without_scheme_or_with_file_scheme(tmp_path: Path) -> None:
    assert files.check_location(f"{tmp_path}/") == str(tmp_path)
    fs, root = files.filesystem(f"file://{tmp_path}")
    assert root == str(tmp_path) and fs.get_file_info(root).type.name == "Directory"
    with pytest.raises(ConfigError, match="scheme 'ftp'"):
        files.check_location("ftp://host/x")

"""Reference data against a real PostgreSQL: the symbol service, symbology over time, index membership,
fundamentals and the ingest log, with the real listing files of ../shared/data."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

import tradedb
from tests.conftest import TestDatabase, cloned, run_cli
from tests.integration.facade import Api, Feature
from tradedb import (
    AmbiguousSymbol,
    IdentifierConflict,
    NotFoundError,
    UnknownExchange,
    ValidationError,
)
from tradedb.reference import ListingReport, same_company

SNAPSHOT_2009 = date(2009, 1, 2)
SNAPSHOT_2026 = date(2026, 7, 31)
HISTORIC = ("fimport_nyseListing.csv", "fimport_nasdaqListing.csv", "fimport_amexListing.csv")
TODAY = ("nasdaq-listed-symbols.csv", "other-listed.csv")


def csv_rows(master: Path, name: str) -> list[dict[str, str]]:
    with (master / name).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def count(db: TestDatabase, query: str, *params: Any) -> int:
    with db.connect() as conn:
        row = conn.execute(query, params).fetchone()
    assert row is not None
    value = row[0]
    assert isinstance(value, int)
    return value


def rows(db: TestDatabase, query: str) -> list[tuple[Any, ...]]:
    with db.connect() as conn:
        return conn.execute(query).fetchall()


# --- the symbol service, both APIs -------------------------------------------------------------------------


@pytest.fixture(params=["sync", "async"])
def securities(request: pytest.FixtureRequest, db: TestDatabase) -> Iterator[Feature]:
    api = Api(request.param, db.url, db.settings)
    yield api.feature("securities")
    api.close()


def name(securities: Feature, stem: str) -> str:
    """A symbol of the test's own (both APIs share the module's database)."""
    return f"{stem}{'S' if securities.kind == 'sync' else 'A'}"


def test_add_get_update_and_delist_once(securities: Feature, db: TestDatabase) -> None:
    symbol = name(securities, "SVC")
    security_id = securities.add(symbol, exchange="XNYS", name="Service Co", listed_on="2001-05-01", isin=None)
    got = securities.get(symbol)
    assert got["security_id"] == security_id and got["status"] == "active" and got["listed_on"] == date(2001, 5, 1)
    assert securities.update(symbol, sector="Industrials")["sector"] == "Industrials"
    with pytest.raises(ValidationError, match="before its listing date"):
        securities.delist(symbol, on="2000-01-01")
    assert securities.get(symbol)["status"] == "active"  # nothing written
    assert securities.delist(symbol, on="2020-03-02", reason="merger", last_price=12.5) is True
    assert securities.delist(symbol, on="2020-03-02", reason="merger") is False  # idempotent
    gone = [r for r in securities.delisted(since="2020-01-01") if r["symbol"] == symbol]
    assert len(gone) == 1 and gone[0]["reason"] == "merger" and float(gone[0]["last_price"]) == 12.5
    assert securities.lookup(symbol, as_of="2019-12-31")["security_id"] == security_id
    with pytest.raises(NotFoundError, match="on 2020-03-02"):
        securities.lookup(symbol, as_of="2020-03-02")  # its ticker ended on the delisting day


def test_bad_input_is_refused_by_name_and_writes_nothing(securities: Feature, db: TestDatabase) -> None:
    symbol = name(securities, "BAD")
    before = count(db, "SELECT count(*) FROM shared.securities")
    with pytest.raises(UnknownExchange, match="ZZZZ"):
        securities.add(symbol, exchange="ZZZZ")
    with pytest.raises(ValidationError, match="4-character ISO 10383 MIC"):
        securities.add(symbol, exchange="xnys")
    with pytest.raises(ValidationError, match="identifier 1: value"):
        securities.add(
            symbol,
            exchange="XNYS",
            identifiers=[{"scheme": "yahoo", "value": "OK"}, {"scheme": "google", "value": "G" * 65}],
        )
    with pytest.raises(ValidationError, match="check digit"):
        securities.add(symbol, exchange="XNYS", isin="US0378331006")
    with pytest.raises(ValidationError, match="32"):
        securities.add("S" * 33, exchange="XNYS")
    assert count(db, "SELECT count(*) FROM shared.securities") == before


def test_identifiers_hold_for_their_dates_and_never_overlap(securities: Feature, db: TestDatabase) -> None:
    old, new = name(securities, "FB"), name(securities, "META")
    security_id = securities.add(old, exchange="XNAS", listed_on="2012-05-18")
    securities.rename(old, new, on="2022-06-09")
    assert securities.lookup(old, as_of="2021-01-04")["security_id"] == security_id
    assert securities.lookup(new, as_of="2022-06-09")["symbol"] == new
    with pytest.raises(NotFoundError):
        securities.lookup(new, as_of="2021-01-04")
    with pytest.raises(NotFoundError):
        securities.lookup(old)
    other = securities.add(name(securities, "OTH"), exchange="XNAS")
    held = count(db, "SELECT count(*) FROM shared.security_identifiers")
    rows = [
        {"security_id": other, "scheme": "yahoo", "value": f"{new}.X"},
        {"security_id": other, "scheme": "ticker", "value": new, "scope": "XNAS", "valid_from": "2023-01-01"},
    ]
    with pytest.raises(IdentifierConflict, match=f"held by security {security_id}"):
        securities.add_identifiers(rows)
    assert count(db, "SELECT count(*) FROM shared.security_identifiers") == held  # the good row neither
    # Before the rename the ticker was free: a back-dated assignment that ends in time is accepted.
    securities.add_identifiers([{**rows[1], "valid_from": None, "valid_to": "2012-05-18"}])


def test_a_reused_ticker_resolves_by_date(securities: Feature) -> None:
    symbol = name(securities, "REUSE")
    first = securities.add(symbol, exchange="XNYS", listed_on="2000-01-03", name="First Co")
    securities.delist(symbol, on="2010-01-04")
    second = securities.add(symbol, exchange="XNYS", listed_on="2015-06-01", name="Second Co")
    assert securities.lookup(symbol, as_of="2005-01-03")["security_id"] == first
    assert securities.lookup(symbol, as_of="2020-01-02")["security_id"] == second
    assert securities.get(symbol)["security_id"] == second  # the trading listing
    with pytest.raises(NotFoundError):
        securities.lookup(symbol, as_of="2012-01-03")  # nobody held it
    ids = securities.lookup_many([symbol] * 3, as_of=[date(2005, 1, 3), date(2012, 1, 3), date(2020, 1, 2)])
    assert ids == {symbol: second}  # one key per symbol: per-date results come from resolve()
    matches = securities.resolve([symbol] * 3, as_of=[date(2005, 1, 3), date(2012, 1, 3), date(2020, 1, 2)])
    assert [m and m["security_id"] for m in matches] == [first, None, second]


def test_one_symbol_on_two_venues_is_ambiguous(securities: Feature) -> None:
    symbol = name(securities, "DUP")
    nyse = securities.add(symbol, exchange="XNYS")
    securities.add(symbol, exchange="XNAS")
    with pytest.raises(AmbiguousSymbol, match=f"'{symbol}' names securities"):
        securities.lookup(symbol)
    assert securities.lookup(symbol, exchange="XNYS")["security_id"] == nyse


def test_data_status_and_what_needs_data(securities: Feature) -> None:
    done, todo = name(securities, "DONE"), name(securities, "TODO")
    securities.add(done, exchange="XNYS", listed_on="2020-01-02")
    securities.add(todo, exchange="XNYS", listed_on="2020-01-02")
    day = date(2024, 5, 6)
    rows = [
        {"symbol": done, "date": day, "source": "vendor", "status": "failed", "error": "timeout"},
        {"symbol": todo, "date": day, "source": "vendor", "status": "no_data"},
    ]
    securities.record_data_status(rows)
    securities.record_data_status([{**rows[0], "status": "success", "error": None}])
    status = {r["symbol"]: r for r in securities.data_status(date=day, source="vendor")}
    assert status[done]["status"] == "success" and status[done]["attempts"] == 2
    needing = {r["symbol"] for r in securities.needing_data(day, source="vendor", exchange="XNYS")}
    assert todo in needing and done not in needing
    assert done not in {r["symbol"] for r in securities.needing_data("2019-12-31", source="vendor")}  # not listed
    with pytest.raises(ValidationError, match="status 0: status must be one of"):
        securities.record_data_status([{**rows[0], "status": "ok"}])
    stats = {(r["exchange_mic"], r["asset_type"]): r for r in securities.stats()}
    assert stats[("XNYS", "equity")]["active"] >= 2


def test_a_batch_lookup_is_one_round_trip(db: TestDatabase) -> None:
    with tradedb.connect(db.url, settings=db.settings) as handle:
        handle.securities.add("ROUND", exchange="XNYS")
        calls = 0
        lend = handle.connection

        @contextmanager
        def counted(**kwargs: Any) -> Iterator[Any]:
            nonlocal calls
            calls += 1
            with lend(**kwargs) as conn:
                yield conn

        handle.connection = counted  # type: ignore[method-assign]
        symbols = ["ROUND"] + [f"NONE{i}" for i in range(9_999)]
        found = handle.securities.lookup_many(symbols)
    assert found == {"ROUND": found["ROUND"]} and calls == 1


def test_index_members_over_time(securities: Feature) -> None:
    index = f"Test Index {securities.kind}"
    a, b = name(securities, "IXA"), name(securities, "IXB")
    securities.add(a, exchange="XNYS")
    securities.add(b, exchange="XNYS")
    assert securities.set_index_members(index, [{"symbol": a, "member_from": "2001-01-02"}, b], as_of="2010-01-04") == (
        2,
        0,
    )
    assert securities.set_index_members(index, [a], as_of="2015-01-02") == (0, 1)  # b left
    on = {r["symbol"] for r in securities.universe(index, as_of="2012-06-01")}
    assert on == {a, b}
    assert {r["symbol"] for r in securities.universe(index, as_of="2016-01-04")} == {a}
    assert {r["symbol"] for r in securities.universe(index, as_of="2005-01-03")} == {a}
    with pytest.raises(ValidationError, match="after as_of"):
        securities.set_index_members(index, [{"symbol": a, "member_from": "2030-01-01"}], as_of="2020-01-02")


# --- market data resolved by date ----------------------------------------------------------------------------


def test_market_data_resolves_symbols_as_of_each_row(db: TestDatabase) -> None:
    with tradedb.connect(db.url, settings=db.settings) as handle:
        first = handle.securities.add("ROWD", exchange="XNYS", listed_on="2000-01-03")
        handle.securities.delist("ROWD", on="2010-01-04")
        second = handle.securities.add("ROWD", exchange="XNYS", listed_on="2015-06-01")

        def bar(day: date) -> dict[str, Any]:
            ts = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return {"ts": ts, "symbol": "ROWD", "open": 10, "high": 11, "low": 9, "close": 10.5, "volume": 100}

        days = [date(2009, 12, 30), date(2009, 12, 31), date(2015, 6, 1), date(2015, 6, 2)]
        result = handle.market_data.write_bars([bar(d) for d in days], source="asof", as_of="row", timeframe="1d")
        assert result.written == 4
        stored = handle.fetch_all(
            "SELECT security_id, ts::date AS day FROM data_ingestion.bars WHERE source = 'asof' ORDER BY ts"
        )
        assert [r["security_id"] for r in stored] == [first, first, second, second]
        with pytest.raises(ValidationError, match="unknown_security"):
            handle.market_data.write_bars([bar(date(2012, 1, 3))], source="asof", as_of="row", timeframe="1d")
        # Without as_of the trading listing takes the symbol.
        handle.market_data.write_bars([bar(date(2016, 1, 4))], source="asof-now", timeframe="1d")
        assert handle.fetch_value("SELECT security_id FROM data_ingestion.bars WHERE source = 'asof-now'") == second
        with pytest.raises(ValidationError, match="as_of must be"):
            handle.market_data.write_bars([bar(date(2016, 1, 4))], source="asof", as_of="yesterday", timeframe="1d")
        with pytest.raises(ValidationError, match="cannot add securities"):
            handle.market_data.write_bars(
                [bar(date(2016, 1, 4))], source="asof", as_of="row", timeframe="1d", create_securities=True
            )


# --- fundamentals ---------------------------------------------------------------------------------------------


@pytest.fixture(params=["sync", "async"])
def fundamentals(request: pytest.FixtureRequest, db: TestDatabase) -> Iterator[tuple[Feature, Feature]]:
    api = Api(request.param, db.url, db.settings)
    yield api.feature("fundamentals"), api.feature("securities")
    api.close()


def test_fundamentals_keep_history_and_flag_the_latest(fundamentals: tuple[Feature, Feature], db: TestDatabase) -> None:
    funds, securities = fundamentals
    symbol = name(securities, "FUND")
    security_id = securities.add(symbol, exchange="XNYS")
    funds.write_company_info([{"symbol": symbol, "website": "https://x.example", "employees": 10}], source="v")
    funds.write_company_info([{"symbol": symbol, "employees": 12, "country": "US"}], source="v")
    info = funds.company_info(symbol)
    assert info is not None and info["employees"] == 12 and info["website"] == "https://x.example"
    stats = [
        {"symbol": symbol, "as_of": "2024-03-29", "market_cap": 1_000_000, "pe_ratio": 15.5, "roe": 0.2},
        {"symbol": symbol, "as_of": "2024-06-28", "market_cap": 1_200_000, "pe_ratio": 16.0},
    ]
    assert funds.write_key_statistics(stats, source="v") == 2
    assert float(funds.key_statistics(symbol, as_of="2024-05-01")["market_cap"]) == 1_000_000
    assert funds.key_statistics(symbol, as_of="2024-05-01")["data"] == {"roe": 0.2}
    assert float(funds.key_statistics(symbol)["market_cap"]) == 1_200_000
    assert funds.key_statistics(symbol, as_of="2023-01-02") is None
    assert len(funds.key_statistics_history(symbol)) == 2
    q1 = [
        {"symbol": symbol, "holder": "Fund A", "shares": 100, "pct_held": 0.1},
        {"symbol": symbol, "holder": "Fund B", "shares": 50, "pct_held": 0.05},
    ]
    funds.write_institutional_holders(q1, source="v", reported_on="2024-03-31")
    funds.write_institutional_holders([{**q1[0], "shares": 120}], source="v", reported_on="2024-06-30")
    latest = {r["holder"]: r for r in funds.institutional_holders(symbol)}
    assert latest["Fund A"]["shares"] == 120 and latest["Fund B"]["reported_on"] == date(2024, 3, 31)
    assert len(funds.institutional_holders(symbol, latest=False)) == 3  # history kept
    flagged = count(
        db,
        "SELECT count(*) FROM data_ingestion.institutional_holders WHERE security_id = %s AND is_latest",
        security_id,
    )
    assert flagged == 2
    with pytest.raises(ValidationError, match=r"holder 1 \(Fund B\): pct_held"):
        funds.write_institutional_holders([q1[0], {**q1[1], "pct_held": 1.5}], source="v", reported_on="2024-09-30")
    assert len(funds.institutional_holders(symbol, latest=False)) == 3  # nothing written
    with pytest.raises(ValidationError, match="unknown field"):
        funds.write_company_info([{"symbol": symbol, "ceo": "X"}], source="v")
    with pytest.raises(NotFoundError, match="unknown symbol"):
        funds.write_key_statistics([{"symbol": "NOSUCH", "as_of": "2024-01-02"}], source="v")


def test_deleting_a_security_never_cascades_into_its_history(db: TestDatabase) -> None:
    with tradedb.connect(db.url, settings=db.settings) as handle:
        security_id = handle.securities.add("KEEPME", exchange="XNYS")
        handle.fundamentals.write_key_statistics([{"symbol": "KEEPME", "as_of": "2024-01-02", "beta": 1.1}], source="v")
        handle.fundamentals.write_institutional_holders(
            [{"symbol": "KEEPME", "holder": "Fund A", "shares": 1}], source="v", reported_on="2024-01-02"
        )
    with db.connect() as conn, pytest.raises(psycopg.errors.ForeignKeyViolation):
        conn.execute("DELETE FROM shared.securities WHERE security_id = %s", (security_id,))
    assert count(db, "SELECT count(*) FROM data_ingestion.key_statistics WHERE security_id = %s", security_id) == 1


# --- the ingest log ---------------------------------------------------------------------------------------------


def test_loads_record_success_and_failure(db: TestDatabase) -> None:
    with tradedb.connect(db.url, settings=db.settings) as handle:
        with handle.loads.run(source="unit", table="bars", target="x.csv") as run:
            run.rows_loaded = 7
        with pytest.raises(RuntimeError), handle.loads.run(source="unit", table="bars") as run:
            raise RuntimeError("vendor said no to postgresql://u:hunter2@h/db")
        runs = handle.loads.list(source="unit")
    assert [r["status"] for r in runs] == ["failed", "success"]
    assert runs[1]["rows_loaded"] == 7 and runs[1]["duration"] >= timedelta(0)
    assert "RuntimeError" in runs[0]["error"] and "hunter2" not in runs[0]["error"]


def test_cli_ingest_fills_load_runs(db: TestDatabase, tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text(
        "date,symbol,open,high,low,close,volume\n2024-03-01,LRUN,10,11,9,10.5,1000\n"
        "2024-03-04,LRUN,10.5,11,10,10.8,1000\n"
    )
    done = run_cli("ingest", "bars", str(path), "--source", "lrun", "--create-securities", env=db.env())
    assert done.returncode == 0, done.stderr
    listed = run_cli("loads", "--source", "lrun", "--json", env=db.env())
    assert listed.returncode == 0, listed.stderr
    (run,) = json.loads(listed.stdout)
    assert run["table_name"] == "bars" and run["rows_loaded"] == 2 and run["status"] == "success"
    assert run["target"] == str(path) and run["range_start"].startswith("2024-03-01")


# --- the real listing files ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_db(server_url: str, template_db: str) -> Iterator[TestDatabase]:
    """A database of its own: a complete snapshot delists every listing of its venues it does not name."""
    yield from cloned(server_url, template_db)


@pytest.fixture(scope="module")
def loaded(real_db: TestDatabase, shared_data: Path) -> dict[str, ListingReport]:
    """The module's database with the late-2000s listings, today's, the S&P 500 and the index listings."""
    master = shared_data / "04_symbol_master"
    with tradedb.connect(real_db.url, settings=real_db.settings) as handle:
        handle.securities.load_exchanges(master / "iso10383_mic_2026-01-12.csv")
        return {
            "historic": handle.securities.load_listings(
                [master / f for f in HISTORIC], as_of=SNAPSHOT_2009, source="historic", complete=True
            ),
            "today": handle.securities.load_listings(
                [master / f for f in TODAY], as_of=SNAPSHOT_2026, source="nasdaqtrader", complete=True
            ),
            "sp500": handle.securities.load_listings(
                master / "sp500-constituents.csv", as_of="2026-08-31", source="wikipedia"
            ),
            "indices": handle.securities.load_listings(
                master / "pytickersymbols_1.17.10_index_listings.csv", as_of="2026-09-01", source="pytickersymbols"
            ),
        }


def test_real_listings_load_without_duplicates(
    loaded: dict[str, ListingReport], real_db: TestDatabase, shared_data: Path
) -> None:
    master = shared_data / "04_symbol_master"
    historic = {r["Symbol"]: r.get("Name") or r.get("Description") for f in HISTORIC for r in csv_rows(master, f)}
    other = csv_rows(master, "other-listed.csv")
    nasdaq = [
        r
        for r in csv_rows(master, "nasdaq-listed-symbols.csv")
        if r["Symbol"] and not r["Symbol"].startswith("File") and r["Test Issue"] == "N"
    ]
    today = {r["NASDAQ Symbol"] for r in other} | {r["Symbol"] for r in nasdaq}
    assert len(today) == len(other) + len(nasdaq)  # one national symbol per listing
    assert loaded["historic"].added == len(historic) == 8146
    report = loaded["today"]
    assert report.listings == len(today)
    assert report.delisted == len(set(historic) - today)  # listed then, gone now
    assert report.reused + (report.updated) == len(set(historic) & today)
    assert report.added == len(today) - report.updated
    us = ("XNYS", "XNAS", "ARCX", "BATS", "XASE")
    listed = """
        SELECT count(*) FROM shared.securities s WHERE status = 'active' AND exchange_mic = ANY(%s) AND EXISTS (
            SELECT 1 FROM shared.security_identifiers i
            WHERE i.security_id = s.security_id AND i.source IN ('historic', 'nasdaqtrader'))
    """
    assert count(real_db, listed, list(us)) == len(today)  # the index files, loaded after, add their own
    with tradedb.connect(real_db.url, settings=real_db.settings) as handle:
        ids = handle.securities.lookup_many(sorted(today), as_of=SNAPSHOT_2026, scheme="nasdaq")
        assert len(ids) == len(today) and len(set(ids.values())) == len(today)
        # American Airlines (NASDAQ) and Anglo American (London) are both AAL: a bare lookup cannot choose.
        with pytest.raises(AmbiguousSymbol, match=r"AAL on XNAS.*AAL on XLON"):
            handle.securities.lookup("AAL")
        assert handle.securities.lookup("AAL", exchange="XLON")["currency"] == "GBP"
        assert handle.securities.lookup("AAL", scheme=("nasdaq", "cqs", "act"))["exchange_mic"] == "XNAS"
        # The three conventions of one listing name one security.
        differ = [r for r in other if len({r["ACT Symbol"], r["CQS Symbol"], r["NASDAQ Symbol"]}) > 1]
        for scheme, column in (("cqs", "CQS Symbol"), ("act", "ACT Symbol")):
            found = handle.securities.lookup_many([r[column] for r in differ], scheme=scheme, as_of=SNAPSHOT_2026)
            assert [found[r[column]] for r in differ] == [ids[r["NASDAQ Symbol"]] for r in differ]
        abr = {handle.securities.lookup(s, as_of=SNAPSHOT_2026)["security_id"] for s in ("ABR-D", "ABRpD", "ABR$D")}
        assert len(abr) == 1


def test_listed_then_gone_is_delisted_and_a_reused_ticker_resolves_by_date(
    loaded: dict[str, ListingReport], real_db: TestDatabase
) -> None:
    assert same_company("Medarex, Inc.", "Horizon Kinetics Medical ETF") is False
    with tradedb.connect(real_db.url, settings=real_db.settings) as handle:
        then = handle.securities.lookup("MEDX", as_of="2009-06-01")
        now = handle.securities.lookup("MEDX", as_of=SNAPSHOT_2026)
        assert then["name"] == "Medarex, Inc." and then["status"] == "delisted"
        assert then["delisted_on"] == SNAPSHOT_2026 and now["security_id"] != then["security_id"]
        assert "Horizon Kinetics" in now["name"]
        agilent = {handle.securities.lookup("A", as_of=d)["security_id"] for d in (SNAPSHOT_2009, SNAPSHOT_2026)}
        assert len(agilent) == 1  # the same company: one security across both snapshots
        assert handle.securities.lookup("AACC", as_of="2010-01-04")["name"] == "Asset Acceptance Capital Corp."
        with pytest.raises(NotFoundError):
            handle.securities.lookup("AACC", as_of=SNAPSHOT_2026)
        gone = {r["symbol"]: r for r in handle.securities.delisted(since=SNAPSHOT_2026)}
        assert gone["AACC"]["delisted_on"] == SNAPSHOT_2026 and "absent from" in gone["AACC"]["reason"]
        assert "reused" in gone["MEDX"]["reason"]
        stats = handle.fundamentals.key_statistics("A", as_of=SNAPSHOT_2009)
        assert stats is not None and float(stats["market_cap"]) == 12_852_300_000


def test_index_universes_from_the_real_files(
    loaded: dict[str, ListingReport], real_db: TestDatabase, shared_data: Path
) -> None:
    master = shared_data / "04_symbol_master"
    sp500 = csv_rows(master, "sp500-constituents.csv")
    indices = csv_rows(master, "pytickersymbols_1.17.10_index_listings.csv")
    with tradedb.connect(real_db.url, settings=real_db.settings) as handle:
        on = handle.securities.universe("S&P 500", as_of="2026-08-31")
        assert len(on) == len(sp500) == 503
        early = handle.securities.universe("S&P 500", as_of="2000-01-01")
        assert len(early) == sum(r["Date added"] <= "2000-01-01" for r in sp500)
        for index in ("DAX", "FTSE 100", "NIKKEI 225"):
            members = handle.securities.universe(index)
            assert len(members) == len(
                {r["symbol"] or r["yahoo"] for r in indices if r["index"] == index and (r["symbol"] or r["yahoo"])}
            )
        sap = handle.securities.lookup("DE0007164600", scheme="isin")
        assert sap["exchange_mic"] == "XETR" and sap["symbol"] == "SAP"
        assert handle.securities.lookup("SAP.DE", scheme="yahoo")["security_id"] == sap["security_id"]
        runs = handle.loads.list(table="securities")
        assert [r["source"] for r in runs][:4] == ["pytickersymbols", "wikipedia", "nasdaqtrader", "historic"]
        assert all(r["status"] == "success" for r in runs[:4])
    assert loaded["indices"].findings and "CH1012549785" in loaded["indices"].findings[0]


def test_a_snapshot_dated_before_its_members_joined_is_refused(
    loaded: dict[str, ListingReport], real_db: TestDatabase, shared_data: Path
) -> None:
    with (
        tradedb.connect(real_db.url, settings=real_db.settings) as handle,
        pytest.raises(ValidationError, match=r"line \d+: .* joined S&P 500 on 2026-08-05"),
    ):
        handle.securities.load_listings(shared_data / "04_symbol_master" / "sp500-constituents.csv", as_of="2026-08-01")


def test_renaming_a_listed_security_moves_its_national_symbol(
    loaded: dict[str, ListingReport], real_db: TestDatabase
) -> None:
    with tradedb.connect(real_db.url, settings=real_db.settings) as handle:
        before = handle.securities.lookup("ZYME", scheme="nasdaq")
        handle.securities.rename("ZYME", "ZYMX", on="2026-10-01")
        assert handle.securities.lookup("ZYMX", scheme="nasdaq")["security_id"] == before["security_id"]
        assert handle.securities.lookup("ZYME", as_of="2026-09-30")["security_id"] == before["security_id"]
        with pytest.raises(NotFoundError):
            handle.securities.lookup("ZYME", as_of="2026-10-01")
        assert handle.securities.get("ZYMX")["symbol"] == "ZYMX"


def test_cli_securities_commands(loaded: dict[str, ListingReport], real_db: TestDatabase, tmp_path: Path) -> None:
    found = run_cli(
        "securities", "lookup", "ABR-D", "ABRpD", "ABR$D", "--as-of", "2026-07-31", "--json", env=real_db.env()
    )
    assert found.returncode == 0, found.stderr
    assert len({r["security_id"] for r in json.loads(found.stdout)}) == 1
    us = run_cli("securities", "lookup", "AAL", "--scheme", "nasdaq,cqs", "--json", env=real_db.env())
    assert us.returncode == 0 and json.loads(us.stdout)[0]["exchange_mic"] == "XNAS"
    missing = run_cli("securities", "lookup", "NOPE-X", env=real_db.env())
    assert missing.returncode == 1
    bad = run_cli("securities", "add", "CLIX", "--exchange", "QQQQ", env=real_db.env())
    assert bad.returncode == 8 and "unknown exchange" in bad.stderr and "Traceback" not in bad.stderr
    members = run_cli("securities", "universe", "DAX", "--json", env=real_db.env())
    assert members.returncode == 0 and len(json.loads(members.stdout)) == 40
    # A file of bars of a reused ticker, resolved as of each row's date: each year's bars go to that year's holder.
    bars = tmp_path / "medx.csv"
    bars.write_text(
        "date,symbol,open,high,low,close,volume\n2009-03-02,MEDX,5,6,4,5.5,100\n2026-08-03,MEDX,20,21,19,20.5,100\n"
    )
    done = run_cli("ingest", "bars", str(bars), "--source", "medx", "--as-of", "row", env=real_db.env())
    assert done.returncode == 0, done.stderr
    owners = {r[0] for r in rows(real_db, "SELECT security_id FROM data_ingestion.bars WHERE source = 'medx'")}
    assert len(owners) == 2
    shown = run_cli("securities", "show", "ABR-D", "--json", env=real_db.env())
    assert {i["scheme"] for i in json.loads(shown.stdout)["identifiers"]} >= {"nasdaq", "cqs", "act", "ticker"}

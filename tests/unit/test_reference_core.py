"""Reference data without a database: listing files against an independent read of them, symbology's checks."""

from __future__ import annotations

import csv
import string
from datetime import date
from pathlib import Path

import pytest
import stdnum.isin
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import SHARED_DATA
from tradedb import AmbiguousSymbol, IdentifierConflict, ValidationError
from tradedb.reference import listings, read, same_company
from tradedb.reference.symbology import Assignment, check_assignment, check_isin, refuse_overlaps, resolved

MASTER = SHARED_DATA / "04_symbol_master"


def rows(name: str) -> list[dict[str, str]]:
    with (MASTER / name).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.usefixtures("shared_data")
def test_other_listed_gives_every_convention_of_each_listing() -> None:
    parsed = read(MASTER / "other-listed.csv")
    raw = rows("other-listed.csv")
    assert parsed.format == "other-listed" and len(parsed.listings) == len(raw) == 7543
    by_symbol = {x.symbol: x for x in parsed.listings}
    abr = by_symbol["ABR-D"]
    assert abr.exchange_mic == "XNYS"
    assert {("nasdaq", "ABR-D", ""), ("cqs", "ABRpD", ""), ("act", "ABR$D", "")} <= set(abr.identifiers)
    # Rows whose three spellings differ, counted from the file itself.
    differ = [r for r in raw if len({r["ACT Symbol"], r["CQS Symbol"], r["NASDAQ Symbol"]}) > 1]
    spelled = [x for x in parsed.listings if len({v for s, v, _ in x.identifiers if s in ("nasdaq", "cqs", "act")}) > 1]
    assert len(spelled) == len(differ) > 400
    venues = {r["Exchange"] for r in raw}
    assert {x.exchange_mic for x in parsed.listings} == {listings.US_VENUES[v] for v in venues}


@pytest.mark.usefixtures("shared_data")
def test_nasdaq_listed_skips_footer_and_test_issues() -> None:
    parsed = read(MASTER / "nasdaq-listed-symbols.csv")
    raw = rows("nasdaq-listed-symbols.csv")
    real = [r for r in raw if r["Symbol"] and not r["Symbol"].startswith("File") and r["Test Issue"] == "N"]
    assert len(parsed.listings) == len(real)
    assert parsed.skipped == len(raw) - len(real) == 10  # 8 test issues, the footer, the empty row
    assert sum(x.asset_type == "etf" for x in parsed.listings) == sum(r["ETF"] == "Y" for r in real)


@pytest.mark.usefixtures("shared_data")
def test_historic_listings_carry_market_caps_in_dollars() -> None:
    parsed = read(MASTER / "fimport_nyseListing.csv")
    alcoa = next(x for x in parsed.listings if x.symbol == "AA")
    assert alcoa.market_cap is not None and int(alcoa.market_cap) == 28_234_500_000
    assert alcoa.exchange_mic == "XNYS"
    assert any(x.market_cap is None for x in parsed.listings)  # "NA" in the file


@pytest.mark.usefixtures("shared_data")
def test_index_listings_name_one_member_per_company_and_index() -> None:
    parsed = read(MASTER / "pytickersymbols_1.17.10_index_listings.csv")
    raw = rows("pytickersymbols_1.17.10_index_listings.csv")
    companies = {(r["index"].replace("_", " "), r["symbol"] or r["yahoo"]) for r in raw if r["symbol"] or r["yahoo"]}
    assert len(parsed.memberships) == len(companies)
    dax = [m for m in parsed.memberships if m.index_name == "DAX"]
    assert len(dax) == len({r["symbol"] for r in raw if r["index"] == "DAX"}) == 40
    # Sonova's second ISIN has a wrong check digit: the row stands, that identifier is left out and named.
    assert any("CH1012549785" in f for f in parsed.findings)
    sap = next(x for x in parsed.listings if ("yahoo", "SAP.DE", "") in x.identifiers)
    assert sap.exchange_mic == "XETR" and sap.isin == "DE0007164600"


@pytest.mark.usefixtures("shared_data")
def test_sp500_members_have_their_date_added() -> None:
    parsed = read(MASTER / "sp500-constituents.csv")
    raw = rows("sp500-constituents.csv")
    assert len(parsed.memberships) == len(raw) == 503
    mmm = next(m for m in parsed.memberships if parsed.listings[m.listing].symbol == "MMM")
    assert mmm.member_from == date(1957, 3, 4)


def test_unknown_file_and_bad_rows_name_the_line(tmp_path: Path) -> None:
    odd = tmp_path / "odd.csv"
    odd.write_text("a,b\n1,2\n")
    with pytest.raises(ValidationError, match="unknown listing file"):
        read(odd)
    bad = tmp_path / "bad.csv"
    bad.write_text('"Symbol","Name","MarketCap","Exchange"\n"AA","Alcoa","$1.0","NYSE"\n"BB","B","$x","NYSE"\n')
    with pytest.raises(ValidationError, match="line 3: invalid MarketCap"):
        read(bad)
    long = tmp_path / "long.csv"
    long.write_text('"Symbol","Name","MarketCap","Exchange"\n"' + "X" * 33 + '","L","$1","NYSE"\n')
    with pytest.raises(ValidationError, match="line 2: invalid symbol"):
        read(long)


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("Pulte Homes, Inc.", "PulteGroup, Inc. Common Stock", True),
        ("Agilent Technologies, Inc.", "Agilent Technologies, Inc. Common Stock", True),
        ("Medarex, Inc.", "Horizon Kinetics Medical ETF", False),
        ("City National Corporation", "Cyngn Inc.", False),
        (None, "Anything", True),
    ],
)
def test_same_company_judges_names(a: str | None, b: str, same: bool) -> None:
    assert same_company(a, b) is same


ALNUM = string.ascii_uppercase + string.digits


@given(
    st.text(string.ascii_uppercase, min_size=2, max_size=2),
    st.text(ALNUM, min_size=9, max_size=9),
    st.sampled_from(string.digits),
)
def test_isin_check_digit_agrees_with_stdnum(country: str, body: str, digit: str) -> None:
    candidate = country + body + digit
    try:
        ours = check_isin(candidate) == candidate
    except ValidationError:
        ours = False
    # stdnum's check digit is the reference (its is_valid also refuses country codes it does not know).
    assert ours == (stdnum.isin.calc_check_digit(candidate[:-1]) == digit)


@given(st.text(ALNUM, min_size=9, max_size=9), st.sampled_from(["US", "DE", "GB", "NL", "CH", "JP"]))
def test_isins_with_stdnum_check_digits_pass(body: str, country: str) -> None:
    stem = country + body
    isin = stem + stdnum.isin.calc_check_digit(stem)
    assert check_isin(isin) == isin


def test_overlapping_assignments_are_refused() -> None:
    a = Assignment(1, "ticker", "FB", "XNAS", None, date(2022, 6, 9))
    b = Assignment(2, "ticker", "FB", "XNAS", date(2022, 6, 9), None)
    refuse_overlaps([a, b])  # back to back: fine
    c = Assignment(2, "ticker", "FB", "XNAS", date(2022, 6, 8), None)
    with pytest.raises(IdentifierConflict, match="held by security 1"):
        refuse_overlaps([c], [a])
    with pytest.raises(IdentifierConflict, match="its own assignment"):
        refuse_overlaps([Assignment(1, "ticker", "FB", "XNAS", date(2020, 1, 1), None)], [a])
    refuse_overlaps([Assignment(2, "isin", "US0378331005")], [Assignment(1, "isin", "US0378331005")])  # shared
    refuse_overlaps([Assignment(2, "ticker", "FB", "XNYS")], [a])  # another venue


def test_assignment_checks_name_the_row() -> None:
    with pytest.raises(ValidationError, match="identifier 0: value"):
        check_assignment({"scheme": "ticker", "value": "X" * 65}, 0)
    with pytest.raises(ValidationError, match="unknown identifier scheme"):
        check_assignment({"scheme": "reuters", "value": "X"}, 0)
    with pytest.raises(ValidationError, match=r"identifier 3 .*not before"):
        check_assignment({"scheme": "ticker", "value": "X", "valid_from": "2020-01-02", "valid_to": "2020-01-01"}, 3)


def test_two_securities_for_one_symbol_and_day_are_ambiguous() -> None:
    hit = {"n": 1, "value": "X", "day": date(2020, 1, 1), "symbol": "X"}
    one = [{**hit, "security_id": 1, "exchange_mic": "XNYS"}, {**hit, "security_id": 1, "exchange_mic": "XNYS"}]
    assert resolved(one, 2, ["a", "b"])[0] is not None
    two = [{**hit, "security_id": 1, "exchange_mic": "XNYS"}, {**hit, "security_id": 2, "exchange_mic": "XNAS"}]
    with pytest.raises(AmbiguousSymbol, match="row 7: 'X' names securities 1"):
        resolved(two, 1, ["row 7"])


@pytest.mark.usefixtures("shared_data")
def test_every_venue_the_parsers_name_is_an_iso_mic() -> None:
    iso = {v["mic"] for v in read(MASTER / "iso10383_mic_2026-01-12.csv").venues}
    named = {*listings.US_VENUE_NAMES, *listings.GOOGLE_VENUES.values(), *listings.YAHOO_VENUES.values()}
    assert named <= iso and len(iso) > 2800

"""Listing and index files without I/O on the database: parse them into listings and memberships.

Known formats, told apart by their header: NASDAQ Trader's ``nasdaqlisted`` and ``otherlisted`` files, the
late-2000s NYSE/NASDAQ/AMEX listings (``Symbol, Name|Description, MarketCap, Exchange``), the S&P 500
constituents file (``Symbol, Security, GICS Sector, ..., Date added, CIK``), pytickersymbols' index listings
(``index, name, symbol, country, isins, yahoo, google, ...``) and the ISO 10383 MIC list.

US listings are named by their NASDAQ-convention symbol (``ABR-D``, ``BRK.B``): the one spelling every US file
here carries, so a listing keeps its ``symbol`` from one file family to the next. The CQS and ACT spellings
become identifiers of the same security.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Literal

from tradedb.errors import ValidationError
from tradedb.reference.symbology import MAX_IDENTIFIER, check_isin, check_mic, check_symbol

Format = Literal["nasdaq-listed", "other-listed", "historic", "sp500", "index-listings", "mic"]

#: NASDAQ Trader's exchange codes (otherlisted.txt) and the late-2000s files' exchange names, as MICs.
US_VENUES = {
    "N": "XNYS",
    "P": "ARCX",
    "Z": "BATS",
    "A": "XASE",
    "V": "IEXG",
    "NYSE": "XNYS",
    "NASDAQ": "XNAS",
    "AMEX": "XASE",
}
#: The venues above with their names, for databases that have not loaded the ISO list.
US_VENUE_NAMES = {
    "XNYS": "NEW YORK STOCK EXCHANGE, INC.",
    "XNAS": "NASDAQ - ALL MARKETS",
    "ARCX": "NYSE ARCA",
    "BATS": "CBOE BZX U.S. EQUITIES EXCHANGE",
    "XASE": "NYSE AMERICAN, LLC",
    "IEXG": "INVESTORS EXCHANGE",
}
#: Google Finance exchange prefixes (``AMS:ADYEN``) as MICs.
GOOGLE_VENUES = {
    "NYSE": "XNYS",
    "NASDAQ": "XNAS",
    "FRA": "XFRA",
    "ETR": "XETR",
    "LON": "XLON",
    "TYO": "XTKS",
    "AMS": "XAMS",
    "BME": "XMAD",
    "STO": "XSTO",
    "EBR": "XBRU",
    "HEL": "XHEL",
    "EPA": "XPAR",
    "SWX": "XSWX",
    "MCX": "MISX",
    "OTCMKTS": "OTCM",
}
#: Yahoo Finance symbol suffixes (``ASRNL.AS``) as MICs, for rows without a Google symbol.
YAHOO_VENUES = {
    "AS": "XAMS",
    "BR": "XBRU",
    "DE": "XETR",
    "F": "XFRA",
    "L": "XLON",
    "T": "XTKS",
    "PA": "XPAR",
    "MC": "XMAD",
    "ST": "XSTO",
    "HE": "XHEL",
    "SW": "XSWX",
    "MI": "XMIL",
}
US_MICS = frozenset(US_VENUE_NAMES) | {"OTCM"}
#: Trading currency of a home listing the file names without a row of its own.
VENUE_CURRENCIES = {
    **dict.fromkeys(("XAMS", "XBRU", "XETR", "XFRA", "XPAR", "XMAD", "XHEL", "XMIL"), "EUR"),
    "XLON": "GBP",
    "XTKS": "JPY",
    "XSTO": "SEK",
    "XSWX": "CHF",
    "MISX": "RUB",
}


@dataclass
class Listing:
    """One listing as a file gives it; ``identifiers`` are (scheme, value, scope)."""

    symbol: str
    exchange_mic: str | None
    name: str | None
    line: int
    asset_type: str = "equity"
    currency: str = "USD"
    identifiers: list[tuple[str, str, str]] = field(default_factory=list)
    isin: str | None = None
    market_cap: Decimal | None = None
    sector: str | None = None
    industry: str | None = None
    cik: str | None = None

    @property
    def national(self) -> bool:
        """A US listing: its NASDAQ-convention symbol is unique across US venues."""
        return self.exchange_mic is None or self.exchange_mic in US_MICS

    @property
    def key(self) -> tuple[str, str, str]:
        """How the listing is found in the database: a US one by its national symbol (kept across venues),
        others by their venue ticker. Every parser gives a listing the identifier its key needs."""
        scheme = "nasdaq" if self.national else "ticker"
        return next(i for i in self.identifiers if i[0] == scheme)


@dataclass(frozen=True)
class Membership:
    """A listing's membership of an index, from ``member_from`` (None: unknown) on."""

    index_name: str
    listing: int
    member_from: date | None


@dataclass
class ListingReport:
    """What a load of listing files did."""

    files: list[str] = field(default_factory=list)
    rows: int = 0
    skipped: int = 0
    listings: int = 0
    added: int = 0
    updated: int = 0
    moved: int = 0
    reused: int = 0
    delisted: int = 0
    identifiers: int = 0
    members_added: int = 0
    members_ended: int = 0
    findings: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class ListingFile:
    """What a file holds: listings, index memberships (by position in ``listings``) or venues."""

    format: Format
    listings: list[Listing] = field(default_factory=list)
    memberships: list[Membership] = field(default_factory=list)
    venues: list[dict[str, str | None]] = field(default_factory=list)
    skipped: int = 0
    #: What was left out of otherwise good rows (a bad check digit), by line.
    findings: list[str] = field(default_factory=list)
    #: (index, company symbol) -> its membership's position, while an index-listings file is read.
    companies: dict[tuple[str, str], int] = field(default_factory=dict, repr=False)

    @property
    def lists_venues(self) -> bool:
        """A venue's own listing file (authoritative for its listings), not an index file that names them."""
        return self.format in ("nasdaq-listed", "other-listed", "historic")


HEADERS: dict[str, Format] = {
    "symbol,company name,security name": "nasdaq-listed",
    "act symbol,company name,security name": "other-listed",
    "symbol,name,marketcap,exchange": "historic",
    "symbol,description,marketcap,exchange": "historic",
    "symbol,security,gics sector": "sp500",
    "index,name,symbol,country,isins": "index-listings",
    "mic,operating mic,oprt/sgmt": "mic",
}


def detect(header: list[str]) -> Format:
    text = ",".join(h.strip().lower() for h in header)
    for prefix, kind in HEADERS.items():
        if text.startswith(prefix):
            return kind
    raise ValidationError(f"unknown listing file: header {','.join(header[:5])!r} is none of {', '.join(HEADERS)}")


def read(path: str | Path) -> ListingFile:
    """Parse a listing, index or MIC file (UTF-8 CSV); a bad row raises ValidationError naming its line."""
    file = Path(path)
    if not file.is_file():
        raise ValidationError(f"no such file: {file}")
    with file.open(newline="", encoding="utf-8-sig") as handle:
        rows = csv.reader(handle)
        header = next(rows, None)
        if header is None:
            raise ValidationError(f"{file}: empty file")
        kind = detect(header)
        out = ListingFile(kind)
        names = [h.strip() for h in header]
        parse = _PARSERS[kind]
        for line, values in enumerate(rows, start=2):
            record = dict(zip(names, (v.strip() for v in values), strict=False))
            try:
                parse(out, record, line)
            except ValidationError as exc:
                raise ValidationError(f"{file.name} line {line}: {exc.message}") from None
    return out


def _nasdaq_listed(out: ListingFile, r: dict[str, str], line: int) -> None:
    symbol = r.get("Symbol", "")
    if not symbol or symbol.startswith("File Creation Time") or r.get("Test Issue") == "Y":
        out.skipped += 1  # the footer, the empty last row, and test issues
        return
    check_symbol(symbol)
    out.listings.append(
        Listing(
            symbol,
            "XNAS",
            r.get("Company Name") or r.get("Security Name") or None,
            line,
            asset_type="etf" if r.get("ETF") == "Y" else "equity",
            identifiers=[("nasdaq", symbol, ""), ("ticker", symbol, "XNAS")],
        )
    )


def _other_listed(out: ListingFile, r: dict[str, str], line: int) -> None:
    if not r.get("ACT Symbol") or r.get("Test Issue") == "Y":
        out.skipped += 1
        return
    nasdaq = check_symbol(r.get("NASDAQ Symbol"), "NASDAQ symbol")
    code = r.get("Exchange", "")
    mic = US_VENUES.get(code)
    if mic is None:
        raise ValidationError(f"unknown exchange code {code!r} (N, P, Z, A or V)")
    identifiers = [("nasdaq", nasdaq, ""), ("ticker", nasdaq, mic)]
    identifiers += [("cqs", check_symbol(r.get("CQS Symbol"), "CQS symbol"), "")]
    identifiers += [("act", check_symbol(r.get("ACT Symbol"), "ACT symbol"), "")]
    out.listings.append(
        Listing(
            nasdaq,
            mic,
            r.get("Company Name") or r.get("Security Name") or None,
            line,
            asset_type="etf" if r.get("ETF") == "Y" else "equity",
            identifiers=identifiers,
        )
    )


_MONEY = re.compile(r"[$,\s]")


def _historic(out: ListingFile, r: dict[str, str], line: int) -> None:
    symbol = check_symbol(r.get("Symbol"))
    mic = US_VENUES.get(r.get("Exchange", ""))
    if mic is None:
        raise ValidationError(f"unknown exchange {r.get('Exchange')!r} (NYSE, NASDAQ or AMEX)")
    cap = _MONEY.sub("", r.get("MarketCap", ""))
    try:
        # USD millions in the file.
        market_cap = Decimal(cap) * 1_000_000 if cap and cap.upper() not in ("NA", "N/A") else None
    except InvalidOperation:
        raise ValidationError(f"invalid MarketCap {r.get('MarketCap')!r}") from None
    out.listings.append(
        Listing(
            symbol,
            mic,
            r.get("Name") or r.get("Description") or None,
            line,
            identifiers=[("nasdaq", symbol, ""), ("ticker", symbol, mic)],
            market_cap=market_cap,
        )
    )


def _sp500(out: ListingFile, r: dict[str, str], line: int) -> None:
    symbol = check_symbol(r.get("Symbol"))
    added = r.get("Date added") or None
    try:
        member_from = date.fromisoformat(added) if added else None
    except ValueError:
        raise ValidationError(f"invalid Date added {added!r}") from None
    cik = (r.get("CIK") or "").lstrip("0") or None
    if cik is not None and (not cik.isdigit() or len(cik) > 10):
        raise ValidationError(f"invalid CIK {r.get('CIK')!r}")
    out.listings.append(
        Listing(
            symbol,
            None,
            r.get("Security") or None,
            line,
            identifiers=[("nasdaq", symbol, "")],
            sector=r.get("GICS Sector") or None,
            industry=r.get("GICS Sub-Industry") or None,
            cik=cik,
        )
    )
    out.memberships.append(Membership("S&P 500", len(out.listings) - 1, member_from))


def _index_listings(out: ListingFile, r: dict[str, str], line: int) -> None:
    """One row per (index, listing of a company). The index holds the company's home listing, its ``symbol``
    (a Yahoo symbol: ``SAP.DE`` is SAP on Xetra), which a row may or may not describe: it is added either way,
    with the company's ISINs, and the row's own listing beside it."""
    if not r.get("symbol") and not r.get("yahoo"):
        out.skipped += 1  # a company named only by its ISIN: no listing to find or add
        return
    index = (r.get("index") or "").replace("_", " ")
    if not index or len(index) > 64:
        raise ValidationError(f"invalid index name {r.get('index')!r}: 1-64 characters")
    home = check_symbol(r.get("symbol") or r.get("yahoo"))
    yahoo = check_symbol(r.get("yahoo") or home, "yahoo symbol")
    google = r.get("google") or ""
    if yahoo != home:
        venue, _, ticker = google.rpartition(":")
        mic = GOOGLE_VENUES.get(venue) if venue else None
        if venue and mic is None:
            raise ValidationError(f"unknown exchange prefix {venue!r} in {google!r}")
        if not google:
            ticker, mic = _yahoo_venue(yahoo)
        own = [("yahoo", yahoo, "")] + ([("google", google, "")] if google else [])
        out.listings.append(_listing(ticker or yahoo, mic, r, line, own, currency=r.get("currency") or None))
    ticker, mic = _yahoo_venue(home)
    identifiers = [("yahoo", home, "")]
    if yahoo == home and google:
        identifiers.append(("google", google, ""))
    isins = []
    for value in (v for v in (r.get("isins") or "").split(";") if v):
        try:
            isins.append(check_isin(value))
        except ValidationError as exc:
            # A vendor's typo in one of several ISINs: the row stands, the identifier is left out and named.
            out.findings.append(f"line {line}: {exc.message}; left out")
    identifiers += [("isin", value, "") for value in isins]
    currency = r.get("currency") if yahoo == home else None
    listing = _listing(ticker, mic, r, line, identifiers, currency=currency)
    listing.isin = isins[0] if isins else None
    out.listings.append(listing)
    if (index, home) not in out.companies:
        out.companies[(index, home)] = len(out.memberships)
        out.memberships.append(Membership(index, len(out.listings) - 1, None))


def _yahoo_venue(yahoo: str) -> tuple[str, str | None]:
    """A Yahoo symbol's ticker and venue: ``SAP.DE`` is SAP on XETR; no known suffix is a US symbol (BRK-B)."""
    ticker, _, suffix = yahoo.rpartition(".")
    mic = YAHOO_VENUES.get(suffix) if ticker else None
    return (ticker, mic) if mic is not None else (yahoo, None)


def _listing(
    ticker: str,
    mic: str | None,
    r: dict[str, str],
    line: int,
    identifiers: list[tuple[str, str, str]],
    *,
    currency: str | None,
) -> Listing:
    ticker = check_symbol(ticker)
    if mic is not None:
        identifiers = [*identifiers, ("ticker", ticker, mic)]
    if mic is None or mic in US_MICS:
        identifiers = [*identifiers, ("nasdaq", ticker, "")]
    for _, value, _ in identifiers:
        if len(value) > MAX_IDENTIFIER:
            raise ValidationError(f"identifier {value[:20]!r}... is longer than {MAX_IDENTIFIER} characters")
    currency = currency or VENUE_CURRENCIES.get(mic or "", "USD")
    return Listing(ticker, mic, r.get("name") or None, line, currency=currency, identifiers=identifiers)


def _mic(out: ListingFile, r: dict[str, str], line: int) -> None:
    mic = check_mic(r.get("MIC", ""))
    status = (r.get("STATUS") or "ACTIVE").lower()
    out.venues.append(
        {
            "mic": mic,
            "operating_mic": r.get("OPERATING MIC") or mic,
            "name": r.get("MARKET NAME-INSTITUTION DESCRIPTION") or mic,
            "acronym": r.get("ACRONYM") or None,
            "country": r.get("ISO COUNTRY CODE (ISO 3166)") or None,
            "city": r.get("CITY") or None,
            "status": status if status in ("active", "expired", "updated") else "active",
        }
    )


_PARSERS = {
    "nasdaq-listed": _nasdaq_listed,
    "other-listed": _other_listed,
    "historic": _historic,
    "sp500": _sp500,
    "index-listings": _index_listings,
    "mic": _mic,
}

#: Words of company names that say nothing about which company it is.
_NOISE = frozenset(
    (
        "inc",
        "incorporated",
        "corp",
        "corporation",
        "co",
        "company",
        "ltd",
        "limited",
        "plc",
        "holdings",
        "holding",
        "group",
        "the",
        "common",
        "stock",
        "shares",
        "share",
        "class",
        "ordinary",
        "sa",
        "nv",
        "ag",
        "se",
        "lp",
        "llc",
        "trust",
        "de",
        "of",
        "and",
        "adr",
        "ads",
        "depositary",
        "american",
        "each",
        "representing",
        "new",
        "units",
        "unit",
        "warrants",
        "warrant",
        "rights",
        "right",
        "preferred",
        "series",
    )
)


def name_words(name: str | None) -> list[str]:
    """The words of a company name that tell companies apart (legal forms and share classes dropped)."""
    words = re.sub(r"[^a-z0-9 ]", " ", (name or "").lower().replace("&", " and ")).split()
    return [w for w in words if w not in _NOISE]


def same_company(a: str | None, b: str | None) -> bool:
    """Judge whether two names of one ticker are one company (the listing files carry no ISIN or CUSIP).

    Unknown names count as the same. Otherwise the first telling words must share their first four letters
    ("Pulte Homes" / "PulteGroup") or the names must share a telling word.
    """
    wa, wb = name_words(a), name_words(b)
    if not wa or not wb:
        return True
    return wa[0][:4] == wb[0][:4] or bool(set(wa) & set(wb))

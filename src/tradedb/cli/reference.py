"""CLI commands for reference data: ``tradedb securities ...`` (the symbol service) and ``tradedb loads``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tradedb.cli._common import _cell, _database, _print_json, app, out

securities_app = typer.Typer(
    help="The security master: listings, symbology over time, index membership, data status.", no_args_is_help=True
)
app.add_typer(securities_app, name="securities")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
ExchangeOpt = Annotated[str | None, typer.Option(help="MIC of the listing venue (e.g. XNYS).")]
AsOfOpt = Annotated[str | None, typer.Option("--as-of", help="The day (YYYY-MM-DD); default today.")]
SymbolArg = Annotated[str, typer.Argument(help="The symbol.")]


def _rows(rows: list[dict[str, Any]], columns: tuple[str, ...], as_json: bool, title: str) -> None:
    if as_json:
        _print_json(rows)
        return
    view = Table(*columns, title=title)
    for row in rows:
        view.add_row(*(_cell(row.get(c)) for c in columns))
    out.print(view)


@securities_app.command("list")
def list_securities(
    exchange: ExchangeOpt = None,
    asset_type: Annotated[str | None, typer.Option(help="equity, etf, index, future, option, fx, ...")] = None,
    as_of: AsOfOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Listings that trade (today, or on --as-of by their listing and delisting dates)."""
    with _database() as db:
        rows = db.securities.active(exchange=exchange, asset_type=asset_type, as_of=as_of)
    columns = ("security_id", "symbol", "exchange_mic", "asset_type", "name")
    _rows(rows, columns, as_json, f"{len(rows):,} listings")


@securities_app.command("show")
def show(symbol: SymbolArg, exchange: ExchangeOpt = None, as_json: JsonOpt = False) -> None:
    """A listing with its identifiers."""
    with _database() as db:
        row = db.securities.get(symbol, exchange=exchange)
        identifiers = db.securities.identifiers(symbol, exchange=exchange)
    if as_json:
        _print_json({**row, "identifiers": identifiers})
        return
    for key, value in row.items():
        out.print(f"{key}: {_cell(value)}", highlight=False)
    _rows(identifiers, ("scheme", "value", "scope", "valid_from", "valid_to", "source"), False, "identifiers")


@securities_app.command("lookup")
def lookup(
    symbols: Annotated[list[str], typer.Argument(help="Symbols in any convention (ABR-D, ABRpD, ABR$D, ISINs...).")],
    as_of: AsOfOpt = None,
    scheme: Annotated[
        str | None, typer.Option(help="Only these schemes, comma-separated (ticker, nasdaq, cqs, act, isin, ...).")
    ] = None,
    exchange: ExchangeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The security each symbol named on a day (exit 1 when one is unknown)."""
    with _database() as db:
        schemes = scheme.split(",") if scheme else None
        matches = db.securities.resolve(symbols, as_of=as_of, scheme=schemes, exchange=exchange)
    rows = [
        {"query": s, **({k: m[k] for k in ("security_id", "symbol", "exchange_mic", "scheme")} if m else {})}
        for s, m in zip(symbols, matches, strict=True)
    ]
    _rows(rows, ("query", "security_id", "symbol", "exchange_mic", "scheme"), as_json, "lookups")
    if any(m is None for m in matches):
        raise typer.Exit(1)


@securities_app.command("add")
def add(
    symbol: SymbolArg,
    exchange: Annotated[str, typer.Option(help="MIC of the listing venue (must be in shared.exchanges).")],
    asset_type: Annotated[str, typer.Option(help="equity, etf, index, future, option, fx, crypto, ...")] = "equity",
    currency: Annotated[str, typer.Option(help="ISO 4217 currency.")] = "USD",
    name: Annotated[str | None, typer.Option(help="Name of the security.")] = None,
    isin: Annotated[str | None, typer.Option(help="ISIN (checked, with its check digit).")] = None,
    listed_on: Annotated[str | None, typer.Option(help="First trading day (YYYY-MM-DD).")] = None,
) -> None:
    """Add a listing; its ticker holds from --listed-on."""
    with _database() as db:
        security_id = db.securities.add(
            symbol,
            exchange=exchange,
            asset_type=asset_type,
            currency=currency,
            name=name,
            isin=isin,
            listed_on=listed_on,
        )
    out.print(f"added {symbol} on {exchange}: security {security_id}", highlight=False)


@securities_app.command("delist")
def delist(
    symbol: SymbolArg,
    on: Annotated[str, typer.Option(help="Delisting date (YYYY-MM-DD): its tickers end that day.")],
    reason: Annotated[str | None, typer.Option(help="Why (merger, bankruptcy, ...).")] = None,
    last_price: Annotated[float | None, typer.Option(help="Last traded price.")] = None,
    exchange: ExchangeOpt = None,
) -> None:
    """Mark a listing delisted (again: nothing changes)."""
    with _database() as db:
        changed = db.securities.delist(symbol, on=on, reason=reason, last_price=last_price, exchange=exchange)
    out.print(f"{symbol} delisted on {on}" if changed else f"{symbol} was delisted already; nothing changed")


@securities_app.command("rename")
def rename(
    symbol: SymbolArg,
    new_symbol: Annotated[str, typer.Argument(help="The new ticker.")],
    on: Annotated[str, typer.Option(help="First day of the new ticker (YYYY-MM-DD).")],
    exchange: ExchangeOpt = None,
) -> None:
    """Change a listing's ticker from a day on (the old one keeps resolving before it)."""
    with _database() as db:
        db.securities.rename(symbol, new_symbol, on=on, exchange=exchange)
    out.print(f"{symbol} is {new_symbol} from {on}", highlight=False)


@securities_app.command("delisted")
def delisted(
    since: Annotated[str | None, typer.Option(help="Only delistings on or after (YYYY-MM-DD).")] = None,
    exchange: ExchangeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delisted listings, newest first."""
    with _database() as db:
        rows = db.securities.delisted(since=since, exchange=exchange)
    columns = ("symbol", "exchange_mic", "name", "delisted_on", "last_price", "reason")
    _rows(rows, columns, as_json, f"{len(rows):,} delisted")


@securities_app.command("stats")
def stats(as_json: JsonOpt = False) -> None:
    """Listings per venue and asset type."""
    with _database() as db:
        rows = db.securities.stats()
    columns = ("exchange_mic", "asset_type", "securities", "active", "delisted", "suspended")
    _rows(rows, columns, as_json, "security master")


@securities_app.command("needing-data")
def needing_data(
    day: Annotated[str, typer.Argument(help="The trading day (YYYY-MM-DD).")],
    source: Annotated[str, typer.Option(help="The data source.")],
    exchange: ExchangeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Listings trading on DAY without a successful load from --source."""
    with _database() as db:
        rows = db.securities.needing_data(day, source=source, exchange=exchange)
    _rows(rows, ("symbol", "exchange_mic", "status", "attempts", "error"), as_json, f"{len(rows):,} need data")


@securities_app.command("load")
def load(
    files: Annotated[list[Path], typer.Argument(help="Listing or index files, one snapshot.")],
    as_of: Annotated[str, typer.Option("--as-of", help="The day the files describe (YYYY-MM-DD).")],
    source: Annotated[str | None, typer.Option(help="Who published them (default: the file format).")] = None,
    complete: Annotated[
        bool,
        typer.Option(help="The files list every listing of their venues (absent ones are delisted that day)."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Load NASDAQ Trader, historic NYSE/NASDAQ/AMEX, S&P 500 or pytickersymbols files as one snapshot."""
    with _database() as db:
        report = db.securities.load_listings(files, as_of=as_of, source=source, complete=complete)
    if as_json:
        _print_json(vars(report))
        return
    out.print(
        f"{report.listings:,} listings ({report.skipped} rows skipped): {report.added:,} added, "
        f"{report.updated:,} updated ({report.moved} moved venue), {report.reused} tickers reused, "
        f"{report.delisted:,} delisted; {report.identifiers:,} identifiers, {report.members_added:,} index "
        f"members added, {report.members_ended:,} ended; {report.seconds:.1f} s",
        highlight=False,
    )
    for finding in report.findings:
        out.print(f"left out: {finding}", highlight=False)


@securities_app.command("load-exchanges")
def load_exchanges(file: Annotated[Path, typer.Argument(help="The ISO 10383 MIC list (CSV).")]) -> None:
    """Load the ISO 10383 MIC list into shared.exchanges."""
    with _database() as db:
        added, updated = db.securities.load_exchanges(file)
    out.print(f"{added:,} venues added, {updated:,} updated")


@securities_app.command("universe")
def universe(
    index: Annotated[str, typer.Argument(help="The index, e.g. 'S&P 500'.")],
    as_of: AsOfOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The members of INDEX on a day, delisted ones included (no survivorship bias)."""
    with _database() as db:
        rows = db.securities.universe(index, as_of=as_of)
    columns = ("symbol", "exchange_mic", "name", "member_from", "member_to")
    _rows(rows, columns, as_json, f"{index}: {len(rows):,} members")


@app.command("loads")
def loads(
    source: Annotated[str | None, typer.Option(help="Only this source.")] = None,
    table: Annotated[str | None, typer.Option(help="Only this table (quotes, bars, securities, ...).")] = None,
    status: Annotated[str | None, typer.Option(help="running, success, partial or failed.")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """Recorded ingests (data_ingestion.load_runs), newest first."""
    with _database() as db:
        rows = db.loads.list(source=source, table=table, status=status, limit=limit)
    columns = (
        "run_id",
        "source",
        "table_name",
        "target",
        "rows_loaded",
        "rows_rejected",
        "status",
        "started_at",
        "duration",
    )
    _rows(rows, columns, as_json, "loads")

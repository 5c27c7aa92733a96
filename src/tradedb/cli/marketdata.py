"""CLI commands for market data: ``tradedb ingest ...``, ``coverage``, ``quality``, ``maintain``.

Registered on the main app by ``tradedb.cli``; the same thin layer over the public functions.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tradedb.cli._common import _cell, _database, _print_json, _settings, app, err, out
from tradedb.cli._lazy import lazy

if TYPE_CHECKING:
    from tradedb import marketdata
    from tradedb.marketdata import WriteResult, securities
    from tradedb.marketdata import files as ingest_files
    from tradedb.ops import archive, maintenance
else:
    marketdata = lazy("tradedb.marketdata")
    ingest_files = lazy("tradedb.marketdata.files")
    securities = lazy("tradedb.marketdata.securities")
    archive = lazy("tradedb.ops.archive")
    maintenance = lazy("tradedb.ops.maintenance")

ingest_app = typer.Typer(
    help="Load market data files (CSV, Parquet, HistData, LOBSTER) and listings into the database.",
    no_args_is_help=True,
)
app.add_typer(ingest_app, name="ingest")

FileArg = Annotated[Path, typer.Argument(help="The file to load (CSV, .csv.gz, .tar.gz of CSVs, Parquet).")]
SourceOpt = Annotated[str, typer.Option(help="Vendor or feed name stored with every row.")]
FormatOpt = Annotated[str | None, typer.Option("--format", help="csv, parquet or histdata (default: by extension).")]
SymbolOpt = Annotated[str | None, typer.Option(help="Symbol of every row (when the file has no symbol column).")]
TzOpt = Annotated[
    str | None,
    typer.Option(help="Time zone of times without one, e.g. UTC, America/New_York, -05:00 (never guessed)."),
]
ConflictOpt = Annotated[str, typer.Option("--on-conflict", help="append, skip (rows already stored) or replace.")]
PolicyOpt = Annotated[
    str, typer.Option(help="reject (nothing written on a bad row), quarantine (log bad rows, write the rest) or log.")
]
CreateOpt = Annotated[bool, typer.Option(help="Add unknown symbols to the security master.")]
BatchOpt = Annotated[int, typer.Option(help="Rows per batch (each batch is one transaction).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
ExchangeOpt = Annotated[str | None, typer.Option(help="MIC of the listing venue, to resolve symbols.")]
AsOfOpt = Annotated[
    str | None,
    typer.Option(help='Resolve symbols through the symbology as of "row" (each row\'s date) or one YYYY-MM-DD.'),
]
AssetOpt = Annotated[str, typer.Option(help="Asset type of securities created by --create-securities.")]
TimeColumnOpt = Annotated[
    str | None,
    typer.Option(help="Column holding the time (default: the first of ts, timestamp, datetime, time, date...)."),
]
TimeFormatOpt = Annotated[
    str | None,
    typer.Option(
        help="How times are written: a strptime format (e.g. %Y%m%d%H%M) or epoch-s, epoch-ms, epoch-us, epoch-ns "
        "(default: ISO text, YYYYMMDD[hhmm[ss]] integers and epoch integers are recognised)."
    ),
]


#: The table each ingest kind writes, as ``load_runs`` names it.
_TABLES = {"quotes": "quotes", "trades": "market_trades", "bars": "bars", "order_book_events": "order_book_events"}


def _write(kind: str, table: Any, options: dict[str, Any], *, label: str, target: str | None = None) -> WriteResult:
    """Write one table with a progress bar, recorded in ``load_runs``; return the result."""
    total = table.num_rows
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,} rows"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task(label, total=total)
        with _database() as db:
            writer = getattr(db.market_data, f"write_{kind}")
            with db.loads.run(
                source=options["source"], table=_TABLES[kind], target=target, timeframe=options.get("timeframe")
            ) as run:
                result: WriteResult = writer(
                    table, progress=lambda done: progress.update(task, completed=done), **options
                )
                run.rows_loaded, run.rows_rejected = result.written, result.rejected
                run.status = "partial" if result.rejected else "success"
                run.range_start, run.range_end = result.first_ts, result.last_ts
            return result


def _report(results: list[WriteResult], as_json: bool, notes: dict[str, Any] | None = None) -> None:
    if as_json:
        _print_json([{**r.as_dict(), **(notes or {})} for r in results])
        return
    table = Table("table", "rows", "written", "skipped", "rejected", "replaced", "rows/s", "findings")
    for r in results:
        findings = ", ".join(f"{k} {v}" for k, v in sorted(r.findings.items())) or "-"
        table.add_row(
            r.table,
            f"{r.rows:,}",
            f"{r.written:,}",
            f"{r.skipped:,}",
            f"{r.rejected:,}",
            f"{r.replaced:,}",
            f"{r.rows_per_second:,.0f}",
            findings,
        )
    out.print(table)
    if any(r.rejected for r in results):
        out.print("rows kept out are recorded with their reasons: `tradedb quality`")


def _options(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _read(
    kind: str, file: Path, *, fmt: str | None, symbol: str | None, time_column: str | None, time_format: str | None
) -> tuple[ingest_files.FileTable, Any, str]:
    """Read a vendor file for ``kind``; say on stderr where the times came from and which columns were left out."""
    chosen = ingest_files.detect_format(file, fmt)
    raw = ingest_files.read_table(file, chosen)
    first_line = {"csv": 2, "histdata": 1}.get(chosen)
    if file.name.endswith((".tar.gz", ".tgz", ".tar")):
        first_line = None  # several files concatenated: rows are numbered instead
    ready = ingest_files.canonical(
        raw,
        kind,
        symbol=symbol,
        time_column=time_column,
        time_format=time_format,
        first_line=first_line,
        name=file.name,
    )
    err.print(f"times from {ready.time_source}", highlight=False)
    if ready.ignored:
        err.print(f"ignored columns (not {kind} columns): {', '.join(ready.ignored)}", highlight=False)
    return ready, raw, chosen


#: The writer options checked before a file is read (bad arguments fail fast, before a large file is parsed).
_CHECKED = ("on_conflict", "policy", "batch_rows", "writers")


def _notes(ready: ingest_files.FileTable) -> dict[str, Any]:
    return {"time_column": ready.time_source, "ignored_columns": ready.ignored}


def _load(
    kind: str,
    file: Path,
    *,
    source: str,
    fmt: str | None,
    symbol: str | None,
    tz: str | None,
    time_column: str | None,
    time_format: str | None,
    as_json: bool,
    **writer: Any,
) -> None:
    """Load one vendor file of ``kind``: arguments checked first, then the file read, then written and reported.

    Bars and their corporate actions are one unit: every action is checked before any bar is written.
    """
    options = _options(**writer)
    marketdata.check_write_options(source=source, **{k: v for k, v in options.items() if k in _CHECKED})
    if "timeframe" in options:
        marketdata.check_timeframe(options["timeframe"])
    ready, raw, chosen = _read(kind, file, fmt=fmt, symbol=symbol, time_column=time_column, time_format=time_format)
    if chosen == "histdata" and tz is None:
        tz = ingest_files.HISTDATA_TZ
    actions = []
    if kind == "bars":
        actions = ingest_files.corporate_actions(raw, symbol, name=file.name, first_line=ready.first_line)
        marketdata.check_corporate_actions(actions)
    extra = _options(source=source, symbol=symbol, tz=tz, first_line=ready.first_line)
    result = _write(kind, ready.table, {**options, **extra}, label=kind, target=str(file))
    notes = _notes(ready)
    if kind == "bars":
        stored = 0
        if actions:
            with _database() as db:
                stored = db.market_data.write_corporate_actions(actions, source=source)
        err.print(f"{stored} corporate action(s) found and stored" if actions else "0 corporate actions found")
        notes["corporate_actions"] = stored
    _report([result], as_json, notes)


def _tick_command(kind: str, what: str) -> None:
    """Register ``tradedb ingest <kind>`` (quotes and trades take the same options)."""

    def command(
        file: FileArg,
        source: SourceOpt,
        fmt: FormatOpt = None,
        symbol: SymbolOpt = None,
        tz: TzOpt = None,
        on_conflict: ConflictOpt = "append",
        policy: PolicyOpt = "reject",
        create_securities: CreateOpt = False,
        asset_type: AssetOpt = "equity",
        exchange: ExchangeOpt = None,
        batch_rows: BatchOpt = 100_000,
        time_column: TimeColumnOpt = None,
        time_format: TimeFormatOpt = None,
        as_of: AsOfOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        _load(
            kind,
            file,
            source=source,
            fmt=fmt,
            symbol=symbol,
            tz=tz,
            time_column=time_column,
            time_format=time_format,
            as_json=as_json,
            on_conflict=on_conflict,
            policy=policy,
            create_securities=create_securities,
            asset_type=asset_type,
            exchange=exchange,
            batch_rows=batch_rows,
            as_of=as_of,
        )

    command.__doc__ = what
    ingest_app.command(kind)(command)


_tick_command("quotes", "Load quotes (time, symbol, bid, ask, sizes).")
_tick_command("trades", "Load market trades (time, symbol, price, size, trade id, aggressor side).")


@ingest_app.command("bars")
def ingest_bars(
    file: FileArg,
    source: SourceOpt,
    fmt: FormatOpt = None,
    symbol: SymbolOpt = None,
    tz: TzOpt = None,
    timeframe: Annotated[str, typer.Option(help="Bar timeframe of rows without one (1m, 1h, 1d...).")] = "1d",
    on_conflict: ConflictOpt = "append",
    policy: PolicyOpt = "reject",
    create_securities: CreateOpt = False,
    asset_type: AssetOpt = "equity",
    exchange: ExchangeOpt = None,
    batch_rows: BatchOpt = 100_000,
    time_column: TimeColumnOpt = None,
    time_format: TimeFormatOpt = None,
    as_of: AsOfOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Load OHLCV bars; dates are session dates (stored at 00:00 UTC). Dividend and split columns (zipline's
    dividend/split, Quandl WIKI's ex-dividend/split_ratio) become corporate actions."""
    _load(
        "bars",
        file,
        source=source,
        fmt=fmt,
        symbol=symbol,
        tz=tz,
        time_column=time_column,
        time_format=time_format,
        as_json=as_json,
        on_conflict=on_conflict,
        policy=policy,
        create_securities=create_securities,
        asset_type=asset_type,
        exchange=exchange,
        batch_rows=batch_rows,
        timeframe=timeframe,
        as_of=as_of,
    )


@ingest_app.command("lobster")
def ingest_lobster(
    file: Annotated[Path, typer.Argument(help="The LOBSTER message file (its orderbook file must sit next to it).")],
    source: SourceOpt = "lobster",
    symbol: SymbolOpt = None,
    day: Annotated[str | None, typer.Option("--date", help="Trading day (default: from the file name).")] = None,
    tz: Annotated[str, typer.Option(help="Time zone of LOBSTER's seconds after midnight.")] = "America/New_York",
    on_conflict: ConflictOpt = "append",
    policy: PolicyOpt = "reject",
    create_securities: CreateOpt = False,
    exchange: ExchangeOpt = None,
    batch_rows: BatchOpt = 100_000,
    as_json: JsonOpt = False,
) -> None:
    """Load a LOBSTER day: messages into order_book_events, the book into quotes, executions into trades."""
    if not file.is_file():
        raise typer.BadParameter(f"no such file: {file}")
    parsed = ingest_files.read_lobster(file, symbol=symbol, day=date.fromisoformat(day) if day else None)
    options = _options(
        source=source,
        symbol=parsed.symbol,
        tz=tz,
        on_conflict=on_conflict,
        policy=policy,
        create_securities=create_securities,
        exchange=exchange,
        batch_rows=batch_rows,
    )
    results = [
        _write("order_book_events", parsed.events, options, label="order book events", target=str(file)),
        _write("quotes", parsed.quotes, {**options, "create_securities": False}, label="quotes", target=str(file)),
        _write("trades", parsed.trades, {**options, "create_securities": False}, label="trades", target=str(file)),
    ]
    _report(results, as_json)


@ingest_app.command("mbo")
def ingest_mbo(
    file: Annotated[Path, typer.Argument(help="A Databento market-by-order CSV (schema mbo, encoding csv).")],
    source: SourceOpt = "databento",
    on_conflict: ConflictOpt = "append",
    policy: PolicyOpt = "reject",
    create_securities: CreateOpt = False,
    exchange: ExchangeOpt = None,
    batch_rows: BatchOpt = 100_000,
    as_json: JsonOpt = False,
) -> None:
    """Load Databento market-by-order events into order_book_events (rebuild books with tradedb book)."""
    if not file.is_file():
        raise typer.BadParameter(f"no such file: {file}")
    if not ingest_files.is_mbo(file):
        raise typer.BadParameter(f"{file.name} is not a Databento MBO CSV (no action, side, order_id, ts_recv)")
    events = ingest_files.read_mbo(file)
    options = _options(
        source=source,
        on_conflict=on_conflict,
        policy=policy,
        create_securities=create_securities,
        exchange=exchange,
        batch_rows=batch_rows,
    )
    _report([_write("order_book_events", events, options, label="order book events", target=str(file))], as_json)


@ingest_app.command("securities")
def ingest_securities(
    file: FileArg,
    exchange: ExchangeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Load listings (NASDAQ Trader files, S&P 500 constituents, any CSV with Symbol and Name)."""
    rows, skipped = ingest_files.read_securities(file, exchange=exchange)
    with _database() as db, db.loads.run(source="listing", table="securities", target=str(file)) as run:
        added, updated = securities.upsert(db, rows)
        run.rows_loaded = added + updated
    if as_json:
        _print_json({"added": added, "updated": updated, "skipped": skipped})
    else:
        out.print(f"{added} securities added, {updated} updated, {skipped} line(s) skipped (test issues, footers)")


@app.command()
def coverage(
    symbol: Annotated[str | None, typer.Option(help="Only this symbol.")] = None,
    table: Annotated[str | None, typer.Option(help="Only this table (quotes, market_trades, bars...).")] = None,
    source: Annotated[str | None, typer.Option(help="Only this source.")] = None,
    rebuild: Annotated[bool, typer.Option(help="Recompute from the stored rows first.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """What market data is stored: first and last time and rows per security, table, source and timeframe."""
    with _database() as db:
        if rebuild:
            db.market_data.rebuild_coverage(table)
        rows = db.market_data.coverage(symbol=symbol, table=table, source=source)
    if as_json:
        _print_json(rows)
        return
    view = Table("symbol", "table", "source", "timeframe", "first", "last", "rows", title=f"{len(rows)} series")
    for r in rows:
        view.add_row(
            _cell(r["symbol"]),
            r["table_name"],
            r["source"],
            r["timeframe"],
            _cell(r["first_ts"]),
            _cell(r["last_ts"]),
            f"{r['row_count']:,}",
        )
    out.print(view)


@app.command()
def quality(
    table: Annotated[str | None, typer.Option(help="Only this table.")] = None,
    source: Annotated[str | None, typer.Option(help="Only this source.")] = None,
    check: Annotated[str | None, typer.Option(help="Only this check type (crossed_quote, ohlc_violation...).")] = None,
    days: Annotated[int, typer.Option(help="Findings of the last N days.")] = 7,
    limit: Annotated[int, typer.Option(help="Rows to list.")] = 50,
    rows: Annotated[bool, typer.Option("--rows", help="List the findings instead of counting them.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Data quality findings recorded on ingest: counted per table, source, check and status (or listed)."""
    from datetime import UTC, datetime

    if days < 1:
        raise typer.BadParameter("--days must be at least 1")
    since = datetime.now(UTC) - timedelta(days=days)
    with _database() as db:
        found = db.market_data.quality(
            table=table, source=source, check_type=check, since=since, limit=limit, summary=not rows
        )
    if as_json:
        _print_json(found)
        return
    if not rows:
        view = Table("table", "source", "check", "status", "rows", "last seen", title="data quality findings")
        for r in found:
            view.add_row(
                r["table_name"], r["source"], r["check_type"], r["status"], f"{r['rows']:,}", _cell(r["last_seen"])
            )
    else:
        view = Table("checked", "symbol", "table", "check", "status", "row time", "details")
        for r in found:
            view.add_row(
                _cell(r["checked_at"]),
                _cell(r["symbol"]),
                _cell(r["table_name"]),
                r["check_type"],
                r["status"],
                _cell(r["row_ts"]),
                _cell(r["details"]),
            )
    out.print(view)


@app.command()
def maintain(
    ahead: Annotated[int, typer.Option(help="Partitions to create ahead of now, per table.")] = 2,
    retention: Annotated[
        str | None, typer.Option(help="quotes=30d,market_trades=12w (default TRADEDB_RETENTION; others kept).")
    ] = None,
    mode: Annotated[
        str | None, typer.Option(help="drop or detach old partitions (default TRADEDB_RETENTION_MODE).")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Print what would be done, change nothing.")] = False,
    book_snapshots: Annotated[
        str | None,
        typer.Option(help="Also store order books every this long (e.g. 15min) up to each book's last event."),
    ] = None,
    timescale_sql: Annotated[
        bool, typer.Option("--timescale-sql", help="Print the SQL that turns the market data tables into hypertables.")
    ] = False,
    timescale: Annotated[
        bool,
        typer.Option(
            "--timescale",
            help="Turn the market data tables into TimescaleDB hypertables (library preloaded; stop writers first).",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Partition maintenance: archive to Parquet what TRADEDB_ARCHIVE_AFTER says is old enough (when it and
    TRADEDB_ARCHIVE_URL are set), repair default partitions, create partitions ahead, apply retention, vacuum tables
    with many dead tuples."""
    settings = _settings()
    if timescale_sql or timescale:
        run = maintenance.timescale_plan if timescale_sql else maintenance.convert_to_hypertables
        for statement in run(settings=settings):
            out.print(statement + ";", highlight=False, soft_wrap=True)
        return
    archived = archive.archive_if_configured(settings, dry_run=dry_run)
    report = maintenance.maintain(settings=settings, ahead=ahead, retention=retention, mode=mode, dry_run=dry_run)
    snapshots: dict[str, int] = {}
    if book_snapshots and not dry_run:
        with _database() as db:
            snapshots = db.books.write_due_snapshots(every=book_snapshots)
    if as_json:
        extra: dict[str, Any] = {"book_snapshots": snapshots} if book_snapshots else {}
        if archived is not None:
            extra["archived"] = [a.partition for a in archived.archived] or archived.candidates
        _print_json({**report.as_dict(), **extra})
        return
    for book, count in snapshots.items():
        out.print(f"order book snapshots written: {count} of {book}")
    verb = "would" if dry_run else ""
    if archived is not None:
        names = archived.candidates if dry_run else [a.partition for a in archived.archived]
        out.print(f"partitions {verb} archived to {archived.location}: {len(names)}".replace("  ", " "))
    out.print(f"partitions {verb} created: {len(report.created)}".replace("  ", " "))
    for name, moved in report.moved.items():
        out.print(f"  moved {moved:,} row(s) out of the default partition into {name}")
    for label, names in (("dropped", report.dropped), ("detached", report.detached)):
        if names:
            out.print(f"partitions {label}: {', '.join(names)}")
    if report.hypertables:
        out.print(f"hypertables (chunks by TimescaleDB, retention by tradedb): {', '.join(report.hypertables)}")
    if report.vacuumed:
        out.print(f"vacuumed (many dead tuples): {', '.join(report.vacuumed)}")
    if report.audit_block is not None:
        out.print(f"audit ledger: sealed block {report.audit_block} ({report.audit_rows_sealed} row(s))")
    if dry_run:
        for statement in report.statements:
            out.print(statement + ";", highlight=False, soft_wrap=True)

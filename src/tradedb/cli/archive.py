"""``tradedb archive``: cold partitions to Parquet and back (``tradedb.ops.archive``)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from tradedb.cli._common import _print_json, _settings, app, out
from tradedb.cli._lazy import lazy
from tradedb.errors import ValidationError

if TYPE_CHECKING:
    from tradedb.ops import archive
else:
    archive = lazy("tradedb.ops.archive")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
TableOpt = Annotated[str | None, typer.Option("--table", help="quotes, market_trades or bars (default: all).")]

archive_app = typer.Typer(
    help="Cold partitions of quotes, trades and bars to Parquet files (a folder or S3), still readable by every "
    "read; `tradedb archive` alone archives what TRADEDB_ARCHIVE_AFTER says is old enough.",
    invoke_without_command=True,
)
app.add_typer(archive_app, name="archive")


@archive_app.callback()
def archive_run(
    ctx: typer.Context,
    after: Annotated[
        str | None,
        typer.Option(help="Tables and ages, e.g. quotes=365d,bars=520w (default TRADEDB_ARCHIVE_AFTER)."),
    ] = None,
    location: Annotated[
        str | None, typer.Option(help="A folder or s3://bucket/prefix (default TRADEDB_ARCHIVE_URL).")
    ] = None,
    rows_per_file: Annotated[
        int, typer.Option(help="Rows per Parquet file (the last of a partition holds the rest).")
    ] = 2_000_000,
    dry_run: Annotated[bool, typer.Option(help="List the partitions that would be archived, change nothing.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Move partitions older than their age to verified Parquet files, then drop them."""
    if ctx.invoked_subcommand is not None:
        return
    report = archive.archive(
        settings=_settings(), location=location, after=after, rows_per_file=rows_per_file, dry_run=dry_run
    )
    if as_json:
        _print_json(
            {
                "location": report.location,
                "dry_run": dry_run,
                "candidates": report.candidates,
                "archived": [vars(a) for a in report.archived],
                "dropped_empty": report.dropped_empty,
            }
        )
        return
    if dry_run:
        out.print(f"would archive {len(report.candidates)} partition(s) to {report.location}", highlight=False)
        for name in report.candidates:
            out.print(f"  {name}", highlight=False)
        return
    for a in report.archived:
        ratio = a.heap_bytes / a.file_bytes if a.file_bytes else 0.0
        out.print(
            f"archived {a.partition}: {a.rows} rows in {a.files} file(s), {a.file_bytes:,} bytes "
            f"({ratio:.1f}x smaller than its heap)",
            highlight=False,
        )
    for name in report.dropped_empty:
        out.print(f"dropped empty {name}", highlight=False)
    out.print(f"{len(report.archived)} partition(s) archived to {report.location}", highlight=False)


def _moment(text: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"--{name} must be an ISO 8601 time with a zone, got {text!r}") from None
    if moment.tzinfo is None:
        raise ValidationError(f"--{name} {text!r} has no time zone (add Z or +00:00)")
    return moment


@archive_app.command("restore")
def archive_restore(
    table: Annotated[str, typer.Option(help="quotes, market_trades or bars.")],
    start: Annotated[str, typer.Option(help="ISO 8601 with a zone: the range's start.")],
    end: Annotated[str, typer.Option(help="ISO 8601 with a zone: the range's end (exclusive).")],
) -> None:
    """Bring the archived partitions overlapping [start, end) back into PostgreSQL (their files are kept)."""
    report = archive.restore(table, _moment(start, "start"), _moment(end, "end"), settings=_settings())
    for name in report.restored:
        out.print(f"restored {name}", highlight=False)
    out.print(f"{len(report.restored)} partition(s), {report.rows} rows restored", highlight=False)


@archive_app.command("list")
def archive_list(table: TableOpt = None, as_json: JsonOpt = False) -> None:
    """List the archived files: table, partition, securities, rows and size."""
    files = archive.catalog(table, settings=_settings())
    if as_json:
        _print_json([vars(f) for f in files])
        return
    listing = Table("table", "partition", "from", "to", "securities", "rows", "bytes", "file", title="archive")
    for f in files:
        listing.add_row(
            f.table,
            f.partition,
            f.range_start.isoformat(),
            f.range_end.isoformat(),
            f"{f.first_security_id}-{f.last_security_id}",
            str(f.row_count),
            str(f.file_bytes),
            f"{f.location}/{f.path}",
        )
    out.print(listing)


@archive_app.command("verify")
def archive_verify(table: TableOpt = None) -> None:
    """Read every archived file and check its bytes and rows against the catalog (exit 9 on a mismatch)."""
    count, problems = archive.verify(table, settings=_settings())
    for file, why in problems:
        out.print(f"FAILED {file.path}: {why}", highlight=False)
    if problems:
        raise typer.Exit(9)
    out.print(f"{count} archived file(s) verified", highlight=False)

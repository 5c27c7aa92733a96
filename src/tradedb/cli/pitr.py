"""``tradedb pitr``: point-in-time recovery with pgBackRest (``tradedb.ops.pitr``)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from tradedb.cli._common import _settings, app, out
from tradedb.cli._lazy import lazy
from tradedb.errors import ValidationError

if TYPE_CHECKING:
    from tradedb.ops import pitr
else:
    pitr = lazy("tradedb.ops.pitr")

pitr_app = typer.Typer(
    help="Point-in-time recovery (pgBackRest): WAL archiving, full and incremental backups, restore to a moment.",
    no_args_is_help=True,
)
app.add_typer(pitr_app, name="pitr")


@pitr_app.command("setup")
def pitr_setup(
    repository: Annotated[Path | None, typer.Option(help="The repository folder (default: in TRADEDB_HOME).")] = None,
) -> None:
    """Turn WAL archiving on into a pgBackRest repository (embedded server), or print what to apply on yours."""
    report = pitr.setup(settings=_settings(), repository=repository)
    if not report.applied:
        out.print("# pgbackrest.conf on the database host:", highlight=False)
        out.print(report.config, highlight=False, markup=False)
        out.print("# then, as a superuser (archive_mode takes a restart), and `pgbackrest stanza-create`:")
        for name, value in report.settings.items():
            out.print(f"ALTER SYSTEM SET {name} = '{value}';", highlight=False, markup=False)
        return
    for action in report.actions:
        out.print(action, highlight=False)
    out.print(f"configuration: {report.config_path}", highlight=False)


@pitr_app.command("backup")
def pitr_backup(
    type_: Annotated[str, typer.Option("--type", help="full, diff or incr.")] = "full",
) -> None:
    """Take a backup into the repository (WAL is archived continuously in between)."""
    taken = pitr.backup(type_, settings=_settings())
    out.print(f"{taken['type']} backup {taken['label']} done at {taken['stopped_at'].isoformat()}", highlight=False)


@pitr_app.command("info")
def pitr_info() -> None:
    """List the backups in the repository: a restore can reach any moment after the first one ended."""
    table = Table("backup", "type", "started", "stopped", title="pgBackRest repository")
    for b in pitr.info(settings=_settings()):
        table.add_row(b["label"], b["type"], b["started_at"].isoformat(), b["stopped_at"].isoformat())
    out.print(table)


@pitr_app.command("restore")
def pitr_restore(
    to: Annotated[str, typer.Option(help="The moment, ISO 8601 with a zone (2026-11-29T14:05:00Z).")],
    into: Annotated[Path, typer.Option(help="A new folder: the restored server's TRADEDB_HOME.")],
) -> None:
    """Restore the server as of a moment into a new folder; start it with TRADEDB_HOME=<folder> tradedb db start."""
    try:
        moment = datetime.fromisoformat(to.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"--to must be an ISO 8601 time with a zone, got {to!r}") from None
    data = pitr.restore(moment, into, settings=_settings())
    out.print(f"restored into {data}; start it with: TRADEDB_HOME={into} tradedb db start", highlight=False)

"""``tradedb db ...``: the embedded PostgreSQL server."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from tradedb.cli._common import _print_json, _settings, db_app, out
from tradedb.db.embedded import EmbeddedServer

# --- db --------------------------------------------------------------------------------------------------


@db_app.command("start")
def db_start(
    show_password: Annotated[bool, typer.Option(help="Print the URL with its password.")] = False,
) -> None:
    """Start the embedded server (initializing it on first use) and print its URL."""
    server = EmbeddedServer(_settings())
    status = server.start()
    out.print(f"embedded PostgreSQL running (pid {status.pid}, {status.version})")
    out.print(server.url(show_password=show_password), highlight=False, soft_wrap=True)


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded server."""
    status = EmbeddedServer(_settings()).stop()
    out.print(f"embedded PostgreSQL {status.state}")


@db_app.command("status")
def db_status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Show whether the embedded server runs; exits 1 when it does not."""
    status = EmbeddedServer(_settings()).status()
    if as_json:
        _print_json(status.as_dict())
    else:
        table = Table(show_header=False)
        for key, value in status.as_dict().items():
            table.add_row(key, "" if value is None else str(value))
        out.print(table)
    if status.state != "running":
        raise typer.Exit(1)


@db_app.command("url")
def db_url(
    show_password: Annotated[bool, typer.Option(help="Print the password too (it is masked otherwise).")] = False,
    dbname: Annotated[str | None, typer.Option(help="Database name (default: TRADING_DB_NAME).")] = None,
) -> None:
    """Print the embedded server's URL."""
    out.print(EmbeddedServer(_settings()).url(dbname, show_password=show_password), highlight=False, soft_wrap=True)

"""``tradedb positions``, ``orders``, ``reconcile``: the execution records."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from tradedb.cli._common import _cell, _database, app, out


@app.command()
def positions(account: Annotated[str | None, typer.Option(help="Only this account.")] = None) -> None:
    """List stored positions: signed quantity, average cost, net realized PnL, commissions."""
    with _database() as db:
        rows = db.execution.positions(account)
    table = Table(
        "account",
        "security",
        "quantity",
        "avg price",
        "realized pnl",
        "commission",
        "updated",
        title=f"{len(rows)} position(s)",
    )
    for r in rows:
        table.add_row(
            r["account_id"],
            str(r["security_id"]),
            _cell(r["quantity"]),
            _cell(r["avg_price"]),
            _cell(r["realized_pnl"]),
            _cell(r["total_commission"]),
            _cell(r["updated_at"]),
        )
    out.print(table)


@app.command()
def orders(
    account: Annotated[str | None, typer.Option(help="Only this account.")] = None,
    status: Annotated[str | None, typer.Option(help="Only orders in this status (pending, filled, ...).")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
) -> None:
    """List the newest orders."""
    with _database() as db:
        rows = db.execution.orders(account_id=account, status=status, limit=limit)
    table = Table(
        "order",
        "account",
        "security",
        "side",
        "type",
        "quantity",
        "filled",
        "avg fill",
        "status",
        "version",
        title=f"{len(rows)} order(s)",
    )
    for r in rows:
        table.add_row(
            str(r["order_id"]),
            r["account_id"],
            str(r["security_id"]),
            r["side"],
            r["order_type"],
            _cell(r["quantity"]),
            _cell(r["filled_quantity"]),
            _cell(r["avg_fill_price"]),
            r["status"],
            str(r["version"]),
        )
    out.print(table)


@app.command()
def reconcile(account: Annotated[str | None, typer.Option(help="Only this account.")] = None) -> None:
    """Compare stored positions with what the fills imply; exit 1 on any difference."""
    with _database() as db:
        differences = db.execution.reconcile(account)
    if not differences:
        out.print("ok: every position equals what its fills imply")
        return
    table = Table("account", "security", "difference", title=f"{len(differences)} position(s) differ")
    for d in differences:
        table.add_row(d.account_id, str(d.security_id), "; ".join(d.differences))
    out.print(table)
    raise typer.Exit(1)

"""``tradedb accounts ...`` and ``tradedb risk ...``: accounts, limits, post-trade checks, halts and risk events."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from tradedb.cli._common import _cell, _database, _print_json, app, out

accounts_app = typer.Typer(help="Trading accounts: create, list, disable, enable.", no_args_is_help=True)
risk_app = typer.Typer(
    help="Risk limits (pre-trade and post-trade), checks, halts and risk events.", no_args_is_help=True
)
app.add_typer(accounts_app, name="accounts")
app.add_typer(risk_app, name="risk")

By = Annotated[str, typer.Option("--by", help="Who does it (recorded with the event).")]
Note = Annotated[str | None, typer.Option(help="A note recorded with the event.")]


@accounts_app.command("create")
def accounts_create(
    account_id: Annotated[str, typer.Argument(help="Account id: letters, digits and _ . : - (at most 64).")],
    name: Annotated[str, typer.Option(help="The account's name.")],
    currency: Annotated[str, typer.Option(help="Base currency (ISO 4217).")] = "USD",
    capital: Annotated[str | None, typer.Option(help="Starting equity (returns are measured on it).")] = None,
) -> None:
    """Create an account (it also gets the configured default risk limit)."""
    with _database() as db:
        row = db.accounts.create(account_id, name, base_currency=currency, capital=capital)
        limits = db.risk.limits(account_id)
    out.print(f"created account {row['account_id']} ({row['base_currency']})")
    for limit in limits:
        out.print(f"  default limit: {limit['limit_type']} {_cell(limit['limit_value'])}")


@accounts_app.command("list")
def accounts_list(
    active: Annotated[bool, typer.Option("--active", help="Only active accounts.")] = False,
) -> None:
    """List accounts."""
    with _database() as db:
        rows = db.accounts.list(include_inactive=not active)
    table = Table("account", "name", "currency", "active", "created", title=f"{len(rows)} account(s)")
    for r in rows:
        table.add_row(
            r["account_id"], r["name"], r["base_currency"], "yes" if r["is_active"] else "no", _cell(r["created_at"])
        )
    out.print(table)


@accounts_app.command("set-capital")
def accounts_set_capital(account_id: str, capital: str) -> None:
    """Set the equity an account's returns are measured on."""
    with _database() as db:
        row = db.accounts.set_capital(account_id, capital)
    out.print(f"account {account_id} capital {_cell(row['capital'])} {row['base_currency']}")


@accounts_app.command("disable")
def accounts_disable(account_id: str) -> None:
    """Disable an account: its new orders are refused."""
    with _database() as db:
        db.accounts.disable(account_id)
    out.print(f"account {account_id} disabled")


@accounts_app.command("enable")
def accounts_enable(account_id: str) -> None:
    """Enable a disabled account."""
    with _database() as db:
        db.accounts.enable(account_id)
    out.print(f"account {account_id} enabled")


@risk_app.command("set-limit")
def set_limit(
    account_id: str,
    limit_type: Annotated[
        str,
        typer.Argument(
            help="max_order_quantity, max_position_quantity, max_position_notional, max_daily_loss or max_drawdown."
        ),
    ],
    value: Annotated[str, typer.Argument(help="A quantity, or an amount in the account currency (> 0).")],
    security: Annotated[int | None, typer.Option(help="Only this security id (default: account-wide).")] = None,
    halt: Annotated[bool, typer.Option("--halt", help="A breach halts the account.")] = False,
) -> None:
    """Set (or replace) a limit."""
    with _database() as db:
        row = db.risk.set_limit(account_id, limit_type, value, security_id=security, halt_on_breach=halt)
    scope = "account-wide" if row["security_id"] is None else f"security {row['security_id']}"
    out.print(
        f"limit {row['limit_id']}: {row['limit_type']} {_cell(row['limit_value'])} {scope}"
        + (", halts on breach" if row["halt_on_breach"] else "")
    )


@risk_app.command("remove-limit")
def remove_limit(limit_id: int) -> None:
    """Remove a limit."""
    with _database() as db:
        row = db.risk.remove_limit(limit_id)
    out.print(f"removed limit {limit_id} ({row['limit_type']} of {row['account_id']})")


@risk_app.command("limits")
def limits(
    account: Annotated[str | None, typer.Option(help="Only this account.")] = None,
    inactive: Annotated[bool, typer.Option("--inactive", help="Include inactive limits.")] = False,
) -> None:
    """List limits."""
    with _database() as db:
        rows = db.risk.limits(account, include_inactive=inactive)
    table = Table("id", "account", "security", "limit", "value", "halts", "active", title=f"{len(rows)} limit(s)")
    for r in rows:
        table.add_row(
            str(r["limit_id"]),
            r["account_id"],
            _cell(r["security_id"]) or "all",
            r["limit_type"],
            _cell(r["limit_value"]),
            "yes" if r["halt_on_breach"] else "no",
            "yes" if r["is_active"] else "no",
        )
    out.print(table)


@risk_app.command("check")
def check(
    account_id: Annotated[
        str | None, typer.Argument(help="The account (default: every account with positions).")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Mark positions to market and check PnL limits (records breaches, halts where a limit says so)."""
    with _database() as db:
        checks = db.risk.mark_to_market(None if account_id is None else [account_id])
    summaries: list[dict[str, Any]] = [
        {
            "account_id": c.account_id,
            "currency": c.currency,
            "pnl": str(c.pnl),
            "daily_pnl": str(c.pnl - c.state.session_start_pnl),
            "drawdown": str(c.state.drawdown),
            "high_water_pnl": str(c.state.high_water_pnl),
            "exposure": {k: str(v) for k, v in c.exposure.items()},
            "unpriced": c.unpriced,
            "new_breaches": [b.limit_type for b in c.breaches],
            "halted": c.halted,
        }
        for c in checks
    ]
    if json_output:
        _print_json(summaries)
        return
    table = Table("account", "pnl", "today", "drawdown", "gross", "net", "unpriced", "halted", title="risk check")
    for s in summaries:
        table.add_row(
            s["account_id"],
            f"{s['pnl']} {s['currency']}",
            s["daily_pnl"],
            s["drawdown"],
            s["exposure"]["gross"],
            s["exposure"]["net"],
            ", ".join(map(str, s["unpriced"])),
            "HALTED" if s["halted"] else "no",
        )
    out.print(table)


@risk_app.command("events")
def events(
    account: Annotated[str | None, typer.Option(help="Only this account.")] = None,
    open_only: Annotated[bool, typer.Option("--open", help="Only events not resolved yet.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
) -> None:
    """List risk events."""
    with _database() as db:
        rows = db.risk.events(account, open_only=open_only, limit=limit)
    table = Table("id", "time", "account", "type", "severity", "message", "acknowledged", "resolved", title="events")
    for r in rows:
        table.add_row(
            str(r["event_id"]),
            _cell(r["ts"]),
            r["account_id"],
            r["event_type"],
            r["severity"],
            r["message"],
            r["acknowledged_by"] or "",
            r["resolved_by"] or "",
        )
    out.print(table)


@risk_app.command("ack")
def acknowledge(event_id: int, by: By, note: Note = None) -> None:
    """Acknowledge a risk event."""
    with _database() as db:
        db.risk.acknowledge(event_id, by=by, note=note)
    out.print(f"risk event {event_id} acknowledged by {by}")


@risk_app.command("resolve")
def resolve(event_id: int, by: By, note: Note = None) -> None:
    """Resolve a risk event."""
    with _database() as db:
        db.risk.resolve(event_id, by=by, note=note)
    out.print(f"risk event {event_id} resolved by {by}")


@risk_app.command("halt")
def halt(account_id: str, by: By, reason: Annotated[str, typer.Option(help="Why the account is halted.")]) -> None:
    """Halt an account: only orders that reduce a position are accepted until it is resumed."""
    with _database() as db:
        db.risk.halt(account_id, reason=reason, by=by)
    out.print(f"account {account_id} halted")


@risk_app.command("resume")
def resume(account_id: str, by: By, note: Note = None) -> None:
    """Lift an account's halt."""
    with _database() as db:
        db.risk.resume(account_id, by=by, note=note)
    out.print(f"account {account_id} resumed")

"""``tradedb portfolio`` and ``tradedb performance``: marked-to-market positions and daily performance."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import typer
from rich.table import Table

from tradedb.cli._common import _cell, _database, _print_json, app, out
from tradedb.risk import exposure


@app.command()
def portfolio(
    account: Annotated[str | None, typer.Option(help="Only this account.")] = None,
    mark: Annotated[bool, typer.Option("--mark", help="Mark to market first (runs the risk checks).")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show positions as last marked to market: quantity, market value, unrealized and realized PnL, exposure."""
    with _database() as db:
        if mark:
            db.analytics.mark_to_market(None if account is None else [account])
        rows = db.analytics.portfolio(account)
    if json_output:
        _print_json(rows)
        return
    table = Table("account", "symbol", "quantity", "market value", "unrealized", "realized", "as of", title="portfolio")
    values: dict[str, list[Decimal | None]] = {}
    for r in rows:
        table.add_row(
            r["account_id"],
            r["symbol"],
            _cell(r["quantity"]),
            _cell(r["market_value"]),
            _cell(r["unrealized_pnl"]),
            _cell(r["realized_pnl"]),
            _cell(r["as_of"]),
        )
        values.setdefault(r["account_id"], []).append(r["market_value"])
    out.print(table)
    for name, account_values in values.items():
        e = exposure(account_values)
        out.print(
            f"{name}: gross {_cell(e['gross'])}, net {_cell(e['net'])}, long {_cell(e['long'])}, "
            f"short {_cell(e['short'])}"
        )


@app.command()
def performance(
    account: str,
    start: Annotated[str | None, typer.Option(help="First day (YYYY-MM-DD).")] = None,
    end: Annotated[str | None, typer.Option(help="Last day (YYYY-MM-DD, default today).")] = None,
    compute: Annotated[bool, typer.Option("--compute", help="Compute and store the days first.")] = False,
) -> None:
    """Show an account's daily performance: PnL, equity, returns, drawdown, turnover, risk-adjusted ratios."""
    with _database() as db:
        if compute:
            db.analytics.daily_performance(account, start=start, end=end)
        rows = db.analytics.performance(account, start=start, end=end)
    table = Table("date", "pnl", "equity", "return", "total", "drawdown", "sharpe", "turnover", "fills", title=account)
    for r in rows:
        table.add_row(
            str(r["date"]),
            _cell(r["pnl"]),
            _cell(r["equity"]),
            f"{float(r['daily_return']):.4%}",
            f"{float(r['total_return']):.4%}",
            f"{r['max_drawdown']:.4%}",
            "" if r["sharpe_ratio"] is None else f"{r['sharpe_ratio']:.2f}",
            f"{float(r['turnover']):.4f}",
            str(r["trade_count"]),
        )
    out.print(table)

"""CLI commands for strategies and backtests: ``tradedb strategies ...`` and ``tradedb backtests ...``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from tradedb.cli._common import _database, _print_json, app, err, out
from tradedb.cli._lazy import lazy
from tradedb.errors import ValidationError

if TYPE_CHECKING:
    from tradedb.strategies import backtests
else:
    backtests = lazy("tradedb.strategies.backtests")

strategies_app = typer.Typer(help="Strategies and their typed parameters.", no_args_is_help=True)
backtests_app = typer.Typer(help="Backtest runs: list, show, compare, tear sheets.", no_args_is_help=True)
app.add_typer(strategies_app, name="strategies")
app.add_typer(backtests_app, name="backtests")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
VersionOpt = Annotated[str | None, typer.Option(help="The strategy version (default: the newest).")]


@strategies_app.command("list")
def list_strategies(
    search: Annotated[str | None, typer.Option(help="Text in the name or description (taken literally).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Registered strategies with their number of completed backtests."""
    with _database() as db:
        rows = db.strategies.list(search=search)
    if as_json:
        _print_json(rows)
        return
    table = Table("id", "name", "version", "type", "active", "runs", "description")
    for r in rows:
        table.add_row(
            str(r["strategy_id"]),
            r["name"],
            r["version"],
            r["strategy_type"] or "",
            "yes" if r["is_active"] else "no",
            str(r["runs"]),
            r["description"] or "",
        )
    out.print(table)


@strategies_app.command("show")
def show_strategy(
    strategy: Annotated[str, typer.Argument(help="Name or id.")],
    version: VersionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A strategy and its parameter specifications."""
    with _database() as db:
        found = db.strategies.get(_id_or_name(strategy), version=version)
    params = [{**spec.__dict__, "choices": list(spec.choices or []) or None} for spec in found.params]
    if as_json:
        _print_json({**{k: v for k, v in found.__dict__.items() if k != "params"}, "params": params})
        return
    out.print(f"{found.label} (id {found.strategy_id}): {found.description or ''}", highlight=False)
    if found.code_reference:
        out.print(f"code: {found.code_reference}", highlight=False)
    table = Table("parameter", "type", "required", "default", "min", "max", "step", "choices", "optimizable")
    for spec in found.params:
        table.add_row(
            spec.name,
            spec.type,
            "yes" if spec.required else "",
            _text(spec.default),
            _text(spec.min),
            _text(spec.max),
            _text(spec.step),
            ", ".join(map(str, spec.choices or ())),
            "yes" if spec.optimizable else "",
        )
    out.print(table)


@strategies_app.command("validate")
def validate_parameters(
    strategy: Annotated[str, typer.Argument(help="Name or id.")],
    values: Annotated[list[str] | None, typer.Argument(help="Parameters as NAME=VALUE.")] = None,
    version: VersionOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check parameters against a strategy: per parameter valid, message, normalized and suggested value; exit 8
    when any is invalid."""
    params = {}
    for item in values or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValidationError(f"parameters are NAME=VALUE, got {item!r}")
        params[name] = value
    with _database() as db:
        result = db.strategies.validate(_id_or_name(strategy), params, version=version)
    if as_json:
        _print_json({"valid": result.valid, "checks": [c.__dict__ for c in result.checks.values()]})
    else:
        table = Table("parameter", "valid", "value", "suggested", "message")
        for check in result.checks.values():
            table.add_row(
                check.name,
                "yes" if check.valid else "NO",
                _text(check.value),
                _text(check.suggested),
                check.message or "",
            )
        out.print(table)
    if not result.valid:
        err.print(f"invalid: {', '.join(result.errors)}", highlight=False)
        raise typer.Exit(ValidationError.exit_code)


@backtests_app.command("list")
def list_runs(
    strategy: Annotated[str | None, typer.Option(help="Only this strategy (name or id).")] = None,
    order_by: Annotated[str, typer.Option(help="run_id, or a metric such as sharpe_ratio or cagr.")] = "run_id",
    ascending: Annotated[bool, typer.Option(help="Lowest first.")] = False,
    status: Annotated[str, typer.Option(help="completed, failed, or any.")] = "completed",
    limit: Annotated[int, typer.Option(help="At most this many runs.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Backtest runs with their headline metrics, newest first or best first by a metric."""
    with _database() as db:
        rows = db.backtests.runs(
            None if strategy is None else _id_or_name(strategy),
            status=None if status == "any" else status,
            order_by=order_by,
            descending=not ascending,
            limit=limit,
        )
    if as_json:
        _print_json(rows)
        return
    table = Table("run", "strategy", "status", "period", "parameters", "return", "sharpe", "max dd", "trades")
    for r in rows:
        metrics = r["metrics"] or {}
        table.add_row(
            str(r["run_id"]),
            f"{r['strategy']} v{r['strategy_version']}",
            r["status"],
            f"{r['period_start']:%Y-%m-%d}..{r['period_end']:%Y-%m-%d}",
            ", ".join(f"{k}={v}" for k, v in (r["parameters"] or {}).items()),
            _pct(metrics.get("total_return")),
            _num(metrics.get("sharpe_ratio")),
            _pct(metrics.get("max_drawdown")),
            _text(metrics.get("trade_count")),
        )
    out.print(table)


@backtests_app.command("show")
def show_run(run: Annotated[int, typer.Argument(help="The run id.")], as_json: JsonOpt = False) -> None:
    """One run: what defines it, its status and every metric."""
    with _database() as db:
        row = db.backtests.run(run)
    if as_json:
        _print_json(row)
        return
    out.print(f"run {row['run_id']}: {row['strategy']} v{row['strategy_version']} ({row['status']})", highlight=False)
    for key in (
        "parameters",
        "period_start",
        "period_end",
        "initial_capital",
        "commission_model",
        "slippage_model",
        "random_seed",
        "code_version",
        "error",
    ):
        if row.get(key) is not None:
            out.print(f"  {key}: {row[key]}", highlight=False)
    metrics = {k: v for k, v in (row["metrics"] or {}).items() if k != "drawdown_periods"}
    table = Table("metric", "value")
    for key, value in metrics.items():
        table.add_row(key, _text(value))
    out.print(table)


@backtests_app.command("compare")
def compare_runs(
    runs: Annotated[list[int], typer.Argument(help="Run ids.")],
    as_json: JsonOpt = False,
) -> None:
    """Runs side by side: parameters and the main metrics."""
    with _database() as db:
        rows = db.backtests.compare(runs)
    if as_json:
        _print_json(rows)
        return
    table = Table("metric", *(f"run {r['run_id']}" for r in rows))
    table.add_row("strategy", *(r["strategy"] for r in rows))
    table.add_row("parameters", *(", ".join(f"{k}={v}" for k, v in r["parameters"].items()) for r in rows))
    for key in backtests.COMPARED:
        table.add_row(key, *(_text(r.get(key)) for r in rows))
    out.print(table)


@backtests_app.command("report")
def report_run(
    run: Annotated[int, typer.Argument(help="The run id.")],
    html: Annotated[Path, typer.Option("--html", help="The HTML file to write.")],
    compare: Annotated[list[int] | None, typer.Option("--compare", help="Another run to overlay (repeatable).")] = None,
    title: Annotated[str | None, typer.Option(help="The page title.")] = None,
) -> None:
    """Write a run's tear sheet (equity, drawdown, monthly returns, rolling Sharpe, metrics) as one HTML file that
    needs no network; open it in any browser."""
    with _database() as db:
        path = db.backtests.report(run, html, compare=compare or (), title=title)
    out.print(f"wrote {path.resolve()}", highlight=False)


def _id_or_name(value: str) -> int | str:
    return int(value) if value.isdigit() else value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _pct(value: Any) -> str:
    return "" if value is None else f"{float(value) * 100:.2f}%"


def _num(value: Any) -> str:
    return "" if value is None else f"{float(value):.3f}"

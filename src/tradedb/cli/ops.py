"""Operations: ``setup``, ``verify``, ``health``, ``backup``, ``restore``, ``backups``, ``prefect``, ``demo``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tradedb.cli._common import _cell, _print_json, _settings, app, err, out
from tradedb.cli._lazy import lazy
from tradedb.db.embedded import server_url
from tradedb.errors import ConfigError

if TYPE_CHECKING:
    from tradedb.ops import backup as backup_module
    from tradedb.ops import demo as demo_module
    from tradedb.ops import health as health_module
    from tradedb.ops import logins
    from tradedb.ops import setup as provision
    from tradedb.ops import verify as verify_module
else:
    backup_module = lazy("tradedb.ops.backup")
    demo_module = lazy("tradedb.ops.demo")
    health_module = lazy("tradedb.ops.health")
    logins = lazy("tradedb.ops.logins")
    provision = lazy("tradedb.ops.setup")
    verify_module = lazy("tradedb.ops.verify")

# --- setup, verify, health, demo --------------------------------------------------------------------------


def _print_problems(problems: list[verify_module.Problem]) -> None:
    table = Table("kind", "object", "problem", title=f"{len(problems)} problem(s)")
    for p in problems:
        table.add_row(p.kind, p.name, p.detail)
    out.print(table)


@app.command()
def setup(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the SQL instead of running it.")] = False,
    prefect: Annotated[bool, typer.Option("--prefect", help="Also print PREFECT_API_DATABASE_CONNECTION_URL.")] = False,
    show_password: Annotated[bool, typer.Option(help="With --prefect: print the URL's password.")] = False,
    pg_stat_statements: Annotated[
        bool, typer.Option("--pg-stat-statements", help="Also create pg_stat_statements (for tradedb top).")
    ] = False,
    service_users: Annotated[
        bool,
        typer.Option(
            "--service-users",
            help="Also a LOGIN user per service, a member of its role only; generated passwords are printed once "
            "and kept encrypted (TRADEDB_ENCRYPTION_KEYS), or taken from TRADEDB_<SERVICE>_DATABASE_URL.",
        ),
    ] = False,
) -> None:
    """Create databases, schemas and roles, migrate to head, grant, seed, then verify. Safe to re-run."""
    settings = _settings()
    report = provision.setup(settings=settings, dry_run=dry_run, service_users=service_users)
    if pg_stat_statements and not dry_run:
        out.print(provision.enable_pg_stat_statements(settings=settings), highlight=False, soft_wrap=True)
    if prefect and not dry_run:
        url = provision.prefect_database_url(
            settings, server_url(settings), password=report.prefect_password, show_password=show_password
        )
        out.print(f"PREFECT_API_DATABASE_CONNECTION_URL={url}", highlight=False, soft_wrap=True)
        if report.prefect_password is not None and not show_password:
            err.print(
                f"the login {settings.prefect_role()} was created with a generated password that is not kept: set "
                "PREFECT_DB_PASSWORD and run setup again to give it yours (or pass --show-password when it is created)"
            )
    if dry_run:
        for statement in report.sql:
            sys.stdout.write(statement.rstrip().rstrip(";") + ";\n")
        return
    for line in report.summary():
        out.print(line, highlight=False, soft_wrap=True)
    if report.service_passwords:
        err.print("service logins created; their URLs are shown this once (the passwords are kept encrypted):")
        for service, password in report.service_passwords.items():
            login = logins.login_url(settings, server_url(settings), service, password)
            out.print(f"TRADEDB_{service.upper()}_DATABASE_URL={login}", highlight=False, soft_wrap=True)
    if not report.actions:
        out.print("nothing to change")
    out.print(f"setup verified in {report.timings.get('total', 0.0):.2f} s")


logins_app = typer.Typer(help="Per-service logins (tradedb setup --service-users).", no_args_is_help=True)
app.add_typer(logins_app, name="logins")


@logins_app.command("rotate")
def logins_rotate(service: str) -> None:
    """Give a service's login a new password (kept encrypted) and print its URL once; open connections stay."""
    settings = _settings()
    password = logins.rotate_password(service, settings=settings)
    out.print(
        f"TRADEDB_{service.upper()}_DATABASE_URL={logins.login_url(settings, server_url(settings), service, password)}",
        highlight=False,
        soft_wrap=True,
    )


@app.command()
def verify(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Check databases, schemas, tables, indexes, constraints, partitions, roles, migrations and drift."""
    problems = verify_module.verify(settings=_settings())
    if as_json:
        _print_json({"ok": not problems, "problems": [p.as_dict() for p in problems]})
    elif problems:
        _print_problems(problems)
    else:
        out.print("ok: the database matches the models")
    if problems:
        raise typer.Exit(1)


@app.command()
def health(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    wait: Annotated[
        float, typer.Option(help="Wait up to this many seconds for the server to accept connections.")
    ] = 0.0,
    ready: Annotated[
        bool, typer.Option("--ready", help="Readiness probe: a pooled connection works and migrations are at head.")
    ] = False,
    live: Annotated[bool, typer.Option("--live", help="Liveness probe: never the database (see --heartbeat).")] = False,
    heartbeat: Annotated[
        Path | None, typer.Option(help="With --live: a file the worker touches (tradedb events relay --heartbeat).")
    ] = None,
    max_age: Annotated[float, typer.Option(help="With --heartbeat: the oldest touch still alive, seconds.")] = 60.0,
) -> None:
    """Report server version, latency, extensions and database sizes; non-zero exit when unreachable.

    With --ready or --live, run that probe only (exit 1 when it fails), as Kubernetes probes do."""
    if ready or live:
        probe = (
            health_module.readiness(settings=_settings())
            if ready
            else health_module.liveness(heartbeat=heartbeat, max_age=max_age)
        )
        if as_json:
            _print_json(probe.as_dict())
        else:
            out.print(
                ("ready" if ready else "alive") if probe.ok else "not " + ("ready" if ready else "alive"),
                probe.summary(),
                highlight=False,
                soft_wrap=True,
            )
        if not probe.ok:
            raise typer.Exit(1)
        return
    report = health_module.health(settings=_settings(), wait=wait)
    if as_json:
        _print_json(report.as_dict())
        return
    table = Table(show_header=False)
    table.add_row("server", report.url)
    table.add_row("version", report.server_version)
    table.add_row("latency (median of 5)", f"{report.latency_ms:.3f} ms (checkout + SELECT 1 through a pool)")
    table.add_row("TLS", report.tls or "not in use")
    pool = report.pool
    table.add_row(
        "pool",
        f"min {pool['min_size']}, max {pool['max_size']}, checkout timeout {pool['timeout_s']:g} s, "
        f"max lifetime {pool['max_lifetime_s']:g} s, max idle {pool['max_idle_s']:g} s"
        + (", PgBouncer mode" if pool["pgbouncer"] else ""),
    )
    for replica in report.replicas:
        state = (
            f"lag {replica['lag_seconds'] or 0:.3f} s / {replica['lag_bytes'] or 0:.0f} bytes"
            if replica["reachable"]
            else f"unreachable: {replica['error']}"
        )
        table.add_row(f"replica {replica['url']}", state)
    table.add_row("in recovery", str(report.in_recovery))
    table.add_row("extensions available", ", ".join(report.extensions_available) or "(none of interest)")
    table.add_row("extensions installed", ", ".join(report.extensions_installed) or "(none)")
    for name, size in report.database_sizes.items():
        table.add_row(f"size of {name}", f"{size / 1e6:.1f} MB")
    for node in report.cluster_nodes:
        state = "" if node["active"] else ", inactive"
        table.add_row(f"citus {node['role']} {node['node']}", f"{node['shards']} shards{state}")
    out.print(table)


@app.command("backup")
def backup_command(
    folder: Annotated[Path, typer.Option(help="Backup folder.")] = Path("backups"),
    schema: Annotated[list[str] | None, typer.Option(help="Schema to include (repeat); default: all.")] = None,
    verify: Annotated[bool, typer.Option("--verify", help="Restore into a scratch database and check it.")] = False,
) -> None:
    """Dump the trading database (pg_dump custom format) with a manifest; optionally prove it restores."""
    with err.status("backing up..."):
        manifest = backup_module.create(settings=_settings(), folder=folder, schemas=schema, verify=verify)
    rows = sum(manifest.row_counts.values())
    out.print(
        f"{folder / manifest.name}.dump: {len(manifest.row_counts)} tables, {rows:,} rows, sha256 "
        f"{manifest.sha256[:16]}..." + (", verified by a restore" if manifest.verified_at else "")
    )


@app.command("restore")
def restore_command(
    file: Annotated[Path, typer.Argument(help="The .dump file (its .json manifest beside it).")],
    into: Annotated[str, typer.Option(help="Database to restore into (created when missing).")],
    force: Annotated[bool, typer.Option(help="Replace the contents of a non-empty database.")] = False,
) -> None:
    """Restore a backup after checking its sha256; compare row counts with the manifest; exit non-zero on any
    difference."""
    settings = _settings()
    counts = backup_module.restore(file, into=into, settings=settings, force=force)
    problems = [
        p
        for p in verify_module.verify(settings=settings.model_copy(update={"trading_db_name": into}))
        if p.kind not in ("database",)
    ]
    if problems:
        _print_problems(problems)
        raise typer.Exit(1)
    out.print(
        f"restored {len(counts)} tables, {sum(counts.values()):,} rows into {into}; row counts match the "
        f"manifest and the database verifies"
    )


prefect_app = typer.Typer(
    help="Prefect flows: backups, restore checks, maintenance (extra `prefect`).", no_args_is_help=True
)
app.add_typer(prefect_app, name="prefect")


@prefect_app.command("deploy")
def prefect_deploy(
    folder: Annotated[str, typer.Option(help="Backup folder the flows use.")] = "backups",
    backup_cron: Annotated[str, typer.Option(help="Schedule of the backup flow (cron, UTC).")] = "0 4 * * 0",
    pitr: Annotated[
        bool, typer.Option("--pitr", help="Also weekly full and daily incremental pgBackRest backups.")
    ] = False,
) -> None:
    """Register the backup, restore-check and maintenance flows with their schedules (needs PREFECT_API_URL)."""
    try:
        from tradedb.ops import flows
    except ImportError:
        raise ConfigError("the Prefect flows need the extra: pip install 'tradedb[prefect]'") from None
    for deployment_id in flows.deploy(folder=folder, backup_cron=backup_cron, pitr_backups=pitr):
        out.print(f"registered deployment {deployment_id}")


backups_app = typer.Typer(help="List and prune the backups of a folder.", no_args_is_help=True)
app.add_typer(backups_app, name="backups")


@backups_app.command("list")
def backups_list(folder: Annotated[Path, typer.Option(help="Backup folder.")] = Path("backups")) -> None:
    """List backups, newest first."""
    table = Table("backup", "started", "tables", "rows", "verified", title=str(folder))
    for dump, manifest in backup_module.list_backups(folder):
        if manifest is None:
            table.add_row(dump.name, "(no manifest)", "", "", "")
            continue
        table.add_row(
            dump.name,
            manifest.started_at,
            str(len(manifest.row_counts)),
            f"{sum(manifest.row_counts.values()):,}",
            manifest.verified_at or "no",
        )
    out.print(table)


@backups_app.command("prune")
def backups_prune(
    folder: Annotated[Path, typer.Option(help="Backup folder.")] = Path("backups"),
    keep_daily: Annotated[int, typer.Option(help="Keep the newest backup of this many days.")] = 7,
    keep_weekly: Annotated[int, typer.Option(help="Keep the newest backup of this many ISO weeks.")] = 4,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would go.")] = False,
) -> None:
    """Delete backups beyond the retention; the newest good backup is always kept."""
    doomed = backup_module.prune(folder, keep_daily=keep_daily, keep_weekly=keep_weekly, dry_run=dry_run)
    for dump in doomed:
        out.print(f"{'would delete' if dry_run else 'deleted'} {dump.name}")
    out.print(f"{len(doomed)} backup(s) {'to prune' if dry_run else 'pruned'}")


@app.command()
def demo(
    url: Annotated[str | None, typer.Option(help="Use this server instead of the embedded one.")] = None,
) -> None:
    """Start the embedded server, set up, load a deterministic sample market, and print a summary."""
    settings = _settings()
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("setting up", total=0)

        def progress(label: str, done: int, total: int) -> None:
            bar.update(task, description=label, completed=done, total=total)

        report = demo_module.run_demo(settings=settings, url=url, progress=progress)
    out.print(f"[bold]tradedb demo[/bold] on {report.server_version}: {report.url}", highlight=False, soft_wrap=True)
    schemas = Table("schema", "tables", title="schemas")
    for schema, count in report.tables_per_schema.items():
        schemas.add_row(schema, str(count))
    out.print(schemas)
    rows = Table("table", "rows", title="rows loaded")
    for table, count in sorted(report.rows.items()):
        rows.add_row(table, f"{count:,}")
    out.print(rows)
    timings = Table("step", "seconds", title="timings")
    for step, seconds in report.timings.items():
        timings.add_row(step, f"{seconds:.2f}")
    out.print(timings)
    book = Table(
        "symbol",
        "quantity",
        "avg price",
        "realized pnl (net)",
        "commission",
        title=f"positions of {demo_module.DEMO_ACCOUNT}",
    )
    for p in report.positions:
        book.add_row(
            p["symbol"],
            _cell(p["quantity"]),
            _cell(p["avg_price"]),
            _cell(p["realized_pnl"]),
            _cell(p["total_commission"]),
        )
    out.print(book)
    total = sum(p["realized_pnl"] for p in report.positions)
    out.print(f"realized PnL, net of commissions: {total}")
    rate = report.bars_loaded / report.timings["load sample"] if report.timings.get("load sample") else 0.0
    out.print(f"{report.partitions} partitions; {report.bars_loaded:,} bars loaded ({rate:,.0f} rows/s)")
    q = report.quotes
    out.print(
        f"{q['rows']:,} quotes written ({q['mode']}) in {q['seconds']:.2f} s: {q['rows_per_second']:,.0f} rows/s; "
        f"coverage: {q['series']} series, {q['stored']:,} quotes from {q['first']:%Y-%m-%d %H:%M} "
        f"to {q['last']:%Y-%m-%d %H:%M} UTC (`tradedb coverage`)"
    )
    bt = report.backtest
    metrics = Table("metric", "value", title=f"backtest {bt['run_id']}: AAPL 1m, MA 10/30")
    for key, label in (
        ("total_return", "total return"),
        ("cagr", "CAGR"),
        ("annual_volatility", "annual volatility"),
        ("sharpe_ratio", "Sharpe"),
        ("sortino_ratio", "Sortino"),
        ("max_drawdown", "max drawdown"),
        ("trade_count", "trades"),
        ("win_rate", "win rate"),
        ("exposure", "exposure"),
    ):
        value = bt["metrics"].get(key)
        metrics.add_row(label, "" if value is None else f"{value:.4g}")
    out.print(metrics)
    again = "" if bt["created"] else " (recorded by an earlier demo: the same run)"
    out.print(
        f"backtest recorded as run {bt['run_id']}{again}; tear sheet: {bt['path']}", highlight=False, soft_wrap=True
    )
    risk = report.risk
    out.print(
        f"risk drill on {risk['account']}: {risk['breach'] or 'no breach'}"
        + (f" (risk event {risk['risk_event']})" if risk["risk_event"] else "")
        + (", account halted" if risk["halted"] else "")
        + "; webhook notification: "
        + (", ".join(f"{status} on attempt {n}" for status, n, _ in risk["notifications"]) or "none")
        + " (`tradedb risk events`, `tradedb notify deliveries`)",
        highlight=False,
        soft_wrap=True,
    )
    ev = report.events
    kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(ev["by_type"].items())) or "none new"
    out.print(
        f"events to consumer group {demo_module.DEMO_GROUP} ({ev['backend']} streams): {kinds}"
        " (`tradedb events status`, `tradedb events tail`)",
        highlight=False,
        soft_wrap=True,
    )
    for event in ev["recent"]:
        payload = json.dumps(event["payload"], default=str)
        out.print(
            f"  {event['stream']}/{event['aggregate_id']} #{event['seq']} {event['type']}: {payload[:100]}",
            highlight=False,
            soft_wrap=True,
        )
    if url is None:
        out.print("the embedded server keeps running: `tradedb db url` prints its URL, `tradedb db stop` stops it")

"""The ``tradedb`` command: a thin layer over the public functions; errors become one line and an exit code."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tradedb import audit as audit_module
from tradedb import backup as backup_module
from tradedb import crypto, provision
from tradedb import demo as demo_module
from tradedb import health as health_module
from tradedb import migrate as migrate_module
from tradedb import roles as roles_module
from tradedb import verify as verify_module
from tradedb._secrets import mask_secrets
from tradedb._version import __version__
from tradedb.database import Database, connect
from tradedb.embedded import EmbeddedServer, server_url
from tradedb.errors import ConfigError, TradeDBError
from tradedb.schema import SERVICE_SCHEMAS
from tradedb.settings import Settings, load_settings

ENV_HELP = (
    "Configuration comes from the environment or a .env file: DATABASE_URL (or TRADEDB_DATABASE_URL), else "
    "POSTGRES_HOST/PORT/USER/PASSWORD with TRADING_DB_NAME; with neither, tradedb uses its embedded server "
    "(TRADEDB_HOME, TRADEDB_PG_BINDIR, TRADEDB_EMBEDDED_USER). See the README for every variable."
)

app = typer.Typer(
    help=f"tradedb: the PostgreSQL foundation of a trading platform. {ENV_HELP}",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(
    help="Manage the embedded PostgreSQL server (used when no DATABASE_URL is set).", no_args_is_help=True
)
migrate_app = typer.Typer(help="Schema migrations (Alembic, shipped inside tradedb).", no_args_is_help=True)
secrets_app = typer.Typer(
    help="Secrets encrypted in the application (AES-GCM) with TRADEDB_ENCRYPTION_KEYS (id:base64key, newest first).",
    no_args_is_help=True,
)
app.add_typer(secrets_app, name="secrets")
app.add_typer(db_app, name="db")
app.add_typer(migrate_app, name="migrate")

# Piped output is not cut to 80 columns: names in tables must stay whole for grep and logs.
out = Console(width=None if sys.stdout.isatty() else 240)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 240)
_state: dict[str, Any] = {"verbose": False}


class _MaskingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return mask_secrets(super().format(record))


def _configure_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _MaskingFormatter("tradedb: %(message)s" if not verbose else "%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("tradedb").setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("alembic").setLevel(logging.INFO if verbose else logging.WARNING)


def _settings() -> Settings:
    return load_settings()


def _print_json(data: Any) -> None:
    out.print_json(json.dumps(data, default=str))


@app.callback()
def main_options(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show debug logs and tracebacks.")] = False,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    """Global options."""
    _state["verbose"] = verbose
    _configure_logging(verbose)
    if version:
        out.print(f"tradedb {__version__}")
        raise typer.Exit(0)


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


# --- migrate -----------------------------------------------------------------------------------------------


def _print_status(state: migrate_module.MigrationStatus) -> None:
    out.print(f"current: {', '.join(state.current) or '(none)'}")
    out.print(f"head:    {', '.join(state.heads)}")
    out.print(f"pending: {', '.join(state.pending) or '(none)'}")


@migrate_app.command("upgrade")
def migrate_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Upgrade the database to REVISION (default head)."""
    _print_status(migrate_module.upgrade(revision, settings=_settings()))


@migrate_app.command("downgrade")
def migrate_downgrade(revision: Annotated[str, typer.Argument(help="Target revision, -1, or base.")]) -> None:
    """Downgrade the database to REVISION."""
    _print_status(migrate_module.downgrade(revision, settings=_settings()))


@migrate_app.command("status")
def migrate_status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Show the current revision and what is pending; exits 1 when revisions are pending."""
    state = migrate_module.status(settings=_settings())
    if as_json:
        _print_json({"current": state.current, "heads": state.heads, "pending": state.pending})
    else:
        _print_status(state)
    if state.pending:
        raise typer.Exit(1)


@migrate_app.command("history")
def migrate_history() -> None:
    """List the shipped revisions, oldest first."""
    table = Table("revision", "down", "head", "message")
    for rev in migrate_module.history(settings=_settings()):
        table.add_row(rev.revision, rev.down_revision or "", "yes" if rev.is_head else "", rev.message)
    out.print(table)


@migrate_app.command("generate")
def migrate_generate(
    message: Annotated[str, typer.Option("--message", "-m", help="What the revision does.")],
    empty: Annotated[bool, typer.Option(help="Write an empty revision instead of comparing models.")] = False,
) -> None:
    """Write a new revision (autogenerated from the models against the database)."""
    path = migrate_module.generate(message, autogenerate=not empty, settings=_settings())
    out.print(f"wrote {path}")


@migrate_app.command("check")
def migrate_check() -> None:
    """Exit non-zero when revisions are pending or the models and the database differ."""
    state, differences = migrate_module.check(settings=_settings())
    if state.pending:
        err.print(f"pending revisions: {', '.join(state.pending)}")
    for line in differences:
        err.print(f"drift: {line}")
    if state.pending or differences:
        raise typer.Exit(1)
    out.print(f"up to date at {', '.join(state.current)}; models match the database")


@migrate_app.command("sql")
def migrate_sql(
    start: Annotated[str | None, typer.Option("--from", help="Start revision (default: empty database).")] = None,
    end: Annotated[str, typer.Option("--to", help="End revision.")] = "head",
) -> None:
    """Print the SQL of the migrations without touching a database (offline mode)."""
    sys.stdout.write(migrate_module.offline_sql(start, end, settings=_settings()))


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
) -> None:
    """Create databases, schemas and roles, migrate to head, grant, seed, then verify. Safe to re-run."""
    settings = _settings()
    report = provision.setup(settings=settings, dry_run=dry_run)
    if prefect and not dry_run:
        url = provision.prefect_database_url(settings, server_url(settings), show_password=show_password)
        out.print(f"PREFECT_API_DATABASE_CONNECTION_URL={url}", highlight=False, soft_wrap=True)
    if dry_run:
        for statement in report.sql:
            sys.stdout.write(statement.rstrip().rstrip(";") + ";\n")
        return
    for action in report.actions:
        out.print(f"- {action}")
    if not report.actions:
        out.print("nothing to change")
    out.print(f"setup verified in {report.timings.get('total', 0.0):.2f} s")


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
) -> None:
    """Report server version, latency, extensions and database sizes; non-zero exit when unreachable."""
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
    out.print(table)


def _database() -> Database:
    return connect(settings=_settings(), min_size=0, max_size=2, name="tradedb-cli")


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


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
) -> None:
    """Register the backup, restore-check and maintenance flows with their schedules (needs PREFECT_API_URL)."""
    try:
        from tradedb import flows
    except ImportError:
        raise ConfigError("the Prefect flows need the extra: pip install 'tradedb[prefect]'") from None
    for deployment_id in flows.deploy(folder=folder, backup_cron=backup_cron):
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


@app.command("roles")
def roles_matrix() -> None:
    """Print the live privilege matrix: role x schema x privilege (S select, I insert, U update, D delete)."""
    settings = _settings()
    with _database() as db, db.connection() as conn:
        live = roles_module.live_table_privileges(conn, settings.role_prefix)
        rls = conn.execute(
            "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relrowsecurity AND NOT c.relispartition ORDER BY 1"
        ).fetchall()
    schemas = list(SERVICE_SCHEMAS)
    table = Table("role", *schemas, title="privileges per schema (lower case: on some tables only)")
    for role in roles_module.SERVICE_ROLES:
        name = roles_module.role_name(settings.role_prefix, role.service)
        cells = []
        for schema in schemas:
            sets = [p for (r, t), p in live.items() if r == name and t.startswith(schema + ".")]
            letters = ""
            for privilege in roles_module.PRIVILEGES:
                held = sum(privilege in p for p in sets)
                letters += privilege[0] if sets and held == len(sets) else privilege[0].lower() if held else ""
            cells.append(letters or "-")
        table.add_row(name, *cells)
    out.print(table)
    out.print("row-level security by account on: " + ", ".join(r[0] for r in rls))


audit_app = typer.Typer(help="The hash-chained audit trail (shared.audit_log).", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute the hash chain; name the first broken link and exit 1 when there is one."""
    with _database() as db:
        report = audit_module.verify_chain(db)
    if report.broken_at is None:
        out.print(f"ok: {report.rows} audit row(s), the hash chain is intact")
        return
    err.print(f"audit chain broken at audit_id {report.broken_at}: {report.reason}")
    raise typer.Exit(1)


@audit_app.command("show")
def audit_show(
    table: Annotated[str | None, typer.Option(help="Only this table (schema.table).")] = None,
    since: Annotated[
        datetime | None,
        typer.Option(
            help="Only changes at or after this time (ISO 8601, with zone).",
            formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z"],
        ),
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
) -> None:
    """List audited changes, newest first."""
    with _database() as db:
        rows = audit_module.changes(db, table=table, since=since, limit=limit)
    out_table = Table("id", "at", "table", "op", "key", "db user", "app user", title=f"{len(rows)} change(s)")
    for r in rows:
        out_table.add_row(
            str(r["audit_id"]),
            _cell(r["changed_at"]),
            f"{r['table_schema']}.{r['table_name']}",
            r["operation"],
            json.dumps(r["row_key"]),
            _cell(r["db_user"]),
            _cell(r["app_user"]),
        )
    out.print(out_table)


@secrets_app.command("generate-key")
def secrets_generate_key(key_id: Annotated[str, typer.Option(help="Id for the new key.")] = "k1") -> None:
    """Print a new random AES-256 key as an entry for TRADEDB_ENCRYPTION_KEYS (store it in your secret store)."""
    out.print(f"{key_id}:{crypto.generate_key()}", highlight=False)


@secrets_app.command("set")
def secrets_set(
    key: Annotated[str, typer.Argument(help="The shared.system_config key.")],
    description: Annotated[str | None, typer.Option(help="What the secret is for.")] = None,
) -> None:
    """Store a secret read from standard input (never from the command line), encrypted."""
    value = sys.stdin.read().rstrip("\n")
    with _database() as db:
        kid = crypto.set_secret(db, key, value, description=description)
    out.print(f"stored {key} encrypted with key {kid}")


@secrets_app.command("list")
def secrets_list() -> None:
    """List the stored secrets and the key each is encrypted with (never their values)."""
    with _database() as db:
        rows = db.fetch_all(
            "SELECT 'system_config' AS kind, key AS name, key_id, updated_at FROM shared.system_config"
            " WHERE is_secret UNION ALL SELECT 'notification', name, key_id, updated_at"
            " FROM notification.notification_configs WHERE secret_encrypted IS NOT NULL ORDER BY 1, 2",
            readonly=False,
        )
    table = Table("kind", "name", "key id", "updated", title=f"{len(rows)} secret(s)")
    for r in rows:
        table.add_row(r["kind"], r["name"], _cell(r["key_id"]), _cell(r["updated_at"]))
    out.print(table)


@secrets_app.command("rotate")
def secrets_rotate() -> None:
    """Re-encrypt every secret with the newest key of TRADEDB_ENCRYPTION_KEYS."""
    with _database() as db:
        changed = crypto.rotate(db)
        newest = crypto.Keyring.from_settings(db.settings).newest
    out.print(f"re-encrypted {changed} secret(s) with key {newest}")


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
    if url is None:
        out.print("the embedded server keeps running: `tradedb db url` prints its URL, `tradedb db stop` stops it")


# Market data commands (ingest, coverage, quality, maintain) live in their own module; importing it registers them.
from tradedb import cli_market  # noqa: E402

__all__ = ["app", "cli_market", "main"]


def main() -> None:
    """Run the CLI: user errors print one line (no traceback unless --verbose) and exit non-zero."""
    try:
        app()  # standalone: typer handles --help, usage errors and typer.Exit itself
    except TradeDBError as exc:
        if _state["verbose"]:
            err.print_exception()
        err.print(f"[red]error:[/red] {exc.message}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()

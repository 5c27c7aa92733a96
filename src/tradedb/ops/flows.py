"""Prefect flows: weekly backups, restore checks, partition maintenance, mark-to-market (with the post-trade risk
check), daily performance and, where point-in-time recovery is set up, pgBackRest backups (extra ``prefect``).

The flows read their settings from the environment (DATABASE_URL etc.), as every tradedb command does, so a
Prefect worker needs the same variables as the CLI. ``deploy()`` registers them with their schedules.
"""

from __future__ import annotations

from collections.abc import Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.deployments.runner import RunnerDeployment
from prefect.logging import get_run_logger
from prefect.schedules import Cron, Schedule
from psycopg import sql

from tradedb.database import connect
from tradedb.db import direct as _connect
from tradedb.db.embedded import server_url
from tradedb.errors import BackupError
from tradedb.ops import archive, backup, maintenance, pitr
from tradedb.settings import load_settings, with_dbname

#: Tables whose planner statistics matter most (ANALYZEd by the maintenance flow).
HOT_TABLES = (
    "data_ingestion.quotes",
    "data_ingestion.market_trades",
    "data_ingestion.bars",
    "execution.orders",
    "execution.fills",
    "execution.positions",
)
BACKUP_CRON = "0 4 * * 0"  # Sundays 04:00 UTC
RESTORE_CHECK_CRON = "0 6 * * *"
MAINTENANCE_CRON = "15 * * * *"
MARK_TO_MARKET_CRON = "*/5 * * * *"
DAILY_PERFORMANCE_CRON = "30 0 * * *"  # after the UTC day closed
PITR_FULL_CRON = "0 3 * * 0"  # Sundays 03:00 UTC, before the logical backup
PITR_INCREMENTAL_CRON = "0 3 * * 1-6"


@task(retries=2, retry_delay_seconds=60, timeout_seconds=3600)
def backup_task(folder: str, verify: bool) -> dict[str, Any]:
    """Make one backup (and prove it restores when ``verify``)."""
    manifest = backup.create(folder=Path(folder), verify=verify)
    return {
        "name": manifest.name,
        "tables": len(manifest.row_counts),
        "rows": sum(manifest.row_counts.values()),
        "sha256": manifest.sha256,
        "verified_at": manifest.verified_at,
    }


@flow(name="tradedb-backup", retries=1, retry_delay_seconds=300, timeout_seconds=7200)
def backup_flow(
    folder: str = "backups", verify: bool = True, keep_daily: int = 7, keep_weekly: int = 4
) -> dict[str, Any]:
    """Back up the trading database, verify the backup by restoring it, then prune by retention."""
    logger = get_run_logger()
    made = backup_task(folder, verify)
    pruned = backup.prune(Path(folder), keep_daily=keep_daily, keep_weekly=keep_weekly)
    logger.info("backup %s: %s rows; pruned %s old backup(s)", made["name"], made["rows"], len(pruned))
    return {**made, "pruned": [p.name for p in pruned]}


@flow(name="tradedb-restore-check", timeout_seconds=7200)
def restore_check_flow(folder: str = "backups") -> dict[str, Any]:
    """Restore the latest backup into a scratch database and check it; fail when it does not verify."""
    backups = [(d, m) for d, m in backup.list_backups(Path(folder)) if m is not None]
    if not backups:
        raise BackupError(f"no backup in {folder} to check")
    dump, _ = backups[0]
    manifest = backup.verify_backup(dump)
    get_run_logger().info("restore check of %s passed", dump.name)
    return {"name": manifest.name, "verified_at": manifest.verified_at, "rows": sum(manifest.row_counts.values())}


@flow(name="tradedb-maintenance", timeout_seconds=3600)
def maintenance_flow(ahead: int = 2, book_snapshots: str | None = "15min") -> dict[str, Any]:
    """Archive to Parquet what TRADEDB_ARCHIVE_AFTER says is old enough (when set), partition maintenance
    (``tradedb.ops.maintenance.maintain``: repair default partitions, create partitions ahead, apply
    TRADEDB_RETENTION), order book snapshots every ``book_snapshots`` up to each book's last event (None: none),
    then ANALYZE the hot tables."""
    settings = load_settings()
    archived = archive.archive_if_configured(settings)
    report = maintenance.maintain(settings=settings, ahead=ahead)
    snapshots: dict[str, int] = {}
    if book_snapshots:
        with connect(settings=settings) as db:
            snapshots = db.books.write_due_snapshots(every=book_snapshots)
    url = with_dbname(settings.direct_url() or server_url(settings), settings.trading_db_name)
    with _connect.connect(url, settings, autocommit=True) as conn:
        for hot in HOT_TABLES:
            schema, _, relation = hot.partition(".")
            conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(schema, relation)))
    get_run_logger().info(
        "created %s partition(s), moved rows into %s, dropped %s, detached %s",
        len(report.created),
        len(report.moved),
        len(report.dropped),
        len(report.detached),
    )
    archived_names = [a.partition for a in archived.archived] if archived is not None else []
    return {**report.as_dict(), "archived": archived_names, "book_snapshots": snapshots, "analyzed": list(HOT_TABLES)}


@flow(name="tradedb-mark-to-market", timeout_seconds=600)
def mark_to_market_flow() -> dict[str, Any]:
    """Mark every account with positions or PnL limits to market: check its risk limits (breaches become risk
    events and halt where a limit says so) and store the portfolio snapshot (``db.analytics.mark_to_market``)."""
    with connect(settings=load_settings()) as db:
        checks = db.analytics.mark_to_market()
    breaches = {c.account_id: [b.limit_type for b in c.breaches] for c in checks if c.breaches}
    get_run_logger().info("marked %s account(s); new breaches: %s", len(checks), breaches or "none")
    return {
        "accounts": len(checks),
        "breaches": breaches,
        "halted": [c.account_id for c in checks if c.halted],
        "unpriced": {c.account_id: c.unpriced for c in checks if c.unpriced},
    }


@flow(name="tradedb-daily-performance", timeout_seconds=3600)
def daily_performance_flow(days: int = 1) -> dict[str, Any]:
    """Compute and store the last ``days`` days' performance of every account with capital and fills."""
    with connect(settings=load_settings()) as db:
        today = db.fetch_value("SELECT (now() AT TIME ZONE 'UTC')::date", readonly=False)
        start = today - timedelta(days=days)
        stored = {a: len(db.analytics.daily_performance(a, start=start)) for a in db.analytics.accounts_with_capital()}
    get_run_logger().info("daily performance of %s account(s) from %s", len(stored), start)
    return {"start": str(start), "days": stored}


@flow(name="tradedb-pitr-backup", retries=1, retry_delay_seconds=300, timeout_seconds=7200)
def pitr_backup_flow(kind: str = "full") -> dict[str, Any]:
    """Take a pgBackRest backup (full, diff or incr) of the server `tradedb pitr setup` configured."""
    taken = pitr.backup(kind)
    get_run_logger().info("pgBackRest %s backup %s", taken["type"], taken["label"])
    return {**taken, "started_at": taken["started_at"].isoformat(), "stopped_at": taken["stopped_at"].isoformat()}


def _utc(cron: str) -> Schedule:
    return Cron(cron, timezone="UTC")


def _sync(value: RunnerDeployment | Coroutine[Any, Any, RunnerDeployment]) -> RunnerDeployment:
    # Prefect's sync_compatible methods return the value itself when called from synchronous code.
    assert isinstance(value, RunnerDeployment)
    return value


def deploy(*, folder: str = "backups", backup_cron: str = BACKUP_CRON, pitr_backups: bool = False) -> list[str]:
    """Register the five flows with their schedules (UTC) with the Prefect API; return the deployment ids.

    ``pitr_backups``: also a weekly full and a daily incremental pgBackRest backup (`tradedb pitr setup` first).
    """
    deployments: list[RunnerDeployment] = [
        _sync(
            backup_flow.to_deployment(name="weekly-backup", schedule=_utc(backup_cron), parameters={"folder": folder})
        ),
        _sync(
            restore_check_flow.to_deployment(
                name="daily-restore-check", schedule=_utc(RESTORE_CHECK_CRON), parameters={"folder": folder}
            )
        ),
        _sync(maintenance_flow.to_deployment(name="hourly-maintenance", schedule=_utc(MAINTENANCE_CRON))),
        _sync(mark_to_market_flow.to_deployment(name="mark-to-market", schedule=_utc(MARK_TO_MARKET_CRON))),
        _sync(daily_performance_flow.to_deployment(name="daily-performance", schedule=_utc(DAILY_PERFORMANCE_CRON))),
    ]
    if pitr_backups:
        for name, kind, cron in (
            ("weekly-pitr-full", "full", PITR_FULL_CRON),
            ("daily-pitr-incremental", "incr", PITR_INCREMENTAL_CRON),
        ):
            deployments.append(
                _sync(pitr_backup_flow.to_deployment(name=name, schedule=_utc(cron), parameters={"kind": kind}))
            )
    return [str(d.apply()) for d in deployments]  # apply() is sync in a sync context (Prefect's sync_compatible)

"""Partition maintenance of the time-series tables: create ahead, repair default partitions, apply retention.

``maintain()`` is what ``tradedb maintain`` and the Prefect maintenance flow run. Per partitioned table it:
1. moves rows that landed in the default partition into partitions of their own (creating them);
2. creates the partitions from now to ``ahead`` intervals ahead (width from the profile);
3. drops (or detaches) partitions that ended before ``now - retention`` for the tables given a retention,
   keeping ``data_ingestion.coverage`` right (log tables default to ``TRADEDB_LOG_RETENTION``, delivered events to
   ``TRADEDB_EVENTS_RETENTION``);
4. gives new partitions of tenant tables their row-level security, and seals the audit ledger (``ledger.seal``);
5. runs ``VACUUM (ANALYZE)`` on tables where at least 20% of the tuples (and 1,000) are dead.
Tables that are TimescaleDB hypertables are left to TimescaleDB's own policies (see ``timescale_sql``).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg import sql

from tradedb.db import direct as _connect
from tradedb.db.embedded import server_url
from tradedb.durations import parse_retention_entries
from tradedb.errors import ValidationError, translate
from tradedb.marketdata import coverage
from tradedb.schema import partitioned_tables
from tradedb.schema.partitions import (
    MONTH,
    PARTITION_BOUNDS_SQL,
    PartitionSpec,
    covers,
    create_partition_sql,
    default_partition_name,
    partitions_around,
    spec_at,
    table_interval,
)
from tradedb.schema.privileges import owner_role_name
from tradedb.security import ledger, rls
from tradedb.settings import Settings, load_settings, with_dbname

logger = logging.getLogger(__name__)

OUTBOX = "shared.event_outbox"
LOG_TABLES = ("logging.system_logs", "logging.performance_logs")
TRIM_INBOX = "DELETE FROM shared.event_inbox WHERE processed_at < %s"


@dataclass
class MaintenanceReport:
    """What one maintenance run did (or, with ``dry_run``, would do)."""

    dry_run: bool
    created: list[str] = field(default_factory=list)
    moved: dict[str, int] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    detached: list[str] = field(default_factory=list)
    hypertables: list[str] = field(default_factory=list)
    #: Partitions past retention kept because they hold events not delivered yet.
    kept: list[str] = field(default_factory=list)
    #: Inbox rows removed (events handled longer ago than the events retention).
    inbox_trimmed: int = 0
    rls_statements: int = 0
    #: The audit ledger's block sealed by this run (None: nothing committed since the last seal), and its rows.
    audit_block: int | None = None
    audit_rows_sealed: int = 0
    #: Tables vacuumed (with ANALYZE) because enough of their tuples were dead.
    vacuumed: list[str] = field(default_factory=list)
    statements: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_retention(text: str) -> dict[str, timedelta]:
    """Parse ``"quotes=30d,market_trades=12w,data_ingestion.bars=520w"`` (units h, d, w)."""
    known = {t.name: t for t in partitioned_tables()} | {f"{t.schema}.{t.name}": t for t in partitioned_tables()}
    out: dict[str, timedelta] = {}
    for name, value in parse_retention_entries(text).items():
        if name not in known:
            names = ", ".join(sorted(t.name for t in partitioned_tables()))
            raise ValidationError(f"retention: {name!r} is not a partitioned table; one of {names}")
        table = known[name]
        out[f"{table.schema}.{table.name}"] = value
    return out


def effective_retention(
    settings: Settings, retention: dict[str, timedelta] | str | None = None
) -> dict[str, timedelta]:
    """The retention ``maintain`` applies: the given (else ``TRADEDB_RETENTION``) over tradedb's defaults, which are
    delivered events for ``TRADEDB_EVENTS_RETENTION`` and log tables for ``TRADEDB_LOG_RETENTION``."""
    if isinstance(retention, str):
        retention = parse_retention(retention)
    elif retention is None:
        retention = parse_retention(settings.retention or "")
    defaults = {OUTBOX: settings.events_retention, **dict.fromkeys(LOG_TABLES, settings.log_retention)}
    return {**defaults, **retention}


#: Tables vacuumed when at least this share of their tuples is dead (and ``VACUUM_MIN_DEAD`` tuples).
VACUUM_DEAD_RATIO = 0.2
VACUUM_MIN_DEAD = 1000
NEEDS_VACUUM = """
SELECT schemaname, relname, n_dead_tup
FROM pg_stat_user_tables
WHERE n_dead_tup >= %(min_dead)s AND n_dead_tup >= %(ratio)s * (n_live_tup + n_dead_tup)
ORDER BY n_dead_tup DESC
"""


def vacuum_candidates(
    conn: psycopg.Connection[Any], *, ratio: float = VACUUM_DEAD_RATIO, min_dead: int = VACUUM_MIN_DEAD
) -> list[tuple[str, str]]:
    """Tables (schema, name; partitions each on their own) whose dead tuples reach ``ratio`` of their rows."""
    rows = conn.execute(NEEDS_VACUUM, {"ratio": ratio, "min_dead": min_dead}).fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]


def maintain(
    *,
    settings: Settings | None = None,
    url: str | None = None,
    ahead: int = 2,
    retention: dict[str, timedelta] | str | None = None,
    mode: str | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
    vacuum: bool = True,
) -> MaintenanceReport:
    """Run partition maintenance on the trading database; see the module docstring."""
    settings = settings or load_settings()
    if not isinstance(ahead, int) or not 0 <= ahead <= 1000:
        raise ValidationError("ahead must be an integer between 0 and 1000")
    mode = mode or settings.retention_mode
    if mode not in ("drop", "detach"):
        raise ValidationError(f"mode must be drop or detach; got {mode!r}")
    retention = effective_retention(settings, retention)
    now = (now or datetime.now(UTC)).astimezone(UTC)
    target = with_dbname(url or settings.direct_url() or server_url(settings), settings.trading_db_name)
    report = MaintenanceReport(dry_run=dry_run)
    with _connect.connect(target, settings, autocommit=True) as conn:
        try:
            _become_owner(conn, owner_role_name(settings.role_prefix))
            hypertables = _hypertables(conn)
            for table in partitioned_tables():
                qualified = f"{table.schema}.{table.name}"
                if qualified in hypertables:
                    report.hypertables.append(qualified)
                    continue
                worker = _TableMaintenance(conn, table, settings, report)
                worker.repair_default()
                worker.create_ahead(now, ahead)
                if qualified in retention:
                    worker.apply_retention(now - retention[qualified], mode)
            if not dry_run:
                report.rls_statements = rls.protect_partitions(conn, settings.role_prefix)
                trimmed = conn.execute(TRIM_INBOX, (now - settings.events_retention,))
                report.inbox_trimmed = trimmed.rowcount
                sealed = conn.execute(ledger.SEAL).fetchone()
                if sealed is not None:
                    report.audit_block, report.audit_rows_sealed = sealed[0], sealed[2]
            if vacuum:
                for candidate in vacuum_candidates(conn):
                    statement = sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(*candidate))
                    report.statements.append(statement.as_string(conn))
                    if not dry_run:
                        conn.execute(statement)
                    report.vacuumed.append(".".join(candidate))
        except psycopg.Error as exc:
            raise translate(exc, "maintaining partitions") from exc
    return report


def _become_owner(conn: psycopg.Connection[Any], owner: str) -> None:
    # Partitions created here belong to the owner role, like the tables migrations create.
    row = conn.execute("SELECT pg_has_role(current_user, %s, 'MEMBER')", (owner,)).fetchone()
    if row and row[0]:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(owner)))


def _hypertables(conn: psycopg.Connection[Any]) -> set[str]:
    row = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    if row is None:
        return set()
    rows = conn.execute("SELECT hypertable_schema, hypertable_name FROM timescaledb_information.hypertables")
    return {f"{schema}.{name}" for schema, name in rows.fetchall()}


class _TableMaintenance:
    def __init__(
        self, conn: psycopg.Connection[Any], table: sa.Table, settings: Settings, report: MaintenanceReport
    ) -> None:
        self.conn = conn
        self.table = table
        self.report = report
        self.column = str(table.info["partition_column"])
        self.interval = table_interval(table, settings.tick_partition_interval)
        self.parent = sql.Identifier(str(table.schema), table.name)
        rows = conn.execute(PARTITION_BOUNDS_SQL, (f"{table.schema}.{table.name}",)).fetchall()
        self.partitions = [(name, lo, hi) for name, lo, hi, is_default in rows if not is_default]
        self.has_default = any(is_default for *_, is_default in rows)

    def _run(self, statement: str | sql.Composed) -> None:
        text = statement if isinstance(statement, str) else statement.as_string(self.conn)
        self.report.statements.append(text)
        if not self.report.dry_run:
            self.conn.execute(statement)

    def _exists(self, start: datetime) -> bool:
        return covers(((lo, hi) for _, lo, hi in self.partitions), start)

    def _bucket_sql(self) -> sql.Composable:
        column = sql.Identifier(self.column)
        if self.interval == MONTH:
            return sql.SQL("date_trunc('month', {}, 'UTC')").format(column)
        assert isinstance(self.interval, timedelta)
        step = int(self.interval.total_seconds())
        return sql.SQL("to_timestamp(floor(extract(epoch FROM {}) / {}) * {})").format(
            column, sql.Literal(step), sql.Literal(step)
        )

    def repair_default(self) -> None:
        """Move rows out of the default partition into partitions of their own."""
        if not self.has_default:
            return
        default = sql.Identifier(str(self.table.schema), default_partition_name(self.table.name))
        starts = self.conn.execute(
            sql.SQL("SELECT DISTINCT {} FROM {} ORDER BY 1").format(self._bucket_sql(), default)
        ).fetchall()
        for (start,) in starts:
            spec = spec_at(self.table, start.astimezone(UTC), self.interval)
            if self._exists(spec.start):
                # A partition exists but rows sit in the default: impossible by construction (PostgreSQL routes
                # rows to the matching partition), so say so instead of guessing.
                logger.warning("rows for existing partition %s found in the default partition", spec.name)
                continue
            moved = self._move(default, spec)
            self.report.moved[f"{spec.schema}.{spec.name}"] = moved
            self.report.created.append(f"{spec.schema}.{spec.name}")
            self.partitions.append((spec.name, spec.start, spec.end))

    def _move(self, default: sql.Identifier, spec: PartitionSpec) -> int:
        column = sql.Identifier(self.column)
        bounds = (spec.start, spec.end)
        if self.report.dry_run:
            self.report.statements.append(create_partition_sql(spec))
            row = self.conn.execute(
                sql.SQL("SELECT count(*) FROM {} WHERE {} >= %s AND {} < %s").format(default, column, column), bounds
            ).fetchone()
            return int(row[0]) if row else 0
        with self.conn.transaction():
            self.conn.execute(sql.SQL("CREATE TEMP TABLE tradedb_moving (LIKE {}) ON COMMIT DROP").format(self.parent))
            cursor = self.conn.execute(
                sql.SQL(
                    "WITH d AS (DELETE FROM {} WHERE {} >= %s AND {} < %s RETURNING *) "
                    "INSERT INTO tradedb_moving SELECT * FROM d"
                ).format(default, column, column),
                bounds,
            )
            moved = cursor.rowcount
            self._run(create_partition_sql(spec))
            self.conn.execute(sql.SQL("INSERT INTO {} SELECT * FROM tradedb_moving").format(self.parent))
        return moved

    def create_ahead(self, now: datetime, ahead: int) -> None:
        for spec in partitions_around(self.table, now, self._tick(), ahead=ahead):
            if not self._exists(spec.start):
                self._run(create_partition_sql(spec))
                self.report.created.append(f"{spec.schema}.{spec.name}")
                self.partitions.append((spec.name, spec.start, spec.end))

    def _tick(self) -> timedelta:
        return self.interval if isinstance(self.interval, timedelta) else timedelta(hours=1)

    def _undelivered(self, partition: sql.Identifier) -> bool:
        query = sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE delivered_at IS NULL)").format(partition)
        row = self.conn.execute(query).fetchone()
        return bool(row and row[0])

    def apply_retention(self, cutoff: datetime, mode: str) -> None:
        """Drop or detach every partition that ended at or before ``cutoff``."""
        for name, lo, hi in sorted(self.partitions, key=lambda p: p[1] or datetime.min.replace(tzinfo=UTC)):
            if hi is None or hi > cutoff:
                continue
            partition = sql.Identifier(str(self.table.schema), name)
            qualified = f"{self.table.schema}.{name}"
            if f"{self.table.schema}.{self.table.name}" == OUTBOX and self._undelivered(partition):
                logger.warning("%s is past retention but holds undelivered events: kept (is a relay running?)", name)
                self.report.kept.append(qualified)
                continue
            covered = self.table.schema == "data_ingestion" and self.table.name in coverage.COVERED_TABLES
            covered_table = self.table.name if covered else None
            with self.conn.transaction():
                if covered_table is not None:
                    self._run(coverage.subtract_partition_sql(covered_table, partition))
                if mode == "detach":
                    self._run(sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(self.parent, partition))
                    self.report.detached.append(qualified)
                else:
                    self._run(sql.SQL("DROP TABLE {}").format(partition))
                    self.report.dropped.append(qualified)
                if covered_table is not None:
                    self._run(coverage.refresh_after_drop_sql(covered_table, lo, hi))
            self.partitions = [p for p in self.partitions if p[0] != name]


# --- TimescaleDB ----------------------------------------------------------------------------------------------


def timescale_sql(
    table: sa.Table,
    *,
    chunk_interval: timedelta | str,
    compress_after: timedelta | None = None,
    retain: timedelta | None = None,
) -> list[str]:
    """The statements that turn a native partitioned table into a TimescaleDB hypertable with policies.

    A declaratively partitioned table cannot become a hypertable in place: the statements build a plain table
    of the same shape, make it a hypertable, copy the rows, and swap the names (run them in one transaction,
    with writers stopped). Compression segments by security (market data) and orders by time, newest first.
    """
    schema, name = str(table.schema), table.name
    column = str(table.info["partition_column"])
    new = f"{name}_hypertable"
    chunk = "1 month" if chunk_interval == MONTH else _interval_text(chunk_interval)
    ident = sql.Identifier(schema, name)
    new_ident = sql.Identifier(schema, new)
    statements: list[sql.Composable] = [
        sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING COMMENTS)").format(
            new_ident, ident
        ),
        sql.SQL("SELECT create_hypertable({}, by_range({}, INTERVAL {}))").format(
            sql.Literal(f"{schema}.{new}"), sql.Literal(column), sql.Literal(chunk)
        ),
        sql.SQL("INSERT INTO {} SELECT * FROM {}").format(new_ident, ident),
        sql.SQL("DROP TABLE {}").format(ident),
        sql.SQL("ALTER TABLE {} RENAME TO {}").format(new_ident, sql.Identifier(name)),
    ]
    segment = "security_id" if "security_id" in table.c else None
    options = [
        sql.SQL("timescaledb.compress"),
        sql.SQL("timescaledb.compress_orderby = {}").format(sql.Literal(f"{column} DESC")),
    ]
    if segment:
        options.append(sql.SQL("timescaledb.compress_segmentby = {}").format(sql.Literal(segment)))
    if compress_after is not None:
        statements.append(sql.SQL("ALTER TABLE {} SET ({})").format(ident, sql.SQL(", ").join(options)))
        statements.append(
            sql.SQL("SELECT add_compression_policy({}, INTERVAL {})").format(
                sql.Literal(f"{schema}.{name}"), sql.Literal(_interval_text(compress_after))
            )
        )
    if retain is not None:
        statements.append(
            sql.SQL("SELECT add_retention_policy({}, INTERVAL {})").format(
                sql.Literal(f"{schema}.{name}"), sql.Literal(_interval_text(retain))
            )
        )
    return [s.as_string(None) for s in statements]


def _interval_text(value: timedelta | str) -> str:
    assert isinstance(value, timedelta)
    seconds = int(value.total_seconds())
    if seconds % 86400 == 0:
        return f"{seconds // 86400} days"
    return f"{seconds} seconds"


def timescale_plan(settings: Settings | None = None, *, compress_after: timedelta = timedelta(days=7)) -> list[str]:
    """The TimescaleDB statements for every market-data table, with the configured retention."""
    settings = settings or load_settings()
    retention = parse_retention(settings.retention or "")
    statements: list[str] = []
    for table in partitioned_tables():
        if table.schema != "data_ingestion" or table.name not in coverage.COVERED_TABLES:
            continue
        interval = table_interval(table, settings.tick_partition_interval)
        statements += timescale_sql(
            table,
            chunk_interval=interval,
            compress_after=compress_after,
            retain=retention.get(f"{table.schema}.{table.name}"),
        )
    return statements

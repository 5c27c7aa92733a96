"""Partition maintenance of the time-series tables: create ahead, repair default partitions, apply retention.

``maintain()`` is what ``tradedb maintain`` and the Prefect maintenance flow run. Per partitioned table it:
1. moves rows that landed in the default partition into partitions of their own (creating them);
2. creates the partitions from now to ``ahead`` intervals ahead (width from the profile);
3. drops (or detaches) partitions that ended before ``now - retention`` for the tables given a retention,
   keeping ``data_ingestion.coverage`` right (log tables default to ``TRADEDB_LOG_RETENTION``, delivered events to
   ``TRADEDB_EVENTS_RETENTION``);
4. gives new partitions of tenant tables their row-level security, and seals the audit ledger (``ledger.seal``);
5. runs ``VACUUM (ANALYZE)`` on tables where at least 20% of the tuples (and 1,000) are dead.
Tables that are TimescaleDB hypertables (``convert_to_hypertables``) get no partitions: their chunks past retention
are dropped as partitions are (coverage kept right) and chunks older than a week are compressed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
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
    hypertables,
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
    #: Hypertable chunks compressed by this run.
    compressed: list[str] = field(default_factory=list)
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
            converted = hypertables(conn)
            for table in partitioned_tables():
                qualified = f"{table.schema}.{table.name}"
                if qualified in converted:  # TimescaleDB makes its chunks; retention drops them as partitions
                    report.hypertables.append(qualified)
                    chunks = _TableMaintenance(conn, table, settings, report, chunks=True)
                    if qualified in retention:
                        chunks.apply_retention(now - retention[qualified], "drop")
                    chunks.compress(now - HYPERTABLE_COMPRESS_AFTER)
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
                # On a Citus cluster every worker keeps (and seals) a ledger of its own.
                ledger.seal_workers_of(conn, target, **settings.connection_options())
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


#: The server settings tradedb's TimescaleDB mode needs. No background workers: tradedb schedules no TimescaleDB
#: jobs (maintenance compresses and drops chunks), and a worker's connection keeps a database from being a template.
TIMESCALEDB_SERVER_SETTINGS = {
    "shared_preload_libraries": "timescaledb",
    "timescaledb.telemetry_level": "off",
    "timescaledb.max_background_workers": "0",
}
#: Hypertable chunks older than this are compressed by maintenance (the table's compression settings).
HYPERTABLE_COMPRESS_AFTER = timedelta(days=7)
_COMPRESSION_ENABLED = """
SELECT compression_enabled FROM timescaledb_information.hypertables
WHERE hypertable_schema = %s AND hypertable_name = %s
"""
#: A hypertable's chunks with their time ranges: retention drops them as it drops partitions.
_CHUNKS = """
SELECT chunk_schema, chunk_name, range_start, range_end, is_compressed FROM timescaledb_information.chunks
WHERE hypertable_schema = %s AND hypertable_name = %s ORDER BY range_start
"""


class _TableMaintenance:
    def __init__(
        self,
        conn: psycopg.Connection[Any],
        table: sa.Table,
        settings: Settings,
        report: MaintenanceReport,
        *,
        chunks: bool = False,
    ) -> None:
        self.conn = conn
        self.table = table
        self.report = report
        self.column = str(table.info["partition_column"])
        self.interval = table_interval(table, settings.tick_partition_interval)
        self.parent = sql.Identifier(str(table.schema), table.name)
        #: The schema of each partition (a hypertable's chunks live in TimescaleDB's own).
        self.schemas: dict[str, str] = {}
        self.compressed: set[str] = set()
        if chunks:
            found = conn.execute(_CHUNKS, (str(table.schema), table.name)).fetchall()
            self.schemas = {str(name): str(schema) for schema, name, *_ in found}
            self.compressed = {str(name) for _, name, _, _, done in found if done}
            self.partitions = [(str(name), lo, hi) for _, name, lo, hi, _ in found]
            self.has_default = False
            return
        rows = conn.execute(PARTITION_BOUNDS_SQL, (f"{table.schema}.{table.name}",)).fetchall()
        self.partitions = [(name, lo, hi) for name, lo, hi, is_default in rows if not is_default]
        self.has_default = any(is_default for *_, is_default in rows)

    def compress(self, cutoff: datetime) -> None:
        """Compress the hypertable's chunks that ended at or before ``cutoff`` (once compression is enabled)."""
        enabled = self.conn.execute(_COMPRESSION_ENABLED, (str(self.table.schema), self.table.name)).fetchone()
        if not enabled or not enabled[0]:
            return
        for name, _, hi in self.partitions:
            if hi is not None and hi <= cutoff and name not in self.compressed:
                qualified = f"{self.schemas[name]}.{name}"
                self._run(sql.SQL("SELECT compress_chunk({}::regclass)").format(sql.Literal(qualified)))
                self.report.compressed.append(qualified)

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
            schema = self.schemas.get(name, str(self.table.schema))
            partition = sql.Identifier(schema, name)
            qualified = f"{schema}.{name}"
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
    definitions: Sequence[str] = (),
) -> list[str]:
    """The statements that turn a native partitioned table into a TimescaleDB hypertable with compression.

    A declaratively partitioned table cannot become a hypertable in place: the statements build a plain table
    of the same shape, make it a hypertable, copy the rows, swap the names, then give it back what ``LIKE`` does
    not copy: ``definitions`` (its keys, indexes, triggers, comment and grants, read from the catalog by
    ``convert_to_hypertables``, which runs them in one transaction per table). Compression segments by security
    and orders by time, newest first. Retention stays tradedb's (``retain``: ``tradedb maintain`` drops whole chunks
    and keeps coverage right, as it does partitions), so no TimescaleDB retention policy is added.
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
        sql.SQL("SELECT create_hypertable({}, by_range({}, INTERVAL {}), create_default_indexes => false)").format(
            sql.Literal(f"{schema}.{new}"), sql.Literal(column), sql.Literal(chunk)
        ),
        sql.SQL("INSERT INTO {} SELECT * FROM {}").format(new_ident, ident),
        sql.SQL("DROP TABLE {}").format(ident),
        sql.SQL("ALTER TABLE {} RENAME TO {}").format(new_ident, sql.Identifier(name)),
        *(sql.SQL(d) for d in definitions),  # catalog-made DDL, not user input
    ]
    segment = "security_id" if "security_id" in table.c else None
    options = [
        sql.SQL("timescaledb.compress"),
        sql.SQL("timescaledb.compress_orderby = {}").format(sql.Literal(f"{column} DESC")),
    ]
    if segment:
        options.append(sql.SQL("timescaledb.compress_segmentby = {}").format(sql.Literal(segment)))
    if compress_after is not None:
        # TimescaleDB's background jobs would run as the table's owner, which has no LOGIN: `tradedb maintain`
        # compresses the chunks older than ``compress_after`` instead (hourly, in the maintenance flow).
        statements.append(sql.SQL("ALTER TABLE {} SET ({})").format(ident, sql.SQL(", ").join(options)))
        statements.append(
            sql.SQL("-- compression: `tradedb maintain` compresses chunks older than {}").format(
                sql.SQL(_interval_text(compress_after))
            )
        )
    if retain is not None:
        statements.append(
            sql.SQL("-- retention {}: `tradedb maintain` drops chunks older than that").format(
                sql.SQL(_interval_text(retain))
            )
        )
    return [s.as_string(None) for s in statements]


#: What ``CREATE TABLE ... (LIKE ...)`` leaves behind, as statements to run once the hypertable has the table's
#: name: keys, indexes that back no key (a partitioned parent's are "ON ONLY"), triggers, the comment, grants.
_DEFINITIONS = """
SELECT 1, format('ALTER TABLE %%s ADD CONSTRAINT %%I %%s', c.conrelid::regclass, c.conname, pg_get_constraintdef(c.oid))
FROM pg_constraint c WHERE c.conrelid = %(t)s::regclass AND c.contype IN ('p', 'u', 'x')
UNION ALL
SELECT 2, replace(pg_get_indexdef(i.indexrelid), ' ON ONLY ', ' ON ') FROM pg_index i
WHERE i.indrelid = %(t)s::regclass AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
UNION ALL
SELECT 3, pg_get_triggerdef(g.oid) FROM pg_trigger g WHERE g.tgrelid = %(t)s::regclass AND NOT g.tgisinternal
UNION ALL
SELECT 4, format('COMMENT ON TABLE %%s IS %%L', %(t)s::regclass, d)
FROM obj_description(%(t)s::regclass, 'pg_class') d WHERE d IS NOT NULL
UNION ALL
SELECT 5, format('GRANT %%s ON %%s TO %%s', a.privilege_type, c.oid::regclass,
                 CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END)
FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = %(t)s::regclass AND a.grantee <> c.relowner
ORDER BY 1
"""


def convert_to_hypertables(
    *,
    settings: Settings | None = None,
    url: str | None = None,
    dry_run: bool = False,
) -> list[str]:
    """Make the market-data tables TimescaleDB hypertables, one transaction per table; return the statements.

    Needs the ``timescaledb`` library preloaded on the server; creates the extension (as the connecting user, an
    administrator) and converts as the owner role, with the tables' keys, indexes, triggers, comments and grants.
    Tables that are hypertables already are left alone, so a second run changes nothing. Stop writers first: each
    table is locked while it is copied.
    """
    settings = settings or load_settings()
    target = with_dbname(url or settings.direct_url() or server_url(settings), settings.trading_db_name)
    retention = parse_retention(settings.retention or "")
    done: list[str] = []
    with _connect.connect(target, settings, autocommit=True) as conn:
        try:
            if not dry_run:
                conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            _become_owner(conn, owner_role_name(settings.role_prefix))
            converted = hypertables(conn)
            for table in _market_data_tables():
                qualified = f"{table.schema}.{table.name}"
                if qualified in converted:
                    continue
                with conn.transaction():
                    if not dry_run:
                        conn.execute(
                            sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                                sql.Identifier(str(table.schema), table.name)
                            )
                        )
                    found = conn.execute(_DEFINITIONS, {"t": qualified}).fetchall()
                    statements = timescale_sql(
                        table,
                        chunk_interval=table_interval(table, settings.tick_partition_interval),
                        compress_after=HYPERTABLE_COMPRESS_AFTER,
                        retain=retention.get(qualified),
                        definitions=[str(r[1]) for r in found],
                    )
                    for statement in statements:
                        if not dry_run and not statement.startswith("--"):
                            conn.execute(statement)  # made above from the catalog
                    done += statements
        except psycopg.Error as exc:
            raise translate(exc, "converting to hypertables") from exc
    return done


def _market_data_tables() -> list[sa.Table]:
    return [t for t in partitioned_tables() if t.schema == "data_ingestion" and t.name in coverage.COVERED_TABLES]


def _interval_text(value: timedelta | str) -> str:
    assert isinstance(value, timedelta)
    seconds = int(value.total_seconds())
    if seconds % 86400 == 0:
        return f"{seconds // 86400} days"
    return f"{seconds} seconds"


def timescale_plan(settings: Settings | None = None, *, url: str | None = None) -> list[str]:
    """The statements ``convert_to_hypertables`` would run (read from the database's catalog), without running them."""
    return convert_to_hypertables(settings=settings, url=url, dry_run=True)

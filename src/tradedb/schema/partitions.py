"""Native range partitions of the time-series tables: naming, bounds and the SQL that creates them.

Pure functions (no I/O), shared by the migrations and the partition manager.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from psycopg import sql

MONTH = "month"
DAY = timedelta(days=1)


@dataclass(frozen=True)
class PartitionSpec:
    """One partition of a time-partitioned table: its name and [start, end) bounds."""

    schema: str
    parent: str
    name: str
    start: datetime
    end: datetime


def table_interval(table: sa.Table, tick_interval: timedelta) -> timedelta | str:
    """Return the partition width of ``table``: a timedelta, or ``"month"``."""
    kind = table.info["partition_interval"]
    if kind == "tick":
        return tick_interval
    if kind == "day":
        return DAY
    return MONTH


def floor_time(moment: datetime, interval: timedelta | str) -> datetime:
    """Return the start of the partition that holds ``moment`` (UTC)."""
    moment = moment.astimezone(UTC)
    if interval == MONTH:
        return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    assert isinstance(interval, timedelta)
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if interval >= DAY:
        days = (midnight - datetime(1970, 1, 1, tzinfo=UTC)).days
        return midnight - timedelta(days=days % interval.days)
    step = int(interval.total_seconds())
    seconds = int((moment - midnight).total_seconds())
    return midnight + timedelta(seconds=seconds - seconds % step)


def next_start(start: datetime, interval: timedelta | str) -> datetime:
    """Return the start of the partition after the one starting at ``start``."""
    if interval == MONTH:
        return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    assert isinstance(interval, timedelta)
    return start + interval


def partition_name(parent: str, start: datetime, interval: timedelta | str) -> str:
    """Name a partition after its parent and start: ``quotes_p20261122`` or ``quotes_p20261122_1900``."""
    if interval == MONTH:
        return f"{parent}_p{start:%Y%m}"
    assert isinstance(interval, timedelta)
    if interval >= DAY:
        return f"{parent}_p{start:%Y%m%d}"
    return f"{parent}_p{start:%Y%m%d_%H%M}"


def spec_at(table: sa.Table, start: datetime, interval: timedelta | str) -> PartitionSpec:
    """Return the partition of ``table`` that starts at ``start`` (a partition boundary)."""
    end = next_start(start, interval)
    return PartitionSpec(str(table.schema), table.name, partition_name(table.name, start, interval), start, end)


def covers(ranges: Iterable[tuple[datetime | None, datetime | None]], moment: datetime) -> bool:
    """True when one of the [lo, hi) ``ranges`` holds ``moment`` (None: an unbounded end)."""
    return any((lo is None or lo <= moment) and (hi is None or moment < hi) for lo, hi in ranges)


def partitions_around(
    table: sa.Table, now: datetime, tick_interval: timedelta, *, ahead: int = 1
) -> list[PartitionSpec]:
    """Return the partition holding ``now`` and ``ahead`` partitions after it."""
    interval = table_interval(table, tick_interval)
    specs = [spec_at(table, floor_time(now, interval), interval)]
    for _ in range(ahead):
        specs.append(spec_at(table, specs[-1].end, interval))
    return specs


def create_partition_sql(spec: PartitionSpec) -> str:
    """Return ``CREATE TABLE IF NOT EXISTS ... PARTITION OF ... FOR VALUES FROM ... TO ...``."""
    return (
        sql.SQL("CREATE TABLE IF NOT EXISTS {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})")
        .format(
            sql.Identifier(spec.schema, spec.name),
            sql.Identifier(spec.schema, spec.parent),
            sql.Literal(spec.start.isoformat()),
            sql.Literal(spec.end.isoformat()),
        )
        .as_string(None)
    )


def default_partition_name(parent: str) -> str:
    """Return the name of a table's default partition (rows outside every range land there)."""
    return f"{parent}_default"


def create_default_partition_sql(table: sa.Table) -> str:
    """Return the SQL that creates ``table``'s default partition."""
    return (
        sql.SQL("CREATE TABLE IF NOT EXISTS {} PARTITION OF {} DEFAULT")
        .format(
            sql.Identifier(str(table.schema), default_partition_name(table.name)),
            sql.Identifier(str(table.schema), table.name),
        )
        .as_string(None)
    )


#: A partitioned table's partitions with their bounds (lo/hi NULL when unbounded; the default flagged).
PARTITION_BOUNDS_SQL = r"""
WITH parent AS (SELECT %s::regclass AS oid)
SELECT c.relname AS name,
       (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([^'']+)''\)'))[1]::timestamptz AS lo,
       (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz AS hi,
       pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT' AS is_default
FROM parent JOIN pg_class p ON p.oid = parent.oid AND p.relkind = 'p'
JOIN pg_inherits i ON i.inhparent = parent.oid JOIN pg_class c ON c.oid = i.inhrelid
UNION ALL
-- A table that is not partitioned (a TimescaleDB hypertable) holds every time itself: no partition to create.
SELECT p.relname, NULL, NULL, false FROM parent JOIN pg_class p ON p.oid = parent.oid AND p.relkind <> 'p'
ORDER BY lo NULLS FIRST
"""
#: Whether TimescaleDB is installed, then its hypertables ("schema.table"): two statements, since the second
#: names a catalog that exists only with the extension.
TIMESCALEDB_INSTALLED_SQL = "SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'"
HYPERTABLES_SQL = "SELECT hypertable_schema || '.' || hypertable_name FROM timescaledb_information.hypertables"


def hypertables(conn: Any) -> set[str]:
    """The TimescaleDB hypertables of a database ("schema.table"; none without the extension)."""
    if conn.execute(TIMESCALEDB_INSTALLED_SQL).fetchone() is None:
        return set()
    return {str(r[0]) for r in conn.execute(HYPERTABLES_SQL).fetchall()}

"""What ``tradedb top`` shows: a snapshot of the server's activity, locks, replication, partitions and sizes.

Read-only queries on PostgreSQL's statistics views, from one connection to the trading database. Plain dicts and
lists out, so ``--once --json`` prints exactly what the live view draws.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from tradedb.errors import ValidationError
from tradedb.observe import _sql as q
from tradedb.observe.records import TIMING_ATTR, Timing
from tradedb.observe.timing import logger as performance_logger

#: Rows counted in a default partition at most (the count stops there).
DEFAULT_ROWS_CAP = 1_000_000
#: A partition within this much of its retention cutoff is "near retention".
NEAR_RETENTION = timedelta(days=1)


def blocking_chains(activity: list[dict[str, Any]]) -> list[list[int]]:
    """Return each blocked backend's chain, from the backend that blocks everyone down to it: ``[root, ..., pid]``.

    A backend waiting on several takes the first; cycles (a deadlock about to be broken) stop where they repeat.
    """
    blockers = {int(a["pid"]): [int(b) for b in a["blocked_by"] or []] for a in activity}
    chains = []
    for pid, by in blockers.items():
        if not by:
            continue
        chain = [pid]
        current = by[0]
        while current not in chain:
            chain.append(current)
            parents = blockers.get(current) or []
            if not parents:
                break
            current = parents[0]
        chains.append(list(reversed(chain)))
    return sorted(chains, key=lambda c: (c[0], len(c), c))


def default_partition_rows(conn: psycopg.Connection[Any], partitions: list[dict[str, Any]]) -> dict[str, int]:
    """Rows in each default partition (capped at ``DEFAULT_ROWS_CAP``): rows ``tradedb maintain`` should move."""
    counts = {}
    for part in partitions:
        if not part["is_default"]:
            continue
        statement = sql.SQL("SELECT count(*) FROM (SELECT 1 FROM {} LIMIT %s) s").format(
            sql.Identifier(part["partition_schema"], part["partition_name"])
        )
        row = conn.execute(statement, (DEFAULT_ROWS_CAP,)).fetchone()
        counts[part["table"]] = int(row[0]) if row else 0
    return counts


def near_retention(
    partitions: list[dict[str, Any]], retention: Mapping[str, timedelta], now: datetime
) -> list[dict[str, Any]]:
    """Partitions that ``tradedb maintain`` drops within ``NEAR_RETENTION`` (or already would)."""
    out = []
    for part in partitions:
        keep = retention.get(part["table"])
        if keep is None or part["hi"] is None:
            continue
        cutoff = now - keep
        if part["hi"] <= cutoff + NEAR_RETENTION:
            out.append(
                {
                    "table": part["table"],
                    "partition": part["partition"],
                    "ends": part["hi"].isoformat(),
                    "dropped_in_s": max(0.0, (part["hi"] - cutoff).total_seconds()),
                }
            )
    return out


@dataclass
class Snapshot:
    """One look at the server (see :func:`snapshot`)."""

    taken_at: str
    activity: list[dict[str, Any]]
    blocking: list[list[int]]
    connections: dict[str, int]
    pools: dict[str, dict[str, int]]
    replication: list[dict[str, Any]]
    tables: list[dict[str, Any]]
    partitions: dict[str, int]
    default_partition_rows: dict[str, int]
    near_retention: list[dict[str, Any]]
    statements: list[dict[str, Any]] | None
    statements_note: str | None
    slow: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {key: _plain(value) for key, value in self.__dict__.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def snapshot(
    conn: psycopg.Connection[Any],
    *,
    pools: Mapping[str, Mapping[str, int]] | None = None,
    retention: Mapping[str, timedelta] | None = None,
    limit: int = 15,
    width: int = 200,
    now: datetime | None = None,
) -> Snapshot:
    """Look at the server through ``conn`` (a connection to the trading database, autocommit).

    ``pools`` are the calling process's pool statistics (``db.stats()``), ``retention`` the tables' retention
    (``TRADEDB_RETENTION`` as ``tradedb maintain`` reads it), ``limit`` the rows of each list, ``width`` the
    characters of each query shown.
    """
    for name, value in (("limit", limit), ("width", width)):
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 10_000:
            raise ValidationError(f"{name} must be an integer between 1 and 10000, got {value!r}")
    now = now or datetime.now(UTC)
    cursor = conn.cursor(row_factory=dict_row)
    activity = cursor.execute(q.ACTIVITY, {"width": width}).fetchall()
    connections = {r["state"]: r["n"] for r in cursor.execute(q.CONNECTIONS).fetchall()}
    replication = cursor.execute(q.REPLICATION).fetchall()
    tables = cursor.execute(q.TABLES, {"limit": limit}).fetchall()
    partitions = cursor.execute(q.PARTITIONS).fetchall()
    counts: dict[str, int] = {}
    for part in partitions:
        counts[part["table"]] = counts.get(part["table"], 0) + 1
    statements, note = top_statements(conn, limit=limit, width=width)
    return Snapshot(
        taken_at=now.isoformat(),
        activity=[{**a, "blocked_by": list(a["blocked_by"] or [])} for a in activity],
        blocking=blocking_chains(activity),
        connections=connections,
        pools={k: dict(v) for k, v in (pools or {}).items()},
        replication=replication,
        tables=tables,
        partitions=counts,
        default_partition_rows=default_partition_rows(conn, partitions),
        near_retention=near_retention(partitions, retention or {}, now),
        statements=statements,
        statements_note=note,
    )


def top_statements(
    conn: psycopg.Connection[Any], *, limit: int = 15, width: int = 200
) -> tuple[list[dict[str, Any]] | None, str | None]:
    """The statements with the most total time, from ``pg_stat_statements`` (None and why when unavailable)."""
    if conn.execute(q.HAS_EXTENSION, ("pg_stat_statements",)).fetchone() is None:
        return None, "pg_stat_statements is not installed (tradedb setup --pg-stat-statements)"
    try:
        with conn.transaction():
            rows = conn.cursor(row_factory=dict_row).execute(q.STATEMENTS, {"limit": limit, "width": width})
            return rows.fetchall(), None
    except psycopg.errors.ObjectNotInPrerequisiteState:
        return None, "pg_stat_statements is installed but not loaded: add it to shared_preload_libraries"


class SlowQueryCapture:
    """Statements seen running longer than ``threshold_ms``, recorded once each in ``performance_logs`` (operation
    ``slow_query``) when they finish, with the longest duration seen (a lower bound: the sampling interval)."""

    def __init__(self, threshold_ms: float) -> None:
        if not isinstance(threshold_ms, int | float) or isinstance(threshold_ms, bool) or threshold_ms <= 0:
            raise ValidationError(f"the slow-query threshold must be a positive number of ms, got {threshold_ms!r}")
        self.threshold_ms = float(threshold_ms)
        self._running: dict[tuple[int, str], dict[str, Any]] = {}

    def observe(self, activity: list[dict[str, Any]], now: datetime | None = None) -> list[dict[str, Any]]:
        """Take one sample of ``pg_stat_activity``; return (and log) the slow statements that finished since."""
        now = now or datetime.now(UTC)
        seen = set()
        for a in activity:
            if a["state"] != "active" or a["running_s"] is None or a["running_s"] * 1000 < self.threshold_ms:
                continue
            key = (int(a["pid"]), str(a["query_start"]))
            seen.add(key)
            self._running[key] = a
        finished = [self._running.pop(key) for key in list(self._running) if key not in seen]
        for a in finished:
            timing = Timing(
                ts=now,
                operation="slow_query",
                duration_ms=a["running_s"] * 1000,
                rows=None,
                memory_mb=None,
                cpu_percent=None,
                db_ms=a["running_s"] * 1000,
                data={
                    k: a[k]
                    for k in ("pid", "user", "application", "database", "wait_event_type", "wait_event", "query")
                },
            )
            performance_logger.log(
                logging.INFO,
                "slow query (%.0f ms): %s",
                timing.duration_ms,
                a["query"],
                extra={TIMING_ATTR: timing},
            )
        return finished

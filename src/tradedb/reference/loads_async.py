"""The ingest log: ``db.loads`` of the async Database (``data_ingestion.load_runs``, ``tradedb loads``).

``async with db.loads.run(source=..., table=...) as run:`` records a run as ``running`` at once (in its own
transaction, so a crash leaves it visible), then ``success`` with the rows and time range set on ``run``, or
``failed`` with the error when the block raises (the error is re-raised).
"""

# source-only: the one source of this I/O; tools/async_to_sync.py generates the sync twin.

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tradedb.errors import ValidationError
from tradedb.masking import mask_secrets
from tradedb.reference.symbology import check_source
from tradedb.schema.data_ingestion import LOAD_STATUSES

if TYPE_CHECKING:
    from tradedb.db.connections_async import AsyncConnections

START = """
INSERT INTO data_ingestion.load_runs (source, table_name, timeframe, target) VALUES
(%(source)s, %(table)s, %(timeframe)s, %(target)s) RETURNING run_id
"""
FINISH = """
UPDATE data_ingestion.load_runs
SET status = %(status)s, rows_loaded = %(rows_loaded)s, rows_rejected = %(rows_rejected)s,
    range_start = %(range_start)s, range_end = %(range_end)s, error = %(error)s, finished_at = clock_timestamp()
WHERE run_id = %(run_id)s
"""
LIST = """
SELECT run_id, source, table_name, timeframe, target, range_start, range_end, rows_loaded, rows_rejected, status,
       error, started_at, finished_at, finished_at - started_at AS duration
FROM data_ingestion.load_runs
WHERE (%(source)s::text IS NULL OR source = %(source)s) AND (%(table)s::text IS NULL OR table_name = %(table)s)
  AND (%(status)s::text IS NULL OR status = %(status)s)
ORDER BY started_at DESC, run_id DESC
LIMIT %(limit)s
"""


@dataclass
class RunningLoad:
    """A run being recorded: set what it loaded before the block ends."""

    run_id: int
    rows_loaded: int = 0
    rows_rejected: int = 0
    range_start: datetime | None = None
    range_end: datetime | None = None
    #: "success" by default; "partial" when some rows were set aside.
    status: str = "success"


class AsyncLoads:
    """The ingest log (``db.loads``)."""

    def __init__(self, db: AsyncConnections) -> None:
        self._db = db

    @asynccontextmanager
    async def run(
        self, *, source: str, table: str, target: str | None = None, timeframe: str | None = None
    ) -> AsyncIterator[RunningLoad]:
        """Record one ingest around the block (see the module docstring)."""
        check_source(source)
        if not isinstance(table, str) or not table or len(table) > 64:
            raise ValidationError(f"table must be 1-64 characters, got {table!r}")
        params = {"source": source, "table": table, "timeframe": timeframe, "target": target}
        async with self._db.connection() as conn:
            cursor = await conn.execute(START, params)
            row = await cursor.fetchone()
        assert row is not None
        run = RunningLoad(int(row[0]))
        try:
            yield run
        except BaseException as exc:
            await self._finish(run, "failed", mask_secrets(f"{type(exc).__name__}: {exc}"))
            raise
        if run.status not in LOAD_STATUSES:
            raise ValidationError(f"run status must be one of {', '.join(LOAD_STATUSES)}, got {run.status!r}")
        await self._finish(run, run.status, None)

    async def _finish(self, run: RunningLoad, status: str, error: str | None) -> None:
        params = {
            "run_id": run.run_id,
            "status": status,
            "rows_loaded": run.rows_loaded,
            "rows_rejected": run.rows_rejected,
            "range_start": run.range_start,
            "range_end": run.range_end,
            "error": error,
        }
        await self._db.execute(FINISH, params)

    async def list(
        self, *, source: str | None = None, table: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Recorded ingests, newest first."""
        if status is not None and status not in LOAD_STATUSES:
            raise ValidationError(f"status must be one of {', '.join(LOAD_STATUSES)}, got {status!r}")
        if limit < 1:
            raise ValidationError(f"limit must be at least 1, got {limit}")
        return await self._db.fetch_all(LIST, {"source": source, "table": table, "status": status, "limit": limit})


__all__ = ["AsyncLoads", "RunningLoad"]

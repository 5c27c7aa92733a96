"""The archive catalog as reads and writers see it: which files hold a table's rows of some securities in a time
range, and whether a range a write needs is archived."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tradedb.archive.files import ArchivedFile
from tradedb.schema.data_ingestion import ARCHIVED_TABLES

if TYPE_CHECKING:
    from tradedb.db.connections_async import AsyncConnections

FILES = """
SELECT table_name, partition_name, range_start, range_end, seq, first_security_id, last_security_id, location, path,
       row_count, file_bytes, file_sha256, rows_sha256
FROM data_ingestion.archives
WHERE table_name = %(table)s AND range_start < %(hi)s AND range_end > %(lo)s
  AND first_security_id <= %(last)s AND last_security_id >= %(first)s
ORDER BY range_start, seq
"""
#: Every file (of a table: NULL for all).
CATALOG = """
SELECT table_name, partition_name, range_start, range_end, seq, first_security_id, last_security_id, location, path,
       row_count, file_bytes, file_sha256, rows_sha256
FROM data_ingestion.archives
WHERE %(table)s::text IS NULL OR table_name = %(table)s
ORDER BY table_name, range_start, seq
"""
#: The archived partitions among the ones a write would create (by their starts).
ARCHIVED_STARTS = """
SELECT DISTINCT partition_name FROM data_ingestion.archives
WHERE table_name = %(table)s AND range_start = ANY(%(starts)s) ORDER BY 1
"""


def as_file(row: dict[str, Any]) -> ArchivedFile:
    return ArchivedFile(
        table=row["table_name"],
        partition=row["partition_name"],
        range_start=row["range_start"],
        range_end=row["range_end"],
        seq=row["seq"],
        first_security_id=row["first_security_id"],
        last_security_id=row["last_security_id"],
        location=row["location"],
        path=row["path"],
        row_count=row["row_count"],
        file_bytes=row["file_bytes"],
        file_sha256=row["file_sha256"],
        rows_sha256=row["rows_sha256"],
    )


async def archived_files(
    db: AsyncConnections, table: str, security_ids: Sequence[int], lo: datetime, hi: datetime
) -> list[ArchivedFile]:
    """The files holding ``table``'s rows of any of ``security_ids`` in [lo, hi), in time order (one small indexed
    read; none for a table that is never archived)."""
    if table not in ARCHIVED_TABLES or not security_ids:
        return []
    params = {"table": table, "lo": lo, "hi": hi, "first": min(security_ids), "last": max(security_ids)}
    files = [as_file(row) for row in await db.fetch_all(FILES, params)]
    return [f for f in files if f.holds(security_ids)]


async def archived_partitions(db: AsyncConnections, table: str, starts: Sequence[datetime]) -> list[str]:
    """The partitions of ``table`` starting at ``starts`` that are archived (a write there would be lost to
    reads, which take an archived range from its files)."""
    if table not in ARCHIVED_TABLES or not starts:
        return []
    rows = await db.fetch_all(ARCHIVED_STARTS, {"table": table, "starts": list(starts)}, readonly=False)
    return [str(r["partition_name"]) for r in rows]

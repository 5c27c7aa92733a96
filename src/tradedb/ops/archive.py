"""``tradedb archive``: cold partitions of quotes, trades and bars to Parquet files, listed, verified, restored.

The work is :mod:`tradedb.archive.mover`'s; this module connects as the owner role, reads the settings
(``TRADEDB_ARCHIVE_URL``, ``TRADEDB_ARCHIVE_AFTER``) and checks the arguments.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from tradedb.archive import files, mover
from tradedb.archive.files import ArchivedFile
from tradedb.archive.mover import ArchiveReport, RestoreReport
from tradedb.db import direct as _connect
from tradedb.db.embedded import server_url
from tradedb.durations import parse_retention_entries
from tradedb.errors import ArchiveError, ConfigError, ValidationError, translate
from tradedb.ops.maintenance import _become_owner
from tradedb.schema.privileges import owner_role_name
from tradedb.security import rls
from tradedb.settings import Settings, load_settings, with_dbname


def parse_after(text: str) -> dict[str, timedelta]:
    """``"quotes=365d,bars=520w"`` as {table: age}; tables other than quotes, market_trades and bars are refused."""
    ages = {name.removeprefix("data_ingestion."): age for name, age in parse_retention_entries(text).items()}
    for name in ages:
        mover.check_table(name)
    return ages


@contextmanager
def _owner(settings: Settings, url: str | None) -> Iterator[psycopg.Connection[Any]]:
    target = with_dbname(url or settings.direct_url() or server_url(settings), settings.trading_db_name)
    with _connect.connect(target, settings, autocommit=True) as conn:
        _become_owner(conn, owner_role_name(settings.role_prefix))
        yield conn


def archive(
    *,
    settings: Settings | None = None,
    url: str | None = None,
    location: str | None = None,
    after: dict[str, timedelta] | str | None = None,
    now: datetime | None = None,
    rows_per_file: int = mover.ROWS_PER_FILE,
    dry_run: bool = False,
) -> ArchiveReport:
    """Move every partition of the tables in ``after`` (default ``TRADEDB_ARCHIVE_AFTER``) that ended more than its
    age before ``now`` to Parquet files at ``location`` (default ``TRADEDB_ARCHIVE_URL``); drop each partition once
    its files verified. ``dry_run`` lists the partitions without touching them."""
    settings = settings or load_settings()
    where = files.check_location(location or settings.archive_url)
    if isinstance(after, str) or after is None:
        text = after if after is not None else settings.archive_after
        if not text:
            raise ConfigError("nothing to archive: set TRADEDB_ARCHIVE_AFTER (e.g. quotes=365d,bars=520w)")
        after = parse_after(text)
    for name in after:
        mover.check_table(name)
    if isinstance(rows_per_file, bool) or not isinstance(rows_per_file, int) or rows_per_file < 1:
        raise ValidationError("rows_per_file must be a positive integer")
    now = (now or datetime.now(UTC)).astimezone(UTC)
    report = ArchiveReport(location=where, dry_run=dry_run)
    with _owner(settings, url) as conn:
        try:
            for table, age in after.items():
                mover.archive_table(conn, table, now - age, where, report, rows_per_file=rows_per_file)
        except psycopg.Error as exc:
            raise translate(exc, "archiving partitions") from exc
    return report


def archive_if_configured(settings: Settings, *, dry_run: bool = False) -> ArchiveReport | None:
    """What maintenance runs first: :func:`archive` when TRADEDB_ARCHIVE_URL and TRADEDB_ARCHIVE_AFTER are both set
    (so partitions past their archive age are archived before any retention drops them), else None."""
    if not (settings.archive_url and settings.archive_after):
        return None
    return archive(settings=settings, dry_run=dry_run)


def restore(
    table: str, start: datetime, end: datetime, *, settings: Settings | None = None, url: str | None = None
) -> RestoreReport:
    """Bring the archived partitions of ``table`` overlapping [start, end) back into PostgreSQL."""
    settings = settings or load_settings()
    mover.check_table(table)
    lo, hi = _range(start, end)
    report = RestoreReport()
    with _owner(settings, url) as conn:
        try:
            mover.restore_range(conn, table, lo, hi, report)
            if report.restored:
                rls.protect_partitions(conn, settings.role_prefix)
        except psycopg.Error as exc:
            raise translate(exc, "restoring archived partitions") from exc
    return report


def catalog(
    table: str | None = None, *, settings: Settings | None = None, url: str | None = None
) -> list[ArchivedFile]:
    """The archived files (of ``table``), in time order."""
    settings = settings or load_settings()
    if table is not None:
        mover.check_table(table)
    with _owner(settings, url) as conn:
        return mover.catalog(conn, table)


def verify(
    table: str | None = None, *, settings: Settings | None = None, url: str | None = None
) -> tuple[int, list[tuple[ArchivedFile, str]]]:
    """Read every archived file (of ``table``) and check its bytes and rows against the catalog; return how many
    files were read and the ones that failed, with why."""
    held = catalog(table, settings=settings, url=url)
    problems: list[tuple[ArchivedFile, str]] = []
    for file in held:
        try:
            files.read_all(file)
        except ArchiveError as exc:
            problems.append((file, exc.message))
    return len(held), problems


def _range(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    for name, value in (("start", start), ("end", end)):
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValidationError(f"{name} must be an aware datetime (with a time zone)")
    if end <= start:
        raise ValidationError(f"end {end.isoformat()} is not after start {start.isoformat()}")
    return start.astimezone(UTC), end.astimezone(UTC)


__all__ = [
    "ArchiveReport",
    "RestoreReport",
    "archive",
    "archive_if_configured",
    "catalog",
    "parse_after",
    "restore",
    "verify",
]

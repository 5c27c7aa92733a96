"""Partitions out of PostgreSQL into verified Parquet files, and back.

``archive_table`` takes each partition that ended before a cutoff, oldest first, in a transaction of its own:
it locks the partition against writes (SHARE: reads go on), reads it with a binary COPY in (security, time)
order, writes files of ``rows_per_file`` rows (the last one the rest), reads each file back and compares its rows
checksum with the partition's rows, compares the row counts with the partition's, records the files in
``data_ingestion.archives`` and drops the partition, then commits. Any failure rolls the transaction back (the
partition stays) and deletes the files written. Coverage is left as it was: the rows are still there for reads.

``restore_range`` brings the archived partitions of a time range back in one transaction (a file that fails its
checks restores nothing): each partition is created again, its files verified (bytes and rows) and loaded, the
count compared, and its catalog rows removed. The files stay where they are (a second copy until removed by hand).

Both take a connection in autocommit mode, as the owner role.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
import pyarrow as pa
from psycopg import sql

from tradedb.archive import files
from tradedb.archive.catalog import CATALOG, as_file
from tradedb.columnar import binary_copy, binary_encode
from tradedb.errors import ArchiveError, ValidationError
from tradedb.schema.data_ingestion import ARCHIVED_TABLES, SCHEMA
from tradedb.schema.partitions import PARTITION_BOUNDS_SQL, PartitionSpec, create_partition_sql, hypertables

logger = logging.getLogger(__name__)

#: Rows per file (the last of a partition holds the rest): bounds the memory an archive run holds.
ROWS_PER_FILE = 2_000_000
PIECE_BYTES = 16 << 20
#: One archiver or restorer per table at a time (two would race to drop or create the same partitions).
NEXT_SEQ = "SELECT coalesce(max(seq) + 1, 0) FROM data_ingestion.archives WHERE table_name = %s AND range_start = %s"
LOCK = "SELECT pg_advisory_xact_lock(hashtext('tradedb.archive.' || %s))"


@dataclass
class ArchivedPartition:
    """A partition moved to the archive: its files, rows, and sizes before (heap, with indexes) and after."""

    table: str
    partition: str
    range_start: datetime
    range_end: datetime
    files: int
    rows: int
    file_bytes: int
    heap_bytes: int
    total_bytes: int


@dataclass
class ArchiveReport:
    location: str
    dry_run: bool = False
    archived: list[ArchivedPartition] = field(default_factory=list)
    #: Partitions past the cutoff that held no rows: dropped, nothing to archive.
    dropped_empty: list[str] = field(default_factory=list)
    #: What a dry run would archive.
    candidates: list[str] = field(default_factory=list)


@dataclass
class RestoreReport:
    restored: list[str] = field(default_factory=list)
    rows: int = 0


def check_table(table: object) -> str:
    if table not in ARCHIVED_TABLES:
        raise ValidationError(f"{table!r} cannot be archived; one of {', '.join(ARCHIVED_TABLES)}")
    return str(table)


def archive_table(
    conn: psycopg.Connection[Any],
    table: str,
    cutoff: datetime,
    location: str,
    report: ArchiveReport,
    *,
    rows_per_file: int = ROWS_PER_FILE,
) -> None:
    """Archive every partition of ``table`` that ended at or before ``cutoff`` (see the module docstring)."""
    check_table(table)
    if f"{SCHEMA}.{table}" in hypertables(conn):
        raise ArchiveError(
            f"{SCHEMA}.{table} is a TimescaleDB hypertable: its old chunks are compressed by `tradedb maintain`; "
            "archiving to Parquet works on native partitions"
        )
    fs, root = files.filesystem(location)
    bounds = conn.execute(PARTITION_BOUNDS_SQL, (f"{SCHEMA}.{table}",)).fetchall()
    for name, lo, hi, is_default in bounds:
        if is_default or lo is None or hi is None or hi > cutoff:
            continue
        if report.dry_run:
            report.candidates.append(f"{SCHEMA}.{name}")
            continue
        spec = PartitionSpec(SCHEMA, table, name, lo, hi)
        _archive_partition(conn, spec, fs=fs, root=root, location=location, report=report, rows_per_file=rows_per_file)


def _archive_partition(
    conn: psycopg.Connection[Any],
    spec: PartitionSpec,
    *,
    fs: Any,
    root: str,
    location: str,
    report: ArchiveReport,
    rows_per_file: int,
) -> None:
    partition = sql.Identifier(spec.schema, spec.name)
    written: list[files.Written] = []
    try:
        with conn.transaction():
            conn.execute(LOCK, (spec.parent,))
            if conn.execute("SELECT to_regclass(%s)", (f"{spec.schema}.{spec.name}",)).fetchone() == (None,):
                return  # archived by another run meanwhile
            conn.execute(sql.SQL("LOCK TABLE {} IN SHARE MODE").format(partition))
            count, heap, total = conn.execute(
                sql.SQL("SELECT count(*), pg_relation_size({0}), pg_total_relation_size({0}) FROM {1}").format(
                    sql.Literal(f"{spec.schema}.{spec.name}"), partition
                )
            ).fetchone() or (0, 0, 0)
            if count:
                # A range archived before (late rows came back into a partition of it) keeps its files: the new
                # ones are numbered after them, and reads and restores take them all.
                first = conn.execute(NEXT_SEQ, (spec.parent, spec.start)).fetchone()
                seqs = itertools.count(first[0] if first else 0)
                spans: list[tuple[int, tuple[int, int]]] = []
                for seq, rows in zip(seqs, _file_rows(conn, spec, rows_per_file), strict=False):
                    written.append(files.write(fs, root, files.file_path(spec.parent, spec.name, seq), rows))
                    ids = rows["security_id"]  # in security order
                    spans.append((seq, (ids[0].as_py(), ids[-1].as_py())))
                for w, (seq, span) in zip(written, spans, strict=True):  # the COPY is over
                    _record(conn, spec, seq=seq, span=span, location=location, w=w)
                archived = sum(w.row_count for w in written)
                if archived != count:
                    raise ArchiveError(f"{spec.name}: {archived} rows archived of {count}: the partition is kept")
            conn.execute(sql.SQL("DROP TABLE {}").format(partition))
    except BaseException:
        files.delete(fs, root, [w.path for w in written])
        raise
    if not count:
        report.dropped_empty.append(f"{spec.schema}.{spec.name}")
        return
    report.archived.append(
        ArchivedPartition(
            spec.parent,
            spec.name,
            spec.start,
            spec.end,
            len(written),
            count,
            sum(w.file_bytes for w in written),
            heap,
            total,
        )
    )
    logger.info("archived %s: %d rows in %d file(s)", spec.name, count, len(written))


def _file_rows(conn: psycopg.Connection[Any], spec: PartitionSpec, rows_per_file: int) -> Iterator[pa.Table]:
    """The partition's rows in (security, time) order, as tables of ``rows_per_file`` rows (the last: the rest)."""
    columns = files.COLUMNS[spec.parent]
    query = sql.SQL("COPY (SELECT {} FROM {} ORDER BY security_id, ts) TO STDOUT (FORMAT binary)").format(
        sql.SQL(", ").join(sql.SQL(c.select_sql) for c in columns), sql.Identifier(spec.schema, spec.name)
    )
    held = files.schema(spec.parent).empty_table()
    with conn.cursor().copy(query) as copy:
        done = False
        while not done:
            piece, done = binary_copy.read_piece(conn.pgconn, PIECE_BYTES)
            held = pa.concat_tables([held, binary_copy.decode(piece, held.schema)])
            while held.num_rows >= rows_per_file:
                yield held.slice(0, rows_per_file)
                held = held.slice(rows_per_file)
        while copy.read():
            pass
    if held.num_rows:
        yield held


def _record(
    conn: psycopg.Connection[Any],
    spec: PartitionSpec,
    *,
    seq: int,
    span: tuple[int, int],
    location: str,
    w: files.Written,
) -> None:
    conn.execute(
        "INSERT INTO data_ingestion.archives (table_name, partition_name, range_start, range_end, seq, "
        "first_security_id, last_security_id, location, path, row_count, file_bytes, file_sha256, rows_sha256) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            spec.parent,
            spec.name,
            spec.start,
            spec.end,
            seq,
            *span,
            location,
            w.path,
            w.row_count,
            w.file_bytes,
            w.file_sha256,
            w.rows_sha256,
        ),
    )


def catalog(conn: psycopg.Connection[Any], table: str | None = None) -> list[files.ArchivedFile]:
    cursor = conn.cursor(row_factory=psycopg.rows.dict_row)
    return [as_file(r) for r in cursor.execute(CATALOG, {"table": table})]


def restore_range(
    conn: psycopg.Connection[Any], table: str, start: datetime, end: datetime, report: RestoreReport
) -> None:
    """Bring back every archived partition of ``table`` that overlaps [start, end) (see the module docstring)."""
    check_table(table)
    by_partition: dict[str, list[files.ArchivedFile]] = {}
    for file in catalog(conn, table):
        if file.range_start < end and file.range_end > start:
            by_partition.setdefault(file.partition, []).append(file)
    with conn.transaction():  # all or nothing: a file that fails its checksum restores no partition
        conn.execute(LOCK, (table,))
        conn.execute(files.stage_sql("archive_stage", table))
        for name, held in by_partition.items():
            _restore_partition(conn, held, report)
            report.restored.append(f"{SCHEMA}.{name}")


def _restore_partition(conn: psycopg.Connection[Any], held: list[files.ArchivedFile], report: RestoreReport) -> None:
    first = held[0]
    spec = PartitionSpec(SCHEMA, first.table, first.partition, first.range_start, first.range_end)
    columns = files.COLUMNS[first.table]
    if conn.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.{spec.name}",)).fetchone() != (None,):
        raise ArchiveError(
            f"{SCHEMA}.{spec.name} exists in PostgreSQL already: restoring its archive would duplicate rows "
            "(drop or rename it first)"
        )
    conn.execute(create_partition_sql(spec))
    conn.execute("TRUNCATE archive_stage")
    names = [c.name for c in columns]
    copy_in = sql.SQL("COPY archive_stage ({}) FROM STDIN (FORMAT binary)").format(
        sql.SQL(", ").join(map(sql.Identifier, names))
    )
    for file in held:
        rows = files.read_all(file)
        with conn.cursor().copy(copy_in) as copy:
            for buffer in binary_encode.encode_copy(rows, names):
                copy.write(buffer)
    inserted = conn.execute(
        sql.SQL("INSERT INTO {} ({}) SELECT {} FROM archive_stage").format(
            sql.Identifier(SCHEMA, spec.name),
            sql.SQL(", ").join(map(sql.Identifier, names)),
            sql.SQL(", ").join(sql.SQL(c.restore_sql) for c in columns),
        )
    ).rowcount
    expected = sum(f.row_count for f in held)
    if inserted != expected:
        raise ArchiveError(f"{spec.name}: {inserted} rows restored of {expected} archived: nothing restored")
    conn.execute(
        "DELETE FROM data_ingestion.archives WHERE table_name = %s AND range_start = %s",
        (spec.parent, spec.start),
    )
    report.rows += expected

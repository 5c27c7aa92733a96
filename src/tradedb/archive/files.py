"""Parquet files of archived partitions: where they live (a folder or S3), what they hold, how they are written and
read, and the checksums that prove a file holds the rows its partition held. No database I/O."""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from psycopg import sql

from tradedb.errors import ArchiveCorrupt, ArchiveError, ConfigError
from tradedb.schema.data_ingestion import ARCHIVED_TABLES

TS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class Column:
    """A stored column: its Arrow type, how the archive selects it and how a restore writes it back."""

    name: str
    type: pa.DataType
    select: str = ""
    restore: str = ""

    @property
    def select_sql(self) -> str:
        return self.select or f'"{self.name}"'

    @property
    def restore_sql(self) -> str:
        return self.restore or f'"{self.name}"'


_F, _S, _I = pa.float64(), pa.string(), pa.int64()
#: Every stored column of an archived table, in file order. Trade conditions are kept as PostgreSQL's array text
#: (``{@,F}``): the binary COPY decoder reads scalars, and a restore casts the text back.
COLUMNS: dict[str, tuple[Column, ...]] = {
    "quotes": (
        Column("security_id", _I),
        Column("ts", TS),
        Column("bid", _F),
        Column("ask", _F),
        Column("bid_size", _F),
        Column("ask_size", _F),
        Column("source", _S),
        Column("contributor", _S),
    ),
    "market_trades": (
        Column("security_id", _I),
        Column("ts", TS),
        Column("price", _F),
        Column("size", _F),
        Column("trade_id", _S),
        Column("aggressor_side", _S),
        Column("conditions", _S, select="conditions::text", restore="conditions::text[]"),
        Column("source", _S),
    ),
    "bars": (
        Column("security_id", _I),
        Column("timeframe", _S),
        Column("source", _S),
        Column("ts", TS),
        Column("open", _F),
        Column("high", _F),
        Column("low", _F),
        Column("close", _F),
        Column("volume", _F),
        Column("trade_count", _I),
        Column("vwap", _F),
    ),
}
assert tuple(COLUMNS) == ARCHIVED_TABLES


def schema(table: str) -> pa.Schema:
    return pa.schema([(c.name, c.type) for c in COLUMNS[table]])


PG_TYPES = {pa.int64(): "bigint", TS: "timestamptz", pa.float64(): "float8", pa.string(): "text"}


def stage_sql(name: str, table: str) -> sql.Composed:
    """A temporary table (dropped at commit) with the archived columns of ``table``, to COPY archived rows into."""
    columns = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(PG_TYPES[c.type])) for c in COLUMNS[table]
    )
    return sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(sql.Identifier(name), columns)


@dataclass(frozen=True)
class ArchivedFile:
    """One catalog row: a file of one partition's rows of securities ``first_security_id``..``last_security_id``."""

    table: str
    partition: str
    range_start: datetime
    range_end: datetime
    seq: int
    first_security_id: int
    last_security_id: int
    location: str
    path: str
    row_count: int
    file_bytes: int
    file_sha256: str
    rows_sha256: str

    def holds(self, security_ids: Sequence[int]) -> bool:
        return any(self.first_security_id <= i <= self.last_security_id for i in security_ids)


@dataclass(frozen=True)
class Written:
    """What a verified write produced."""

    path: str
    row_count: int
    file_bytes: int
    file_sha256: str
    rows_sha256: str


# --- locations ------------------------------------------------------------------------------------------------

_SECRET_PARAMS = re.compile(r"secret|access_key|session_token|password", re.IGNORECASE)


def check_location(url: object) -> str:
    """The archive location as given (a folder, ``file://``, ``s3://bucket/prefix?endpoint_override=...``);
    credentials in it are refused, so the catalog, logs and errors never hold one."""
    if not isinstance(url, str) or not url.strip():
        raise ConfigError("no archive location: set TRADEDB_ARCHIVE_URL (a folder or s3://bucket/prefix)")
    parts = urlsplit(url)
    if parts.password or any(_SECRET_PARAMS.search(k) for k in parse_qs(parts.query)):
        raise ConfigError(
            "the archive URL holds a credential: give S3 keys in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    if "://" in url and parts.scheme not in ("file", "s3"):
        raise ConfigError(f"archive URL scheme {parts.scheme!r}: use a folder, file:// or s3://")
    return url.rstrip("/")


def filesystem(location: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem and root path of an archive location."""
    try:
        if "://" not in location:
            return pafs.LocalFileSystem(), str(location)
        fs, root = pafs.FileSystem.from_uri(location)
        return fs, root.rstrip("/")
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise ArchiveError(f"archive location {_safe(location)}: {exc}") from exc


def _safe(location: str) -> str:
    return urlsplit(location)._replace(query="").geturl() if "://" in location else location


def file_path(table: str, partition: str, seq: int) -> str:
    """A file's path under the location: ``quotes/quotes_p20190102/part-0000.parquet``."""
    return f"{table}/{partition}/part-{seq:04d}.parquet"


# --- checksums ------------------------------------------------------------------------------------------------


def rows_checksum(table: pa.Table) -> str:
    """SHA-256 of the rows, column by column: names, which values are null, then the values (fixed-width as their
    bytes, text as lengths then bytes). The same rows in the same order give the same digest however Arrow
    chunks them, so the partition's rows and the file read back can be compared."""
    digest = hashlib.sha256(f"{table.num_rows}\n".encode())
    for name in table.column_names:
        column = table[name].combine_chunks()
        digest.update(name.encode() + b"\n")
        valid = column.is_valid().to_numpy(zero_copy_only=False)
        digest.update(np.packbits(valid).tobytes())
        if pa.types.is_string(column.type):
            filled = column.fill_null("")
            offsets = np.frombuffer(filled.buffers()[1], np.int32)[filled.offset : filled.offset + len(filled) + 1]
            digest.update(np.diff(offsets).astype(np.int64).tobytes())
            data = filled.buffers()[2]
            if data is not None and len(filled):
                digest.update(memoryview(data)[int(offsets[0]) : int(offsets[-1])])
        else:
            if pa.types.is_timestamp(column.type):
                column = column.cast(pa.int64())
            zero = 0.0 if pa.types.is_floating(column.type) else 0
            digest.update(column.fill_null(zero).to_numpy(zero_copy_only=False).tobytes())
    return digest.hexdigest()


# --- write and read -------------------------------------------------------------------------------------------

#: Rows per row group: a read of one security skips the groups whose security_id statistics exclude it.
ROW_GROUP = 128 * 1024


def write(fs: pafs.FileSystem, root: str, path: str, table: pa.Table) -> Written:
    """Write ``table`` to ``root/path`` (zstd; ids and timestamps delta-encoded, other columns dictionary-encoded),
    read it back and compare: the file must hold exactly these rows."""
    expected = rows_checksum(table)
    full = f"{root}/{path}"
    # Integers and times in order (ids, timestamps) shrink most as deltas; prices and sizes repeat, so a dictionary
    # beats byte-stream-split for them (measured on 1M quotes: 6.2 MB against 14.7 MB).
    deltas = {f.name: "DELTA_BINARY_PACKED" for f in table.schema if f.name in ("security_id", "ts")}
    try:
        fs.create_dir(full.rsplit("/", 1)[0], recursive=True)
        pq.write_table(
            table,
            full,
            filesystem=fs,
            compression="zstd",
            compression_level=6,
            row_group_size=ROW_GROUP,
            use_dictionary=[n for n in table.column_names if n not in deltas],
            column_encoding=deltas,
        )
    except (OSError, pa.ArrowException) as exc:
        raise ArchiveError(f"cannot write {path} to the archive: {exc}") from exc
    data = _read_bytes(fs, full, path)
    back = _parse(data, path, schema=table.schema)
    found = rows_checksum(back)
    if back.num_rows != table.num_rows or found != expected:
        raise ArchiveCorrupt(f"{path}: the file read back does not hold the rows written ({back.num_rows} rows)")
    return Written(path, table.num_rows, len(data), hashlib.sha256(data).hexdigest(), expected)


def read_verified(file: ArchivedFile) -> bytes:
    """A file's bytes, checked against its catalog row (size and SHA-256)."""
    fs, root = filesystem(file.location)
    data = _read_bytes(fs, f"{root}/{file.path}", file.path)
    if len(data) != file.file_bytes or hashlib.sha256(data).hexdigest() != file.file_sha256:
        raise ArchiveCorrupt(
            f"archived file {file.path} ({file.table} {file.range_start:%Y-%m-%d %H:%M}-"
            f"{file.range_end:%Y-%m-%d %H:%M}) does not match its checksum: it was edited, truncated or replaced "
            f"after archiving ({len(data)} bytes, {file.file_bytes} archived)"
        )
    return data


def read_all(file: ArchivedFile) -> pa.Table:
    """Every row of a file, verified against the rows checksum too (what a restore loads)."""
    table = _parse(read_verified(file), file.path, schema=schema(file.table))
    if table.num_rows != file.row_count or rows_checksum(table) != file.rows_sha256:
        raise ArchiveCorrupt(f"archived file {file.path}: its rows do not match the rows checksum")
    return table


def read_rows(
    file: ArchivedFile,
    *,
    security_ids: Sequence[int],
    lo: datetime,
    hi: datetime,
    equal: dict[str, Any],
    columns: Sequence[str] | None = None,
) -> pa.Table:
    """The rows of a verified file of ``security_ids`` in [lo, hi) whose columns equal ``equal``'s values, in the
    file's order (security, then time), as the ``columns`` given (all by default)."""
    data = read_verified(file)
    ids = pa.array(list(security_ids), pa.int64())
    expression = pc.field("security_id").isin(ids) & (pc.field("ts") >= pa.scalar(lo, TS))
    expression &= pc.field("ts") < pa.scalar(hi, TS)
    for name, value in equal.items():
        expression &= pc.field(name) == value
    try:
        table = pq.read_table(pa.BufferReader(data), filters=expression, schema=schema(file.table))
    except (OSError, pa.ArrowException) as exc:
        raise ArchiveCorrupt(f"archived file {file.path} cannot be read: {exc}") from exc
    return table.select(list(columns)) if columns is not None else table


def _read_bytes(fs: pafs.FileSystem, full: str, path: str) -> bytes:
    try:
        with fs.open_input_stream(full) as stream:
            return bytes(stream.read())
    except FileNotFoundError as exc:
        raise ArchiveCorrupt(f"archived file {path} is missing from the archive") from exc
    except (OSError, pa.ArrowException) as exc:
        raise ArchiveError(f"cannot read archived file {path}: {exc}") from exc


def _parse(data: bytes, path: str, *, schema: pa.Schema) -> pa.Table:
    try:
        return pq.read_table(pa.BufferReader(data), schema=schema)
    except (OSError, pa.ArrowException) as exc:
        raise ArchiveCorrupt(f"archived file {path} is not a readable Parquet file: {exc}") from exc


def delete(fs: pafs.FileSystem, root: str, paths: Sequence[str]) -> None:
    """Remove files (best effort: a failed archive cleans up what it wrote)."""
    for path in paths:
        with contextlib.suppress(OSError, pa.ArrowException):
            fs.delete_file(f"{root}/{path}")


# --- plans ----------------------------------------------------------------------------------------------------


def segments(
    lo: datetime, hi: datetime, files: Sequence[ArchivedFile]
) -> list[tuple[datetime, datetime, list[ArchivedFile]]]:
    """[lo, hi) cut into time order: the archived ranges (with their files; adjacent partitions' files as one
    range) and the ranges between them (no files: PostgreSQL's)."""
    ranges: dict[tuple[datetime, datetime], list[ArchivedFile]] = {}
    for file in sorted(files, key=lambda f: (f.range_start, f.seq)):
        ranges.setdefault((file.range_start, file.range_end), []).append(file)
    out: list[tuple[datetime, datetime, list[ArchivedFile]]] = []
    cursor = lo
    for (range_start, range_end), held in sorted(ranges.items()):
        start, end = max(range_start, lo), min(range_end, hi)
        if end <= start:
            continue
        if cursor < start:
            out.append((cursor, start, []))
        if out and out[-1][2] and out[-1][1] == start:
            out[-1] = (out[-1][0], end, out[-1][2] + held)
        else:
            out.append((start, end, held))
        cursor = end
    if cursor < hi:
        out.append((cursor, hi, []))
    return out

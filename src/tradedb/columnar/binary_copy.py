"""Decode PostgreSQL's binary COPY output into Arrow columns in two compiled passes (no per-row Python).

The server writes binary COPY faster than CSV (no number-to-text work), and this decoder keeps up with it:
a first pass counts rows and text bytes, a second writes fixed-width values (big-endian on the wire) into NumPy
arrays and text straight into Arrow's offsets-and-data layout. Columns are 8-byte integers, timestamps
(microseconds since 2000-01-01 on the wire), 8-byte floats, or text.
"""

from __future__ import annotations

import asyncio
from typing import Any, NoReturn

import numpy as np
import numpy.typing as npt
import psycopg
import pyarrow as pa
from psycopg import pq

from tradedb.columnar.compile import compiled
from tradedb.errors import ValidationError

INT8, TIMESTAMP, FLOAT8, TEXT = 0, 1, 2, 3
KINDS: dict[pa.DataType, int] = {
    pa.int64(): INT8,
    pa.timestamp("us", tz="UTC"): TIMESTAMP,
    pa.float64(): FLOAT8,
    pa.string(): TEXT,
}
SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
TRAILER = b"\xff\xff"
#: 2000-01-01 (PostgreSQL's epoch) in microseconds since 1970-01-01.
PG_EPOCH_US = 946_684_800_000_000
Array = npt.NDArray[Any]


@compiled
def _int(buf: Array, p: int, width: int) -> int:
    """A big-endian signed integer of 2 or 4 bytes."""
    value = 0
    for j in range(width):
        value = (value << 8) | int(buf[p + j])
    if value >= 1 << (8 * width - 1):
        value -= 1 << (8 * width)
    return value


@compiled
def _scan(buf: Array, start: int, kinds: Array, text_bytes: Array) -> int:
    """Count the rows from ``start``; add each text column's bytes to ``text_bytes``. -1 if malformed."""
    ncols = kinds.shape[0]
    p = start
    rows = 0
    n = buf.shape[0]
    while p + 2 <= n:
        fields = _int(buf, p, 2)
        p += 2
        if fields == -1:
            break
        if fields != ncols:
            return -1
        for c in range(ncols):
            length = _int(buf, p, 4)
            p += 4
            if length > 0:
                if kinds[c] == TEXT:
                    text_bytes[c] += length
                p += length
        rows += 1
    return rows


@compiled
def _fill(
    buf: Array,
    start: int,
    kinds: Array,
    slots: Array,
    fixed: Array,
    valid: Array,
    offsets: Array,
    data: Array,
    bases: Array,
) -> None:
    """Write the fixed-width values (their 8 bytes as one unsigned number, viewed as int64 or float64 after)
    into row ``slots[c]`` of ``fixed``, text into ``data`` with its offsets in row ``slots[c]`` of ``offsets``,
    and which values are there."""
    ncols = kinds.shape[0]
    rows = valid.shape[1]
    p = start
    written = bases.copy()
    for c in range(ncols):
        if kinds[c] == TEXT:
            offsets[slots[c], 0] = 0
    for i in range(rows):
        p += 2
        for c in range(ncols):
            length = _int(buf, p, 4)
            p += 4
            text = kinds[c] == TEXT
            if length < 0:
                valid[c, i] = False
                if text:
                    offsets[slots[c], i + 1] = written[c] - bases[c]
                continue
            valid[c, i] = True
            if text:
                end = written[c] + length
                for j in range(length):
                    data[written[c] + j] = buf[p + j]
                written[c] = end
                offsets[slots[c], i + 1] = end - bases[c]
            else:
                bits = np.uint64(0)
                for j in range(8):
                    bits = (bits << np.uint64(8)) | np.uint64(buf[p + j])
                fixed[slots[c], i] = bits
            p += length


def _header_length(data: bytes | bytearray) -> int:
    """The length of the COPY header ``data`` starts with (signature, flags, extension), else 0."""
    if not data.startswith(SIGNATURE):
        return 0
    return len(SIGNATURE) + 4 + 4 + int.from_bytes(data[len(SIGNATURE) + 4 : len(SIGNATURE) + 8], "big")


def decode(data: bytes | bytearray, schema: pa.Schema) -> pa.Table:
    """The rows of ``data`` (whole rows of a binary COPY, the header and trailer where they fall) as a table."""
    buf = np.frombuffer(data, np.uint8)
    start = _header_length(data)
    kinds = np.array([KINDS[f.type] for f in schema], np.int8)
    text_bytes = np.zeros(len(kinds), np.int64)
    rows = _scan(buf, start, kinds, text_bytes)
    if rows < 0:
        raise ValidationError("binary COPY data does not have the expected columns")
    is_text = kinds == TEXT
    slots = np.zeros(len(kinds), np.int64)
    slots[is_text] = np.arange(int(is_text.sum()))
    slots[~is_text] = np.arange(int((~is_text).sum()))
    fixed = np.empty((int((~is_text).sum()), rows), np.uint64)
    valid = np.empty((len(kinds), rows), np.bool_)
    offsets = np.empty((int(is_text.sum()), rows + 1), np.int32)
    bases = np.concatenate([[0], np.cumsum(text_bytes)[:-1]]).astype(np.int64)
    text = np.empty(int(text_bytes.sum()), np.uint8)
    _fill(buf, start, kinds, slots, fixed, valid, offsets, text, bases)
    columns = []
    for c, field in enumerate(schema):
        nulls = rows - int(np.count_nonzero(valid[c]))
        validity = pa.py_buffer(np.packbits(valid[c], bitorder="little")) if nulls else None
        if kinds[c] == TEXT:
            chunk = text[bases[c] : bases[c] + text_bytes[c]]
            buffers = [validity, pa.py_buffer(offsets[slots[c]]), pa.py_buffer(chunk)]
            columns.append(pa.Array.from_buffers(pa.string(), rows, buffers, null_count=nulls))
            continue
        values = fixed[slots[c]]
        if kinds[c] == FLOAT8:
            values = values.view(np.float64)
        elif kinds[c] == TIMESTAMP:
            values = values.view(np.int64) + PG_EPOCH_US
        columns.append(pa.Array.from_buffers(field.type, rows, [validity, pa.py_buffer(values)], null_count=nulls))
    return pa.Table.from_arrays(columns, schema=schema)


def read_piece(pgconn: Any, size: int) -> tuple[bytearray, bool]:
    """Read whole rows of a binary COPY from libpq until ``size`` bytes or the trailer; return them and whether the
    trailer came. libpq is asked directly (blocking, one call per row): the per-row cost of a Python copy iterator
    is most of a COPY's client time. The end-of-copy that follows the trailer is left to psycopg's ``copy()``."""
    piece = bytearray()
    while len(piece) < size:
        nbytes, data = pgconn.get_copy_data(0)
        if nbytes <= 0:
            _raise_copy_end(pgconn)
        piece += data
        # The trailer is a message of its own, or follows the header in the one message of an empty COPY.
        if (nbytes == 2 and data == TRAILER) or (nbytes == len(piece) and _header_length(piece) + 2 == nbytes):
            return piece, True
    return piece, False


def _raise_copy_end(pgconn: Any) -> NoReturn:
    """The COPY ended before its trailer: the server sent an error (a failed query, a cancel) or the connection
    broke. Raise what psycopg would (the caller's connection block translates it), as psycopg's own copy reader
    does: the results that end the COPY carry the error."""
    results = []
    while (result := pgconn.get_result()) is not None:
        results.append(result)
    failed = [r for r in results if r.status != pq.ExecStatus.COMMAND_OK]
    if failed:
        raise psycopg.errors.error_from_result(failed[0], encoding="utf-8")
    message = pgconn.error_message.decode(errors="replace").strip() or "the COPY ended before its trailer"
    raise psycopg.OperationalError(message)


async def read_piece_async(pgconn: Any, size: int) -> tuple[bytearray, bool]:
    """:func:`read_piece` on a worker thread: the event loop stays free while libpq waits for rows."""
    return await asyncio.to_thread(read_piece, pgconn, size)

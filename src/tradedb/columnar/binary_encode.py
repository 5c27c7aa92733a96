"""PostgreSQL's binary COPY format, encoded from Arrow columns with NumPy (no per-row Python).

Columns may be int64, float64, timestamp (UTC microseconds) or string; other types are cast by the caller.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tradedb.errors import ValidationError

_EPOCH_2000_US = 946_684_800_000_000  # PostgreSQL's binary timestamps count microseconds from 2000-01-01
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" * 2
_COPY_TRAILER = b"\xff\xff"


def encode_copy(
    table: pa.Table, columns: Sequence[str], constants: Mapping[str, str] | None = None
) -> list[memoryview]:
    """Encode ``table``'s ``columns`` (and constant text ``constants``) as a PostgreSQL binary COPY stream.

    Rows are grouped by their shape (which values are NULL, how long each text is); each group is one NumPy
    structured array filled column by column, so the cost is a few vectorised copies per column, not per row.
    Row order is not kept (COPY does not need it). Returns the stream as buffers, written one after the other
    (joining them would copy every byte once more).
    """
    constants = constants or {}
    n = table.num_rows
    encoders = [_Column.of(table[c]) for c in columns]
    fixed = [(name, value.encode()) for name, value in constants.items()]
    nfields = len(encoders) + len(fixed)
    key = np.zeros(n, dtype=np.int64)
    radix = 1
    for enc in encoders:
        for part, size in enc.shape_parts():
            if radix * size >= 2**62:
                raise ValidationError("text values vary too much in length to encode in one batch")  # pragma: no cover
            key = key * size + part
            radix *= size
    chunks = [memoryview(_COPY_HEADER)]
    if n:
        if radix == 1 or key.min() == key.max():
            groups = [np.arange(n)]
        else:
            order = np.argsort(key, kind="stable")
            sorted_key = key[order]
            cuts = np.flatnonzero(sorted_key[1:] != sorted_key[:-1]) + 1
            groups = np.split(order, cuts)
        for idx in groups:
            chunks.append(_encode_group(encoders, fixed, nfields, idx))
    chunks.append(memoryview(_COPY_TRAILER))
    return chunks


@dataclass
class _Column:
    kind: str  # "int8" | "float8" | "ts" | "text" | "int"
    array: pa.Array
    valid: np.ndarray | None
    lengths: np.ndarray | None = None

    @classmethod
    def of(cls, column: pa.ChunkedArray | pa.Array) -> _Column:
        array = single(column)
        valid = None if array.null_count == 0 else mask(array.is_valid())
        t = array.type
        if pa.types.is_timestamp(t):
            return cls("ts", array, valid)
        if pa.types.is_floating(t):
            return cls("float8", array, valid)
        if pa.types.is_integer(t):
            return cls("int8", array, valid)
        if pa.types.is_string(t):
            lengths = pc.fill_null(pc.binary_length(array), 0).to_numpy().astype(np.int64)
            return cls("text", array, valid, lengths)
        raise TypeError(f"cannot COPY a column of type {t}")  # pragma: no cover - normalize() casts

    def shape_parts(self) -> list[tuple[np.ndarray, int]]:
        parts: list[tuple[np.ndarray, int]] = []
        if self.valid is not None:
            parts.append((self.valid.astype(np.int64), 2))
        if self.lengths is not None:
            top = int(self.lengths.max()) if self.lengths.size else 0
            if top:
                parts.append((self.lengths, top + 1))
        return parts

    def dtype(self, idx: np.ndarray) -> tuple[bool, str | None, int]:
        """For the rows ``idx`` (one shape): (valid, NumPy type of the value, byte width)."""
        first = int(idx[0])
        if self.valid is not None and not self.valid[first]:
            return False, None, 0
        if self.kind == "text":
            assert self.lengths is not None
            width = int(self.lengths[first])
            return True, (f"S{width}" if width else None), width
        return True, ">i8" if self.kind in ("ts", "int8") else ">f8", 8

    def values(self, idx: np.ndarray, width: int) -> np.ndarray:
        taken = self.array.take(pa.array(idx)) if len(idx) != len(self.array) else self.array
        if self.kind == "text":
            offsets = np.frombuffer(taken.buffers()[1], dtype=np.int32, count=len(taken) + 1, offset=taken.offset * 4)
            data = taken.buffers()[2]
            return np.frombuffer(data, dtype=f"S{width}", count=len(taken), offset=int(offsets[0]))
        if self.kind == "ts":
            micros: np.ndarray = pc.fill_null(taken.cast(pa.int64()), 0).to_numpy()
            return micros - _EPOCH_2000_US
        values: np.ndarray = pc.fill_null(taken, 0).to_numpy()
        return values


def _encode_group(encoders: list[_Column], fixed: list[tuple[str, bytes]], nfields: int, idx: np.ndarray) -> memoryview:
    layout: list[tuple[str, str]] = [("n", ">i2")]
    plans = []
    for j, enc in enumerate(encoders):
        valid, kind, width = enc.dtype(idx)
        layout.append((f"l{j}", ">i4"))
        if kind is not None:
            layout.append((f"v{j}", kind))
        plans.append((j, enc, valid, kind, width))
    for j, (_, value) in enumerate(fixed):
        layout.append((f"cl{j}", ">i4"))
        if value:
            layout.append((f"cv{j}", f"S{len(value)}"))
    rows = np.empty(len(idx), dtype=np.dtype(layout))
    rows["n"] = nfields
    for j, enc, valid, kind, width in plans:
        rows[f"l{j}"] = width if valid else -1
        if kind is not None:
            rows[f"v{j}"] = enc.values(idx, width)
    for j, (_, value) in enumerate(fixed):
        rows[f"cl{j}"] = len(value)
        if value:
            rows[f"cv{j}"] = value
    return rows.data.cast("B")


def single(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """One Arrow array (no copy when the column has a single chunk)."""
    if isinstance(column, pa.ChunkedArray):
        return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    return column


def mask(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean Arrow array as a NumPy mask (null counts as False)."""
    return np.asarray(pc.fill_null(array, False).to_numpy(zero_copy_only=False), dtype=bool)

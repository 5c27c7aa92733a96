"""Rows of a query as Arrow tables through a binary COPY, decoded while the next piece arrives.

``copy_arrow(db, query, schema)`` runs ``COPY (query) TO STDOUT (FORMAT binary)`` on a pooled connection (a
replica when configured: it only reads), takes the rows from libpq in pieces of about ``piece_bytes`` and decodes
each on a worker thread (:mod:`tradedb.columnar.binary_copy`) while the next one arrives.
"""

# WARNING: generated from reader_async.py by tools/async_to_sync.py; edit the async source and run
# `python tools/async_to_sync.py`. A unit test fails when this file is stale.

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

import pyarrow as pa
from psycopg import sql

from tradedb.columnar import binary_copy

if TYPE_CHECKING:
    from tradedb.db.connections import Connections

PIECE_BYTES = 8 << 20


def copy_table(db: Connections, query: sql.Composable, schema: pa.Schema) -> pa.Table:
    """All the rows of ``query`` as one table (chunked by piece; empty with ``schema`` when there are none)."""
    tables: list[pa.Table] = []
    for piece in copy_arrow(db, query, schema):
        tables.append(piece)
    return pa.concat_tables(tables) if tables else schema.empty_table()


def copy_arrow(
    db: Connections, query: sql.Composable, schema: pa.Schema, *, piece_bytes: int = PIECE_BYTES
) -> Iterator[pa.Table]:
    """The rows of ``query`` (a SELECT whose columns match ``schema``) as Arrow tables, in order."""
    statement = sql.SQL("COPY ({}) TO STDOUT (FORMAT binary)").format(query)
    with ThreadPoolExecutor(1, thread_name_prefix="tradedb-decode") as worker:
        pending: Future[pa.Table] | None = None
        with db.connection(readonly=True) as conn, conn.cursor().copy(statement) as copy:
            done = False
            while not done:
                piece, done = binary_copy.read_piece(conn.pgconn, piece_bytes)
                if pending is not None:
                    table = pending.result()
                    if table.num_rows:
                        yield table
                pending = worker.submit(binary_copy.decode, piece, schema)
            while copy.read():  # the end of the COPY, read by psycopg so it knows the COPY is over
                pass
        if pending is not None:
            table = pending.result()
            if table.num_rows:
                yield table

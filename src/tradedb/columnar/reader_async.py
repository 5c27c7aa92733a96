"""Rows of a query as Arrow tables through a binary COPY, decoded while the next piece arrives.

``copy_arrow(db, query, schema)`` runs ``COPY (query) TO STDOUT (FORMAT binary)`` on a pooled connection (a
replica when configured: it only reads), takes the rows from libpq in pieces of about ``piece_bytes`` and decodes
each on a worker thread (:mod:`tradedb.columnar.binary_copy`) while the next one arrives.
"""

# source-only: the one source of this I/O; tools/async_to_sync.py generates the sync twin.

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

import pyarrow as pa
from psycopg import sql

from tradedb.columnar import binary_copy

if TYPE_CHECKING:
    from tradedb.db.connections_async import AsyncConnections

PIECE_BYTES = 8 << 20


async def copy_table(db: AsyncConnections, query: sql.Composable, schema: pa.Schema) -> pa.Table:
    """All the rows of ``query`` as one table (chunked by piece; empty with ``schema`` when there are none)."""
    tables: list[pa.Table] = []
    async for piece in copy_arrow(db, query, schema):
        tables.append(piece)
    return pa.concat_tables(tables) if tables else schema.empty_table()


async def copy_arrow(
    db: AsyncConnections, query: sql.Composable, schema: pa.Schema, *, piece_bytes: int = PIECE_BYTES
) -> AsyncIterator[pa.Table]:
    """The rows of ``query`` (a SELECT whose columns match ``schema``) as Arrow tables, in order."""
    statement = sql.SQL("COPY ({}) TO STDOUT (FORMAT binary)").format(query)
    with ThreadPoolExecutor(1, thread_name_prefix="tradedb-decode") as worker:
        pending: Future[pa.Table] | None = None
        async with db.connection(readonly=True) as conn, conn.cursor().copy(statement) as copy:
            done = False
            while not done:
                piece, done = await binary_copy.read_piece_async(conn.pgconn, piece_bytes)
                if pending is not None:
                    table = await asyncio.wrap_future(pending)
                    if table.num_rows:
                        yield table
                pending = worker.submit(binary_copy.decode, piece, schema)
            while await copy.read():  # the end of the COPY, read by psycopg so it knows the COPY is over
                pass
        if pending is not None:
            table = await asyncio.wrap_future(pending)
            if table.num_rows:
                yield table

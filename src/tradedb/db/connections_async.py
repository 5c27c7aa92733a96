"""Pooled async connections: transactions, retries, service scoping and read replicas (no feature).

Logic without I/O lives in ``pooling``. The features hang on the Database, a subclass.
"""

# source-only: the one source of the connection logic; tools/async_to_sync.py generates the sync twin (a unit
# source-only: test fails when it is stale), so dropping async/await must give the correct sync code.

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, Self, TypeVar

import psycopg
import psycopg_pool
from psycopg import AsyncConnection, pq
from psycopg.abc import Params
from psycopg.rows import TupleRow, dict_row
from psycopg_pool import AsyncConnectionPool

from tradedb.db import pooling as base
from tradedb.db.counters import COUNTERS, DbClock
from tradedb.errors import ConnectionLost, PoolTimeout, RetriesExhausted, TradeDBError, translate
from tradedb.schema.distribution import ON_CITUS
from tradedb.settings import Settings

logger = logging.getLogger(__name__)

T = TypeVar("T")


async def _check(conn: AsyncConnection[Any]) -> None:
    """The pool's checkout check: a round trip that finds a dead connection, unless the caller opted out."""
    if not base.SKIP_CHECKOUT_CHECK.get():
        await AsyncConnectionPool.check_connection(conn)


class AsyncConnections:
    """Pools for the primary (and read replicas), created lazily, closed by ``close()`` or ``async with``."""

    def __init__(
        self,
        url: str,
        *,
        settings: Settings,
        service: str | None = None,
        replica_urls: list[str] | None = None,
        min_size: int | None = None,
        max_size: int | None = None,
        timeout: float | None = None,
        max_lifetime: float | None = None,
        max_idle: float | None = None,
        name: str = "tradedb",
        account: str | None = None,
        app_user: str | None = None,
    ) -> None:
        self.settings = settings
        #: Default tenant of every transaction (row-level security), and the user recorded in the audit log.
        self.account = base.check_scope(account, "account")
        self.app_user = base.check_scope(app_user, "app_user")
        self.role = base.service_role(settings, service)
        self.options = base.pool_options(
            settings,
            url,
            name=name,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            max_lifetime=max_lifetime,
            max_idle=max_idle,
        )
        replicas = replica_urls if replica_urls is not None else settings.replica_url_list()
        self.replica_options = [
            base.pool_options(
                settings,
                replica,
                name=f"{name}-replica-{i}",
                min_size=0,
                max_size=self.options.max_size,
                timeout=settings.replica_timeout,
                max_lifetime=self.options.max_lifetime,
                max_idle=self.options.max_idle,
            )
            for i, replica in enumerate(replicas)
        ]
        self._replicas = base.ReplicaTracker(len(replicas), settings.replica_retry_interval)
        self._pool: AsyncConnectionPool[AsyncConnection[TupleRow]] | None = None
        self._replica_pools: dict[int, AsyncConnectionPool[AsyncConnection[TupleRow]]] = {}
        self._lock = asyncio.Lock()
        self._closed = False
        self._on_citus: bool | None = None

    # --- lifecycle ----------------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every pool; the Database cannot be used afterwards."""
        self._closed = True
        pools = [self._pool, *self._replica_pools.values()]
        self._pool = None
        self._replica_pools = {}
        for pool in pools:
            if pool is not None:
                await pool.close()

    async def _configure(self, conn: AsyncConnection[TupleRow]) -> None:
        # A new connection of a service-scoped Database runs as the service's role. (Behind PgBouncer nothing
        # is set on the session: connection() sets the role per transaction instead.)
        assert self.role is not None
        await conn.execute(base.set_role_sql(self.role, local=False))
        await conn.commit()

    async def _reset(self, conn: AsyncConnection[TupleRow]) -> None:
        # A returned connection carries no session state to its next user, and is back in the service's role.
        for statement in base.reset_session_sql(self.role):
            await conn.execute(statement)
        await conn.commit()

    async def _make_pool(self, options: base.PoolOptions) -> AsyncConnectionPool[AsyncConnection[TupleRow]]:
        # psycopg_pool hands every returned connection to a worker thread when a reset callback is set, which
        # costs ~20 % of throughput under concurrency: install the callbacks only when there is a role to keep.
        session_role = bool(self.role) and not self.settings.pgbouncer
        pool: AsyncConnectionPool[AsyncConnection[TupleRow]] = AsyncConnectionPool(
            options.conninfo,
            kwargs=options.kwargs,
            min_size=options.min_size,
            max_size=options.max_size,
            timeout=options.timeout,
            max_lifetime=options.max_lifetime,
            max_idle=options.max_idle,
            name=options.name,
            configure=self._configure if session_role else None,
            reset=self._reset if session_role else None,
            check=_check,
            open=False,
        )
        await pool.open(wait=False)
        return pool

    async def _primary(self) -> AsyncConnectionPool[AsyncConnection[TupleRow]]:
        if self._pool is None:
            async with self._lock:
                if self._closed:
                    raise TradeDBError("this Database is closed")
                if self._pool is None:
                    self._pool = await self._make_pool(self.options)
        return self._pool

    async def _replica(self, index: int) -> AsyncConnectionPool[AsyncConnection[TupleRow]]:
        if index not in self._replica_pools:
            async with self._lock:
                if index not in self._replica_pools:
                    self._replica_pools[index] = await self._make_pool(self.replica_options[index])
        return self._replica_pools[index]

    # --- checkout -----------------------------------------------------------------------------------------

    async def _checkout(
        self, readonly: bool
    ) -> tuple[AsyncConnectionPool[AsyncConnection[TupleRow]], AsyncConnection[TupleRow]]:
        if readonly:
            for index in self._replicas.candidates():
                replica = await self._replica(index)
                try:
                    conn = await replica.getconn()
                    if not conn.read_only:
                        await conn.set_read_only(True)
                    return replica, conn
                except (psycopg_pool.PoolTimeout, psycopg.OperationalError) as exc:
                    logger.warning("replica %s unavailable (%s): reading from the primary", index, type(exc).__name__)
                    self._replicas.mark_down(index)
        pool = self._pool or await self._primary()
        try:
            conn = await pool.getconn()
        except psycopg_pool.PoolTimeout as exc:
            raise PoolTimeout(
                f"no connection free in pool {self.options.name!r} (max_size {self.options.max_size}) within "
                f"{self.options.timeout:g} s: raise DATABASE_POOL_MAX_SIZE or DATABASE_POOL_TIMEOUT, or check "
                f"that the server is up"
            ) from exc
        # Client-side only: psycopg then opens transactions with BEGIN READ ONLY (no extra round trip).
        if conn.read_only != readonly:
            await conn.set_read_only(readonly)
        return pool, conn

    @asynccontextmanager
    async def connection(
        self, *, readonly: bool = False, account: str | None = None, autocommit: bool = False
    ) -> AsyncIterator[AsyncConnection[TupleRow]]:
        """Lend a pooled connection; an open transaction is committed on success, rolled back on error.

        ``readonly=True`` takes it from a healthy replica when replicas are configured, and its transactions are
        read-only (``BEGIN READ ONLY``, on the primary too). Behind PgBouncer a
        service-scoped connection is lent inside a transaction (the role is set with ``SET LOCAL``).
        ``autocommit=True`` is for one statement that is its own transaction: one round trip, no BEGIN or COMMIT
        (when the connection has a scope to set, the statement runs in a transaction as usual).
        """
        tenant = base.check_scope(account, "account") or self.account
        clock = DbClock()
        pool, conn = await self._checkout(readonly)
        scoped = bool((self.role and self.settings.pgbouncer) or tenant or self.app_user)
        try:
            if autocommit and not scoped:
                await conn.set_autocommit(True)
                try:
                    yield conn
                finally:
                    if not conn.closed:
                        await conn.set_autocommit(False)
            elif self.role and self.settings.pgbouncer:
                async with conn.transaction():
                    await conn.execute(base.set_role_sql(self.role, local=True))
                    if tenant or self.app_user:
                        await self._scope(conn, tenant)
                    yield conn
            else:
                if tenant or self.app_user:
                    # Transaction-local (SET LOCAL): a pooled connection never carries one tenant's scope into
                    # another's transaction, and a commit inside the block ends the scope.
                    await self._scope(conn, tenant)
                yield conn
            # pgconn.transaction_status, not conn.info: no object per call on this hot path.
            if conn.pgconn.transaction_status == pq.TransactionStatus.INTRANS:
                await conn.commit()
        except psycopg.Error as exc:
            raise translate(exc) from exc
        finally:
            if not conn.closed and conn.pgconn.transaction_status != pq.TransactionStatus.IDLE:
                try:
                    await conn.rollback()
                except psycopg.Error:
                    logger.debug("rollback failed on a broken connection; the pool discards it")
            await pool.putconn(conn)
            clock.stop()

    @asynccontextmanager
    async def transaction(
        self, *, readonly: bool = False, account: str | None = None
    ) -> AsyncIterator[AsyncConnection[TupleRow]]:
        """Run the block in one transaction: committed when it ends, rolled back when it raises.

        A ``with`` block cannot re-run itself, so nothing here is retried: use :meth:`run_transaction` for work
        that is safe to repeat.
        """
        async with self.connection(readonly=readonly, account=account) as conn, conn.transaction():
            yield conn

    async def run_transaction(
        self,
        fn: Callable[[AsyncConnection[TupleRow]], Awaitable[T]],
        *,
        retries: int | None = None,
        readonly: bool = False,
        account: str | None = None,
        single_statement: bool = False,
    ) -> T:
        """Run ``fn(conn)`` in a transaction, re-running it on transient failures (up to ``retries`` times).

        Retried: lost connections, admin shutdowns, serialization failures and deadlocks, with exponential backoff
        and jitter. Not retried: a connection lost during COMMIT (the outcome is unknown), and every other error.
        When the attempts run out, ``RetriesExhausted`` carries the attempt count and the last error.
        ``single_statement=True``: ``fn`` issues one idempotent statement, which is then its own transaction: one
        round trip (no BEGIN, no COMMIT, and the first attempt's checkout skips the pool's health check). A
        connection lost while it ran is retried, although the statement may have committed: hence idempotent.
        """
        limit = self.settings.retry_attempts if retries is None else retries
        if limit < 0:
            raise ValueError("retries must be >= 0")
        attempt = 0
        while True:
            attempt += 1
            committing = False
            try:
                if single_statement:
                    token = base.SKIP_CHECKOUT_CHECK.set(attempt == 1)
                    try:
                        async with self.connection(readonly=readonly, account=account, autocommit=True) as conn:
                            return await fn(conn)
                    finally:
                        base.SKIP_CHECKOUT_CHECK.reset(token)
                async with self.transaction(readonly=readonly, account=account) as conn:
                    result = await fn(conn)
                    committing = True
                return result
            except TradeDBError as exc:
                if committing and isinstance(exc, ConnectionLost):
                    raise ConnectionLost(
                        f"connection lost while committing; the transaction may or may not have committed: "
                        f"{exc.message}",
                        sqlstate=exc.sqlstate,
                    ) from exc
                if not exc.transient:
                    raise
                if attempt > limit:
                    raise RetriesExhausted(base.retry_message(attempt, exc), attempts=attempt, last=exc) from exc
                delay = base.backoff_delay(attempt)
                COUNTERS.transaction_retries += 1
                logger.warning(
                    "transient failure on attempt %d of %d, retrying in %.3f s: %s",
                    attempt,
                    limit + 1,
                    delay,
                    exc.message,
                )
                await asyncio.sleep(delay)

    # --- helpers ------------------------------------------------------------------------------------------
    # Each helper is one transaction: psycopg opens it implicitly on the first statement and connection()
    # commits it (one context manager less than transaction(), which matters on hot paths).

    async def execute(self, query: base.SqlQuery, params: Params | None = None) -> int:
        """Run one statement in its own transaction; return the affected row count."""
        async with self.connection() as conn:
            cursor = await conn.execute(query, params)
            return cursor.rowcount

    async def fetch_all(
        self, query: base.SqlQuery, params: Params | None = None, *, readonly: bool = True
    ) -> list[dict[str, Any]]:
        """Return every row as a dict (from a replica when configured, unless ``readonly=False``)."""
        async with self.connection(readonly=readonly) as conn, conn.cursor(row_factory=dict_row) as cursor:
            await cursor.execute(query, params)
            return await cursor.fetchall()

    async def fetch_one(
        self, query: base.SqlQuery, params: Params | None = None, *, readonly: bool = True
    ) -> dict[str, Any] | None:
        """Return the first row as a dict, or None."""
        async with self.connection(readonly=readonly) as conn, conn.cursor(row_factory=dict_row) as cursor:
            await cursor.execute(query, params)
            return await cursor.fetchone()

    async def fetch_value(self, query: base.SqlQuery, params: Params | None = None, *, readonly: bool = True) -> Any:
        """Return the first column of the first row, or None."""
        async with self.connection(readonly=readonly) as conn:
            cursor = await conn.execute(query, params)
            row = await cursor.fetchone()
            return row[0] if row is not None else None

    async def _scope(self, conn: AsyncConnection[TupleRow], tenant: str | None) -> None:
        await conn.execute(base.scope_sql(tenant or "", self.app_user or "", citus=await self.on_citus(conn)))

    async def on_citus(self, conn: AsyncConnection[TupleRow]) -> bool:
        """Whether the database is a Citus database, asked once on ``conn`` (one of this Database's): the features
        have a variant of the few statements Citus does not plan."""
        if self._on_citus is None:
            cursor = await conn.execute(ON_CITUS)
            found = await cursor.fetchone()
            self._on_citus = found is not None and bool(found[0])
        return self._on_citus

    def stats(self) -> dict[str, dict[str, int]]:
        """Return psycopg_pool statistics per pool that exists (primary and replicas)."""
        pools = {"primary": self._pool, **{f"replica-{i}": p for i, p in self._replica_pools.items()}}
        return {name: pool.get_stats() for name, pool in pools.items() if pool is not None}

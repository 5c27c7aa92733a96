"""Pooled sync connections: transactions, retries, service scoping and read replicas (no feature).

Logic without I/O lives in ``pooling``. The features hang on the Database, a subclass.
"""

# WARNING: generated from connections_async.py by tools/async_to_sync.py; edit the async source and run
# `python tools/async_to_sync.py`. A unit test fails when this file is stale.

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Self, TypeVar

import psycopg
import psycopg_pool
from psycopg import Connection, pq
from psycopg.abc import Params
from psycopg.rows import TupleRow, dict_row
from psycopg_pool import ConnectionPool

from tradedb.db import pooling as base
from tradedb.db.counters import COUNTERS, DbClock
from tradedb.errors import ConnectionLost, PoolTimeout, RetriesExhausted, TradeDBError, translate
from tradedb.schema.distribution import ON_CITUS
from tradedb.settings import Settings

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _check(conn: Connection[Any]) -> None:
    """The pool's checkout check: a round trip that finds a dead connection, unless the caller opted out."""
    if not base.SKIP_CHECKOUT_CHECK.get():
        ConnectionPool.check_connection(conn)


class Connections:
    """Pools for the primary (and read replicas), created lazily, closed by ``close()`` or ``with``."""

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
        self._pool: ConnectionPool[Connection[TupleRow]] | None = None
        self._replica_pools: dict[int, ConnectionPool[Connection[TupleRow]]] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._on_citus: bool | None = None

    # --- lifecycle ----------------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close every pool; the Database cannot be used afterwards."""
        self._closed = True
        pools = [self._pool, *self._replica_pools.values()]
        self._pool = None
        self._replica_pools = {}
        for pool in pools:
            if pool is not None:
                pool.close()

    def _configure(self, conn: Connection[TupleRow]) -> None:
        # A new connection of a service-scoped Database runs as the service's role. (Behind PgBouncer nothing
        # is set on the session: connection() sets the role per transaction instead.)
        assert self.role is not None
        conn.execute(base.set_role_sql(self.role, local=False))
        conn.commit()

    def _reset(self, conn: Connection[TupleRow]) -> None:
        # A returned connection carries no session state to its next user, and is back in the service's role.
        for statement in base.reset_session_sql(self.role):
            conn.execute(statement)
        conn.commit()

    def _make_pool(self, options: base.PoolOptions) -> ConnectionPool[Connection[TupleRow]]:
        # psycopg_pool hands every returned connection to a worker thread when a reset callback is set, which
        # costs ~20 % of throughput under concurrency: install the callbacks only when there is a role to keep.
        session_role = bool(self.role) and not self.settings.pgbouncer
        pool: ConnectionPool[Connection[TupleRow]] = ConnectionPool(
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
        pool.open(wait=False)
        return pool

    def _primary(self) -> ConnectionPool[Connection[TupleRow]]:
        if self._pool is None:
            with self._lock:
                if self._closed:
                    raise TradeDBError("this Database is closed")
                if self._pool is None:
                    self._pool = self._make_pool(self.options)
        return self._pool

    def _replica(self, index: int) -> ConnectionPool[Connection[TupleRow]]:
        if index not in self._replica_pools:
            with self._lock:
                if index not in self._replica_pools:
                    self._replica_pools[index] = self._make_pool(self.replica_options[index])
        return self._replica_pools[index]

    # --- checkout -----------------------------------------------------------------------------------------

    def _checkout(self, readonly: bool) -> tuple[ConnectionPool[Connection[TupleRow]], Connection[TupleRow]]:
        if readonly:
            for index in self._replicas.candidates():
                replica = self._replica(index)
                try:
                    conn = replica.getconn()
                    if not conn.read_only:
                        conn.set_read_only(True)
                    return replica, conn
                except (psycopg_pool.PoolTimeout, psycopg.OperationalError) as exc:
                    logger.warning("replica %s unavailable (%s): reading from the primary", index, type(exc).__name__)
                    self._replicas.mark_down(index)
        pool = self._pool or self._primary()
        try:
            conn = pool.getconn()
        except psycopg_pool.PoolTimeout as exc:
            raise PoolTimeout(
                f"no connection free in pool {self.options.name!r} (max_size {self.options.max_size}) within "
                f"{self.options.timeout:g} s: raise DATABASE_POOL_MAX_SIZE or DATABASE_POOL_TIMEOUT, or check "
                f"that the server is up"
            ) from exc
        # Client-side only: psycopg then opens transactions with BEGIN READ ONLY (no extra round trip).
        if conn.read_only != readonly:
            conn.set_read_only(readonly)
        return pool, conn

    @contextmanager
    def connection(
        self, *, readonly: bool = False, account: str | None = None, autocommit: bool = False
    ) -> Iterator[Connection[TupleRow]]:
        """Lend a pooled connection; an open transaction is committed on success, rolled back on error.

        ``readonly=True`` takes it from a healthy replica when replicas are configured, and its transactions are
        read-only (``BEGIN READ ONLY``, on the primary too). Behind PgBouncer a
        service-scoped connection is lent inside a transaction (the role is set with ``SET LOCAL``).
        ``autocommit=True`` is for one statement that is its own transaction: one round trip, no BEGIN or COMMIT
        (when the connection has a scope to set, the statement runs in a transaction as usual).
        """
        tenant = base.check_scope(account, "account") or self.account
        clock = DbClock()
        pool, conn = self._checkout(readonly)
        scoped = bool((self.role and self.settings.pgbouncer) or tenant or self.app_user)
        try:
            if autocommit and not scoped:
                conn.set_autocommit(True)
                try:
                    yield conn
                finally:
                    if not conn.closed:
                        conn.set_autocommit(False)
            elif self.role and self.settings.pgbouncer:
                with conn.transaction():
                    conn.execute(base.set_role_sql(self.role, local=True))
                    if tenant or self.app_user:
                        self._scope(conn, tenant)
                    yield conn
            else:
                if tenant or self.app_user:
                    # Transaction-local (SET LOCAL): a pooled connection never carries one tenant's scope into
                    # another's transaction, and a commit inside the block ends the scope.
                    self._scope(conn, tenant)
                yield conn
            # pgconn.transaction_status, not conn.info: no object per call on this hot path.
            if conn.pgconn.transaction_status == pq.TransactionStatus.INTRANS:
                conn.commit()
        except psycopg.Error as exc:
            raise translate(exc) from exc
        finally:
            if not conn.closed and conn.pgconn.transaction_status != pq.TransactionStatus.IDLE:
                try:
                    conn.rollback()
                except psycopg.Error:
                    logger.debug("rollback failed on a broken connection; the pool discards it")
            pool.putconn(conn)
            clock.stop()

    @contextmanager
    def transaction(self, *, readonly: bool = False, account: str | None = None) -> Iterator[Connection[TupleRow]]:
        """Run the block in one transaction: committed when it ends, rolled back when it raises.

        A ``with`` block cannot re-run itself, so nothing here is retried: use :meth:`run_transaction` for work
        that is safe to repeat.
        """
        with self.connection(readonly=readonly, account=account) as conn, conn.transaction():
            yield conn

    def run_transaction(
        self,
        fn: Callable[[Connection[TupleRow]], T],
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
                        with self.connection(readonly=readonly, account=account, autocommit=True) as conn:
                            return fn(conn)
                    finally:
                        base.SKIP_CHECKOUT_CHECK.reset(token)
                with self.transaction(readonly=readonly, account=account) as conn:
                    result = fn(conn)
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
                time.sleep(delay)

    # --- helpers ------------------------------------------------------------------------------------------
    # Each helper is one transaction: psycopg opens it implicitly on the first statement and connection()
    # commits it (one context manager less than transaction(), which matters on hot paths).

    def execute(self, query: base.SqlQuery, params: Params | None = None) -> int:
        """Run one statement in its own transaction; return the affected row count."""
        with self.connection() as conn:
            cursor = conn.execute(query, params)
            return cursor.rowcount

    def fetch_all(
        self, query: base.SqlQuery, params: Params | None = None, *, readonly: bool = True
    ) -> list[dict[str, Any]]:
        """Return every row as a dict (from a replica when configured, unless ``readonly=False``)."""
        with self.connection(readonly=readonly) as conn, conn.cursor(row_factory=dict_row) as cursor:
            cursor.execute(query, params)
            return cursor.fetchall()

    def fetch_one(
        self, query: base.SqlQuery, params: Params | None = None, *, readonly: bool = True
    ) -> dict[str, Any] | None:
        """Return the first row as a dict, or None."""
        with self.connection(readonly=readonly) as conn, conn.cursor(row_factory=dict_row) as cursor:
            cursor.execute(query, params)
            return cursor.fetchone()

    def fetch_value(self, query: base.SqlQuery, params: Params | None = None, *, readonly: bool = True) -> Any:
        """Return the first column of the first row, or None."""
        with self.connection(readonly=readonly) as conn:
            cursor = conn.execute(query, params)
            row = cursor.fetchone()
            return row[0] if row is not None else None

    def _scope(self, conn: Connection[TupleRow], tenant: str | None) -> None:
        conn.execute(base.scope_sql(tenant or "", self.app_user or "", citus=self.on_citus(conn)))

    def on_citus(self, conn: Connection[TupleRow]) -> bool:
        """Whether the database is a Citus database, asked once on ``conn`` (one of this Database's): the features
        have a variant of the few statements Citus does not plan."""
        if self._on_citus is None:
            cursor = conn.execute(ON_CITUS)
            found = cursor.fetchone()
            self._on_citus = found is not None and bool(found[0])
        return self._on_citus

    def stats(self) -> dict[str, dict[str, int]]:
        """Return psycopg_pool statistics per pool that exists (primary and replicas)."""
        pools = {"primary": self._pool, **{f"replica-{i}": p for i, p in self._replica_pools.items()}}
        return {name: pool.get_stats() for name, pool in pools.items() if pool is not None}

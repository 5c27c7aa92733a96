"""Logic without I/O shared by the sync and async Database: options, roles, retry policy, replica choice."""

from __future__ import annotations

import random
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

from tradedb.errors import ConfigError, TradeDBError, ValidationError
from tradedb.schema import privileges as roles
from tradedb.settings import Settings

#: What the query helpers accept: text, or SQL composed with psycopg.sql (identifiers never by f-string).
SqlQuery = str | bytes | sql.SQL | sql.Composed


@dataclass(frozen=True)
class PoolOptions:
    """Everything a psycopg_pool pool is built from."""

    conninfo: str
    kwargs: dict[str, Any]
    min_size: int
    max_size: int
    timeout: float
    max_lifetime: float
    max_idle: float
    name: str


def pool_options(
    settings: Settings,
    url: str,
    *,
    name: str,
    min_size: int | None = None,
    max_size: int | None = None,
    timeout: float | None = None,
    max_lifetime: float | None = None,
    max_idle: float | None = None,
) -> PoolOptions:
    """Combine settings and keyword overrides into validated pool options."""
    options = PoolOptions(
        conninfo=url,
        kwargs=connection_kwargs(settings),
        min_size=settings.pool_min_size if min_size is None else min_size,
        max_size=settings.pool_max_size if max_size is None else max_size,
        timeout=settings.checkout_timeout() if timeout is None else timeout,
        max_lifetime=settings.max_lifetime if max_lifetime is None else max_lifetime,
        max_idle=settings.idle_timeout if max_idle is None else max_idle,
        name=name,
    )
    if options.max_size < 1:
        raise ValidationError(f"max_size must be at least 1, got {options.max_size}")
    if not 0 <= options.min_size <= options.max_size:
        raise ValidationError(f"min_size must be between 0 and max_size ({options.max_size}), got {options.min_size}")
    for label, value in (
        ("timeout", options.timeout),
        ("max_lifetime", options.max_lifetime),
        ("max_idle", options.max_idle),
    ):
        if value <= 0:
            raise ValidationError(f"{label} must be positive, got {value}")
    return options


#: Set for the first attempt of an idempotent single statement: its checkout skips the pool's health check (a
#: round trip), since a dead connection fails that attempt with ConnectionLost and the retry is checked.
SKIP_CHECKOUT_CHECK: ContextVar[bool] = ContextVar("tradedb_skip_checkout_check", default=False)


def connection_kwargs(settings: Settings) -> dict[str, Any]:
    """Return psycopg.connect keyword arguments: libpq options, and no prepared statements behind PgBouncer."""
    kwargs: dict[str, Any] = dict(settings.connection_options())
    if settings.pgbouncer:
        # Transaction pooling hands each transaction to any server connection: prepared statements would
        # be missing on the next one.
        kwargs["prepare_threshold"] = None
    return kwargs


def service_role(settings: Settings, service: str | None) -> str | None:
    """Return the role a Database scoped to ``service`` runs as (None: the login role)."""
    name = service if service is not None else settings.service
    if name is None:
        return None
    known = [r.service for r in roles.SERVICE_ROLES]
    if name not in known:
        raise ConfigError(f"unknown service {name!r}; one of {', '.join(known)}")
    return roles.role_name(settings.role_prefix, name)


def set_role_sql(role: str, *, local: bool) -> sql.Composed:
    """Return ``SET [LOCAL] ROLE role``."""
    return sql.SQL("SET LOCAL ROLE {}" if local else "SET ROLE {}").format(sql.Identifier(role))


def reset_session_sql(role: str | None) -> list[sql.SQL | sql.Composed]:
    """Return what a returned connection runs so that no session state reaches the next user.

    ``RESET ALL`` leaves the role alone, so the role is reset (or set back to the service's) explicitly.
    """
    statements: list[sql.SQL | sql.Composed] = [sql.SQL("RESET ALL")]
    statements.append(set_role_sql(role, local=False) if role else sql.SQL("RESET ROLE"))
    return statements


def scope_sql(account: str, app_user: str, *, citus: bool = False) -> sql.Composed:
    """Set the transaction's tenant (row-level security) and application user (audit log), transaction-locally.

    ``SET LOCAL`` rather than ``set_config``: on a Citus coordinator (``citus``) the transaction passes its
    ``SET LOCAL`` commands on to the workers it opens, where the shards' policies and audit triggers read them.
    """
    statement = sql.SQL("SET LOCAL tradedb.account = {}; SET LOCAL tradedb.app_user = {}").format(
        sql.Literal(account), sql.Literal(app_user)
    )
    if citus:
        return sql.Composed([sql.SQL("SET LOCAL citus.propagate_set_commands = 'local'; "), statement])
    return statement


def check_scope(value: str | None, name: str) -> str | None:
    """Validate an account or application user name (None: not set)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 128:
        raise ValidationError(f"{name} must be a non-empty string of at most 128 characters, got {value!r}")
    return value


def backoff_delay(attempt: int, *, base: float = 0.05, cap: float = 2.0, rng: random.Random | None = None) -> float:
    """Return the wait before retry ``attempt`` (1-based): exponential growth with full jitter."""
    ceiling = min(cap, base * 2 ** (attempt - 1))
    return (rng or random).uniform(0, ceiling)


def retry_message(attempts: int, last: TradeDBError) -> str:
    """Describe work that kept failing with transient errors."""
    return f"gave up after {attempts} attempt(s): {last.message}"


@dataclass
class ReplicaTracker:
    """Which replicas are usable for reads; a failed replica is skipped for ``retry_interval`` seconds."""

    count: int
    retry_interval: float
    down_until: dict[int, float] = field(default_factory=dict)
    next_index: int = 0

    def candidates(self, now: float | None = None) -> list[int]:
        """Return the replicas to try, healthy ones first in round-robin order."""
        now = time.monotonic() if now is None else now
        order = [(self.next_index + i) % self.count for i in range(self.count)] if self.count else []
        self.next_index = (self.next_index + 1) % self.count if self.count else 0
        return [i for i in order if self.down_until.get(i, 0.0) <= now]

    def mark_down(self, index: int, now: float | None = None) -> None:
        """Skip replica ``index`` for a while."""
        self.down_until[index] = (time.monotonic() if now is None else now) + self.retry_interval

    def mark_up(self, index: int) -> None:
        """Use replica ``index`` again."""
        self.down_until.pop(index, None)


#: Replication state of a server: in recovery, seconds since the last replayed transaction, bytes not replayed.
REPLICATION_LAG_SQL = """
SELECT pg_is_in_recovery(),
       EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8,
       pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::float8
"""

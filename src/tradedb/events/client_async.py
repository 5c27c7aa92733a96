"""The Redis client of the events package: opened from the settings, checked with a PING, errors made typed.

Redis URLs: ``redis://[:password@]host:port/db``, ``rediss://`` (TLS; ``?ssl_ca_certs=...`` and the other
redis-py options in the query) or ``unix://``. A password never appears in a message.
"""

# source-only: the one source; tools/async_to_sync.py generates the sync twin.

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio
import redis.exceptions

from tradedb.errors import EventsError, EventsUnavailable
from tradedb.masking import mask_url
from tradedb.settings import Settings


def _explain(exc: redis.exceptions.RedisError, url: str) -> EventsUnavailable:
    where = mask_url(url)
    if isinstance(exc, redis.exceptions.AuthenticationError) or "WRONGPASS" in str(exc) or "NOAUTH" in str(exc):
        return EventsUnavailable(f"Redis at {where} refused the credentials: check the password in REDIS_URL")
    return EventsUnavailable(f"cannot reach Redis at {where}: {mask_url(str(exc)) or type(exc).__name__}")


async def open_redis(settings: Settings, url: str | None = None) -> redis.asyncio.Redis:
    """A client for ``url`` (default: the configured Redis), checked with a PING."""
    url = url or settings.redis_address()
    if url is None:
        raise EventsUnavailable("no Redis is configured: set REDIS_URL (or REDIS_HOST)")
    try:
        client = redis.asyncio.Redis.from_url(
            url,
            decode_responses=True,
            protocol=2,  # the reply shapes the consumers parse
            socket_timeout=10.0,
            socket_connect_timeout=5.0,
            health_check_interval=15,
        )
        await client.ping()
    except ValueError as exc:  # a malformed URL
        raise EventsUnavailable(f"Redis URL {mask_url(url)} is malformed: {mask_url(str(exc))}") from None
    except redis.exceptions.RedisError as exc:
        raise _explain(exc, url) from None
    return client


@asynccontextmanager
async def redis_errors(url: str) -> AsyncIterator[None]:
    """Turn Redis failures inside the block into typed errors: EventsUnavailable when it cannot be reached,
    EventsError when it refuses a command (out of memory, a key of another type); URLs masked."""
    try:
        yield
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        raise _explain(exc, url) from None
    except redis.exceptions.ResponseError as exc:
        raise EventsError(f"Redis at {mask_url(url)} refused a command: {mask_url(str(exc))}") from None

"""``db.events``: emit events, run the relay, consume, and see where everything is.

Where events go follows TRADEDB_EVENTS_BACKEND: Redis Streams when a Redis is configured (``auto``), else the
PostgreSQL streams, read by the same consumer API with no server beside PostgreSQL.
"""

# WARNING: generated from api_async.py by tools/async_to_sync.py; edit the async source and run
# `python tools/async_to_sync.py`. A unit test fails when this file is stale.

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import redis
import redis.exceptions
from psycopg import Connection

from tradedb.db.outbox import emit
from tradedb.db.outbox_rules import STREAMS, new_event
from tradedb.errors import EventsUnavailable, UnknownGroup, ValidationError
from tradedb.events import _sql as q
from tradedb.events.cache import Cache
from tradedb.events.client import open_redis, redis_errors
from tradedb.events.consumer import (
    ConsumeOptions,
    ConsumeStats,
    Handler,
    PostgresConsumer,
    RedisConsumer,
)
from tradedb.events.envelope import (
    DEAD_PREFIX,
    Event,
    check_group,
    check_positive,
    check_streams,
    dead_key,
    from_row,
    stream_key,
)
from tradedb.events.relay import Relay
from tradedb.masking import mask_url

if TYPE_CHECKING:
    from tradedb.db.connections import Connections

logger = logging.getLogger("tradedb.events")


class Events:
    """The events of one Database (``db.events``)."""

    def __init__(self, db: Connections) -> None:
        self._db = db
        self._client: redis.Redis | None = None

    @property
    def backend(self) -> str:
        """``redis`` or ``postgres`` (TRADEDB_EVENTS_BACKEND; ``auto``: redis when REDIS_URL is set)."""
        return "redis" if self._db.settings.events_to_redis() else "postgres"

    @property
    def redis_url(self) -> str:
        return self._db.settings.redis_address() or ""

    def redis_client(self) -> redis.Redis:
        """The Redis client (opened on first use); EventsUnavailable when none is configured or reachable."""
        if self._client is None:
            self._client = open_redis(self._db.settings)
        return self._client

    def cache(self) -> Cache | None:
        """The Redis cache of latest quotes and positions, or None without Redis (or when it is unreachable)."""
        if self.backend != "redis":
            return None
        try:
            return Cache(self.redis_client(), self._db.settings.cache_staleness)
        except EventsUnavailable as exc:
            logger.warning("cache unavailable, reading PostgreSQL: %s", exc.message)
            return None

    def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            client.close()

    # --- writing ------------------------------------------------------------------------------------------

    def emit(
        self,
        stream: str,
        aggregate_id: str | int,
        type: str,
        payload: Mapping[str, Any],
        *,
        conn: Connection[Any] | None = None,
    ) -> None:
        """Write an event of your own: in ``conn``'s open transaction (so it commits with your change), else in
        a transaction of its own. A payload that is not a JSON object raises ValidationError."""
        if stream in STREAMS:
            raise ValidationError(f"{stream!r} is a stream tradedb writes itself; emit to a stream of your own")
        event = new_event(stream, aggregate_id, type, payload)
        if conn is not None:
            emit(conn, [event])
            return
        with self._db.transaction() as own:
            emit(own, [event])

    # --- relaying and consuming ---------------------------------------------------------------------------

    def relay(self, *, batch: int = 1000, depth: int = 2, poll: float = 1.0, cache: bool = True) -> Relay:
        """A relay for this database's outbox (call ``run()``): to Redis, or numbering the PostgreSQL streams.
        ``batch`` events per claim, ``depth`` claims per transaction (Redis takes one while the next is claimed),
        ``poll`` seconds between polls when no NOTIFY comes, ``cache`` keeps the Redis quote/position cache."""
        if self.backend == "postgres":
            return Relay(self._db, None, batch=batch, depth=depth, poll=poll)
        client = self.redis_client()
        store = Cache(client, self._db.settings.cache_staleness) if cache else None
        return Relay(self._db, client, redis_url=self.redis_url, cache=store, batch=batch, depth=depth, poll=poll)

    def streams(self) -> list[str]:
        """Every stream: tradedb's own and those an ``emit`` has written to."""
        rows = self._db.fetch_all(q.KNOWN_STREAMS, readonly=False)
        return check_streams(None, (r["aggregate_type"] for r in rows))

    def consumer(
        self,
        group: str,
        handler: Handler,
        streams: Sequence[str] | str | None = None,
        *,
        consumer: str | None = None,
        inbox: bool = True,
        max_attempts: int = 5,
        retry_after: float = 5.0,
        batch: int = 100,
        block: float = 1.0,
        start: str = "earliest",
    ) -> RedisConsumer | PostgresConsumer:
        """A consumer in ``group`` of ``streams`` (default all); call ``run()``. See ``consumer`` for options."""
        check_group(group)
        if not callable(handler):
            raise ValidationError("handler must be callable: handler(event, conn)")
        known = self.streams()
        wanted = check_streams(streams, known)
        options = ConsumeOptions(inbox, max_attempts, retry_after, batch, block, start).checked()
        if self.backend == "postgres":
            return PostgresConsumer(self._db, group, handler, wanted, options)
        return RedisConsumer(
            self._db,
            self.redis_client(),
            url=self.redis_url,
            group=group,
            handler=handler,
            streams=wanted,
            options=options,
            consumer=consumer,
        )

    def consume(
        self,
        group: str,
        handler: Handler,
        streams: Sequence[str] | str | None = None,
        *,
        max_events: int | None = None,
        until_idle: bool = False,
        **options: Any,
    ) -> ConsumeStats:
        """Handle events of ``streams`` as ``group`` until stopped (``max_events``, ``until_idle``)."""
        if max_events is not None:
            check_positive(max_events, "max_events")
        worker = self.consumer(group, handler, streams, **options)
        return worker.run(max_events=max_events, until_idle=until_idle)

    # --- looking ------------------------------------------------------------------------------------------

    def tail(self, stream: str | None = None, *, limit: int = 20, after: int = 0) -> list[Event]:
        """The newest ``limit`` events (of ``stream``), oldest first, delivered or not, from the outbox; with
        ``after`` (an event id), the first ``limit`` events after it."""
        if stream is not None:
            check_streams([stream], self.streams())
        check_positive(limit, "limit")
        params = {"stream": stream, "limit": limit, "after": after}
        rows = self._db.fetch_all(q.TAIL, params, readonly=False)
        return [from_row(r) for r in rows]

    def dead_letters(self, group: str, *, limit: int = 100) -> list[dict[str, Any]]:
        """What ``group`` gave up on, oldest first."""
        check_group(group)
        check_positive(limit, "limit")
        if self.backend == "postgres":
            if not self._db.fetch_value(q.GROUP_EXISTS, (group,), readonly=False):
                raise UnknownGroup(f"no consumer group {group!r}")
            return self._db.fetch_all(q.DEAD_LETTERS, (group, limit), readonly=False)
        client = self.redis_client()
        with redis_errors(self.redis_url):
            if group not in self._redis_groups(client):
                raise UnknownGroup(f"no consumer group {group!r}")
            entries = cast(list[Any], client.xrange(dead_key(group), count=limit))
        return [{"dead_letter_id": entry_id, **fields} for entry_id, fields in entries]

    def _redis_groups(self, client: redis.Redis) -> set[str]:
        names: set[str] = set()
        for stream in self.streams():
            try:
                groups = client.xinfo_groups(stream_key(stream))
            except redis.exceptions.ResponseError:  # no such stream yet
                continue
            names.update(g["name"] for g in groups)
        return names

    def status(self) -> dict[str, Any]:
        """Undelivered count and oldest age, per-stream lengths, consumer groups and their lag, dead letters."""
        undelivered = self._db.fetch_one(q.UNDELIVERED, readonly=False)
        assert undelivered is not None
        report: dict[str, Any] = {
            "backend": self.backend,
            "redis": mask_url(self.redis_url) if self.redis_url else None,
            "undelivered": undelivered["undelivered"],
            "oldest_undelivered_seconds": undelivered["oldest_age"],
            "streams": [],
            "groups": [],
            "dead_letters": {},
        }
        if self.backend == "postgres":
            streams = self._db.fetch_all(q.PG_STREAMS, readonly=False)
            report["streams"] = [{"stream": r["stream"], "length": r["last_position"]} for r in streams]
            groups = self._db.fetch_all(q.PG_GROUPS, readonly=False)
            report["groups"] = [
                {"group": g["group_name"], "stream": g["stream"], "lag": g["lag"], "pending": g["attempts"] > 0}
                for g in groups
            ]
            dead = self._db.fetch_all(q.PG_DEAD_LETTERS, readonly=False)
            report["dead_letters"] = {r["group_name"]: r["n"] for r in dead}
            return report
        client = self.redis_client()
        with redis_errors(self.redis_url):
            for stream in self.streams():
                key = stream_key(stream)
                length = client.xlen(key)
                if not length and not client.exists(key):
                    continue
                report["streams"].append({"stream": stream, "length": length})
                for g in client.xinfo_groups(key):
                    report["groups"].append(
                        {
                            "group": g["name"],
                            "stream": stream,
                            "lag": g.get("lag"),
                            "pending": g["pending"],
                            "consumers": g["consumers"],
                        }
                    )
            for key in client.scan_iter(match=f"{DEAD_PREFIX}*"):
                report["dead_letters"][key.removeprefix(DEAD_PREFIX)] = client.xlen(key)
        return report

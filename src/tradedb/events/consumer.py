"""Consumers: a handler called for each event of some streams, as a consumer group.

With Redis: consumer groups (``XREADGROUP``); a message left unacknowledged for ``retry_after`` seconds (its
handler failed, or its consumer died) is claimed again (``XAUTOCLAIM``); after ``max_attempts`` failures it moves
to the group's dead-letter stream. Without Redis: the same API reads the PostgreSQL streams (the outbox, by
position), one consumer of a group at a time, woken by NOTIFY; dead letters go to ``shared.event_dead_letters``.

With ``inbox=True`` (the default) the handler gets a connection in an open transaction: tradedb records the event
in ``shared.event_inbox`` in that transaction, so the handler's writes commit exactly once per event and group
however often the event is delivered. With ``inbox=False`` it gets None and each event at least once.
"""

# WARNING: generated from consumer_async.py by tools/async_to_sync.py; edit the async source and run
# `python tools/async_to_sync.py`. A unit test fails when this file is stale.

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import redis
import redis.exceptions
from psycopg import Connection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from tradedb.errors import ConnectionError, EventsUnavailable, RetryableError, ValidationError
from tradedb.events import _sql as q
from tradedb.events._listen import Listener
from tradedb.events.client import redis_errors
from tradedb.events.envelope import Event, check_count, check_positive, dead_key, from_redis, from_row, stream_key
from tradedb.events.relay import BACKOFF, MAX_BACKOFF, Relay
from tradedb.masking import mask_secrets

if TYPE_CHECKING:
    from tradedb.db.connections import Connections

logger = logging.getLogger("tradedb.events")

#: ``handler(event, conn)``: conn is in the inbox's open transaction (None with ``inbox=False``).
Handler = Callable[[Event, Connection[Any] | None], None]
ATTEMPTS_PREFIX = "tradedb:attempts:"


@dataclass
class ConsumeStats:
    """What a consumer did: events handled, deliveries the inbox had seen, failed attempts, dead letters."""

    handled: int = 0
    duplicates: int = 0
    failures: int = 0
    dead_letters: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class ConsumeOptions:
    inbox: bool = True
    max_attempts: int = 5
    retry_after: float = 5.0
    batch: int = 100
    block: float = 1.0
    start: str = "earliest"

    def checked(self) -> ConsumeOptions:
        check_count(self.max_attempts, "max_attempts")
        check_count(self.batch, "batch", 10_000)
        check_positive(self.retry_after, "retry_after")
        check_positive(self.block, "block")
        if self.start not in ("earliest", "latest"):
            raise ValidationError(f"start must be 'earliest' or 'latest'; got {self.start!r}")
        return self


def consumer_name() -> str:
    """A name unique to this process (host and pid): a restarted consumer is a new one."""
    return f"{socket.gethostname()}-{os.getpid()}"


class _Consumer:
    def __init__(
        self, db: Connections, group: str, handler: Handler, streams: Sequence[str], options: ConsumeOptions
    ) -> None:
        self._db = db
        self.group = group
        self._handler = handler
        self.streams = list(streams)
        self.options = options
        self.stats = ConsumeStats()
        self._stopping = False

    def stop(self) -> None:
        """Ask a running ``run`` to return after the events in hand."""
        self._stopping = True

    def setup(self) -> None:
        raise NotImplementedError

    def poll_once(self) -> int:
        """Take what is there; return how many messages it took (handled, seen before, failed or given up)."""
        raise NotImplementedError

    def _idle(self) -> None:
        """Wait for more events when a poll found none (the Redis read blocks by itself)."""

    def _close(self) -> None:
        """Release what ``run`` held."""

    def _call(self, event: Event) -> bool:
        """Run the handler (in the inbox's transaction); False when the inbox had seen the event already."""
        if not self.options.inbox:
            self._handler(event, None)
            return True
        with self._db.transaction() as conn:
            row = (conn.execute(q.CLAIM_INBOX, (self.group, event.event_id))).fetchone()
            if row is None or not row[0]:
                return False
            self._handler(event, conn)
        return True

    def run(self, *, max_events: int | None = None, until_idle: bool = False) -> ConsumeStats:
        """Handle events until ``stop()`` (or ``max_events`` handled, or with ``until_idle`` a poll finds none)."""
        self.setup()
        delay = BACKOFF
        try:
            while not self._stopping:
                try:
                    n = self.poll_once()
                    delay = BACKOFF
                except (EventsUnavailable, ConnectionError, RetryableError) as exc:
                    logger.warning("consumer %s: %s; retrying in %.2f s", self.group, exc.message, delay)
                    time.sleep(delay)
                    delay = min(delay * 2, MAX_BACKOFF)
                    continue
                if max_events is not None and self.stats.handled >= max_events:
                    break
                if n == 0:
                    if until_idle:
                        break
                    self._idle()
        finally:
            self._close()
        return self.stats


class RedisConsumer(_Consumer):
    """A consumer of Redis streams in a consumer group."""

    def __init__(
        self,
        db: Connections,
        client: redis.Redis,
        *,
        url: str,
        group: str,
        handler: Handler,
        streams: Sequence[str],
        options: ConsumeOptions,
        consumer: str | None = None,
    ) -> None:
        super().__init__(db, group, handler, streams, options)
        self._client = client
        self._url = url
        self.consumer = consumer or consumer_name()
        self._keys = [stream_key(s) for s in self.streams]
        self._attempts = ATTEMPTS_PREFIX + group
        self._next_reclaim = 0.0

    def setup(self) -> None:
        start = "0" if self.options.start == "earliest" else "$"
        with redis_errors(self._url):
            for key in self._keys:
                try:
                    self._client.xgroup_create(key, self.group, id=start, mkstream=True)
                except redis.exceptions.ResponseError as exc:
                    if "BUSYGROUP" not in str(exc):
                        raise

    def poll_once(self) -> int:
        handled = 0
        with redis_errors(self._url):
            if time.monotonic() >= self._next_reclaim:
                handled += self._reclaim()
                self._next_reclaim = time.monotonic() + self.options.retry_after / 2
            response = self._client.xreadgroup(
                self.group,
                self.consumer,
                cast(Any, dict.fromkeys(self._keys, ">")),
                count=self.options.batch,
                block=max(1, int(self.options.block * 1000)),
            )
            for key, entries in cast(list[Any], response or []):  # RESP2 (open_redis): [[key, entries], ...]
                for entry_id, fields in entries:
                    handled += self._handle(key, entry_id, fields, retried=False)
        return handled

    def _reclaim(self) -> int:
        """Claim the messages idle for ``retry_after`` (failed, or their consumer died) and handle them again."""
        handled = 0
        idle_ms = int(self.options.retry_after * 1000)
        for key in self._keys:
            start = "0-0"
            while True:
                reply: list[Any] = self._client.xautoclaim(
                    key, self.group, self.consumer, idle_ms, start_id=start, count=self.options.batch
                )
                start, entries = reply[0], reply[1]
                for entry_id, fields in entries:
                    if not fields:  # the entry was trimmed away meanwhile
                        continue
                    delivered = self._deliveries(key, entry_id)
                    if delivered > self.options.max_attempts:
                        # Failures dead-letter at max_attempts: more deliveries than that mean its consumers died
                        # handling it (a handler that kills the process). Stop before it kills this one.
                        error = f"delivered {delivered} times and never acknowledged: its consumers died handling it"
                        self._dead(key, entry_id, fields, error, delivered)
                        handled += 1
                        continue
                    handled += self._handle(key, entry_id, fields, retried=True)
                if start == "0-0" or not entries:
                    break
        return handled

    def _deliveries(self, key: str, entry_id: str) -> int:
        """How often the group delivered the entry (this claim included)."""
        pending = cast(list[dict[str, Any]], self._client.xpending_range(key, self.group, entry_id, entry_id, 1))
        return int(pending[0]["times_delivered"]) if pending else 0

    def _handle(self, key: str, entry_id: str, fields: Mapping[str, str], *, retried: bool) -> int:
        try:
            event = from_redis(key, entry_id, fields)
        except ValidationError as exc:
            self._dead(key, entry_id, fields, exc.message, 0)
            return 1
        try:
            fresh = self._call(event)
        except (EventsUnavailable, ConnectionError, RetryableError):
            raise  # the infrastructure, not the handler: not an attempt; the message stays pending
        except Exception as exc:  # the handler's own failure, whatever it is
            self.stats.failures += 1
            attempts = self._client.hincrby(self._attempts, entry_id, 1)
            logger.warning("handler of %s failed on %s (attempt %d): %r", self.group, entry_id, attempts, exc)
            if attempts >= self.options.max_attempts:
                self._dead(key, entry_id, fields, mask_secrets(repr(exc)), attempts)
            return 1
        pipe = self._client.pipeline(transaction=False)
        pipe.xack(key, self.group, entry_id)
        if retried:
            pipe.hdel(self._attempts, entry_id)
        pipe.execute()
        if fresh:
            self.stats.handled += 1
        else:
            self.stats.duplicates += 1
        return 1

    def _dead(self, key: str, entry_id: str, fields: Mapping[str, str], error: str, attempts: int) -> None:
        letter: dict[Any, Any] = {
            **fields,
            "stream_key": key,
            "entry_id": entry_id,
            "error": error[:2000],
            "attempts": attempts,
        }
        pipe = self._client.pipeline(transaction=True)
        pipe.xadd(dead_key(self.group), letter, maxlen=self._db.settings.events_maxlen, approximate=True)
        pipe.xack(key, self.group, entry_id)
        pipe.hdel(self._attempts, entry_id)
        pipe.execute()
        self.stats.dead_letters += 1
        logger.error("consumer group %s gave up on %s after %d attempts: %s", self.group, entry_id, attempts, error)


class PostgresConsumer(_Consumer):
    """A consumer of the PostgreSQL streams: the group's row is its cursor and its lock."""

    def __init__(
        self, db: Connections, group: str, handler: Handler, streams: Sequence[str], options: ConsumeOptions
    ) -> None:
        super().__init__(db, group, handler, streams, options)
        self._pump = Relay(db, None)
        self._listener = Listener(db.options.conninfo, db.options.kwargs)

    def setup(self) -> None:
        with self._db.transaction() as conn:
            for stream in self.streams:
                params = {"stream": stream, "group": self.group, "latest": self.options.start == "latest"}
                conn.execute(q.ENSURE_GROUP, params)

    def poll_once(self) -> int:
        # Any consumer numbers what the outbox holds: no relay process is needed without Redis.
        while self._pump.publish_once() == self._pump.batch:
            pass
        handled = 0
        for stream in self.streams:
            handled += self._stream_once(stream)
        return handled

    def _idle(self) -> None:
        self._listener.wait(self.options.block)

    def _close(self) -> None:
        self._listener.close()

    def _stream_once(self, stream: str) -> int:
        handled = 0
        with self._db.transaction() as conn:
            cursor = conn.cursor(row_factory=dict_row)
            cursor.execute(q.LOCK_GROUP, (stream, self.group))
            group = cursor.fetchone()
            assert group is not None, "setup() made the group"
            if group["attempts"] and group["idle"] < self.options.retry_after:
                return 0  # the next event failed recently: wait before trying it again
            cursor.execute(q.READ_STREAM, (stream, group["position"], self.options.batch))
            rows = cursor.fetchall()
            position, attempts = group["position"], group["attempts"]
            failed = False
            for row in rows:
                event = from_row(row)
                try:
                    with conn.transaction():  # a savepoint: a failed handler's writes are undone alone
                        self._handler(event, conn if self.options.inbox else None)
                except Exception as exc:  # the handler's own failure
                    self.stats.failures += 1
                    attempts += 1
                    logger.warning(
                        "handler of %s failed on event %d (attempt %d): %r", self.group, event.event_id, attempts, exc
                    )
                    if attempts < self.options.max_attempts:
                        failed = True
                        break
                    cursor.execute(
                        q.INSERT_DEAD_LETTER,
                        (
                            self.group,
                            stream,
                            event.event_id,
                            attempts,
                            mask_secrets(repr(exc))[:2000],
                            Jsonb(event.as_dict()),
                        ),
                    )
                    self.stats.dead_letters += 1
                else:
                    self.stats.handled += 1
                handled += 1
                position, attempts = row["stream_position"], 0
            if position != group["position"]:
                cursor.execute(q.ADVANCE_GROUP, (position, stream, self.group))
            if failed:
                cursor.execute(q.FAILED_ATTEMPT, (stream, self.group))
        return handled

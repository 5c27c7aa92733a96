"""The relay: publishes the outbox to Redis Streams (or numbers it into PostgreSQL streams when there is no
Redis), at least once and in order per aggregate.

One transaction claims a batch (``FOR UPDATE SKIP LOCKED``, so several relays share the work) and marks it
delivered, publishes it (pipelined ``XADD`` with an approximate ``MAXLEN``) and, while Redis takes it, claims the
next, up to ``depth`` batches; it commits once Redis acknowledged them all. Killed before the commit, the relay
leaves its batches undelivered and they are published again: a consumer sees at most ``depth`` batches twice per
kill, recognizable by ``event_id`` (and each aggregate's ``seq``). A Redis or PostgreSQL outage rolls the claim
back; the relay retries with backoff and resumes by itself. After delivering, the relay refreshes the Redis cache
of latest quotes and positions from committed data (see ``cache``).
"""

# WARNING: generated from relay_async.py by tools/async_to_sync.py; edit the async source and run
# `python tools/async_to_sync.py`. A unit test fails when this file is stale.

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis
import redis.exceptions
from psycopg.rows import dict_row

from tradedb.db.inflight import Background
from tradedb.errors import ConnectionError, EventsError, RetryableError
from tradedb.events import _sql as q
from tradedb.events._listen import Listener
from tradedb.events._resp import XADD_BATCH, XADD_BATCH_SHA, xadd_batch
from tradedb.events.cache import Cache
from tradedb.events.client import redis_errors
from tradedb.events.envelope import check_count, check_positive, redis_fields, stream_key
from tradedb.masking import mask_secrets

if TYPE_CHECKING:
    from tradedb.db.connections import Connections

logger = logging.getLogger("tradedb.events")
#: Backoff after a failed claim: from this, doubling, up to MAX_BACKOFF seconds.
BACKOFF = 0.05
MAX_BACKOFF = 2.0


@dataclass
class RelayStats:
    """What a relay run did: events and batches delivered, cache entries written, failed attempts."""

    delivered: int = 0
    batches: int = 0
    cached: int = 0
    failures: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class Relay:
    """Publishes the outbox. ``redis_client`` None: PostgreSQL streams (positions in the outbox itself)."""

    def __init__(
        self,
        db: Connections,
        redis_client: redis.Redis | None,
        *,
        redis_url: str = "",
        cache: Cache | None = None,
        batch: int = 1000,
        depth: int = 2,
        poll: float = 1.0,
        maxlen: int | None = None,
    ) -> None:
        self._db = db
        self._redis = redis_client
        self._url = redis_url
        self._cache = cache
        self.batch = check_count(batch, "batch", 100_000)
        #: Batches per transaction: Redis takes one while the next is claimed. A relay killed mid-transaction
        #: leaves at most ``depth`` batches to publish again.
        self.depth = check_count(depth, "depth", 16)
        self.poll = check_positive(poll, "poll")
        self.maxlen = maxlen or db.settings.events_maxlen
        self._stopping = False
        self.stats = RelayStats()
        #: A file touched on every turn of ``run`` (``tradedb health --live --heartbeat``: a stuck relay is dead).
        self.heartbeat: Path | None = None

    def stop(self) -> None:
        """Ask a running ``run`` to return after its current batch."""
        self._stopping = True

    def publish_once(self) -> int:
        """Claim, publish and mark one batch; return how many events it delivered (0: nothing to do)."""
        with self._db.transaction() as conn:
            cursor = conn.cursor(row_factory=dict_row)
            if self._redis is None:
                cursor.execute(q.CLAIM, {"limit": self.batch})
                rows = cursor.fetchall()
                if rows:
                    self._number(cursor, rows)
            else:
                rows = self._claim_and_send(cursor)
            if not rows:
                return 0
        self.stats.delivered += len(rows)
        self.stats.batches += 1
        if self._cache is not None:
            self._refresh_cache(rows)
        return len(rows)

    def _claim_and_send(self, cursor: Any) -> list[dict[str, Any]]:
        """Up to ``depth`` batches in this transaction, each claimed while Redis takes the one before (the claim
        sees this transaction's own marks, so it continues the same aggregates; Redis gets them in claim order)."""
        sending = Background()
        claimed: list[dict[str, Any]] = []
        try:
            for _ in range(self.depth):
                cursor.execute(q.CLAIM_AND_MARK, {"limit": self.batch})
                rows = sorted(cursor.fetchall(), key=lambda r: r["event_id"])
                sending.wait()
                if not rows:
                    break
                sending.start(self._send, rows)
                claimed += rows
                if len(rows) < self.batch:
                    break
            sending.wait()
        finally:
            sending.close()
        return claimed

    def _send(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Add the batch to its streams with one script call (loaded again if Redis lost it in a restart)."""
        assert self._redis is not None
        command = xadd_batch(
            XADD_BATCH_SHA, self.maxlen, [(stream_key(r["aggregate_type"]), redis_fields(r)) for r in rows]
        )
        pool: Any = self._redis.connection_pool  # redis-py types these calls in one flavor and not the other
        with redis_errors(self._url):
            for attempt in (1, 2):
                conn: Any = pool.get_connection()
                try:
                    conn.send_packed_command([command])
                    added = conn.read_response()
                except redis.exceptions.NoScriptError:
                    if attempt == 2:
                        raise
                    self._redis.script_load(XADD_BATCH)
                    continue
                except BaseException:
                    conn.disconnect()  # a reply may be left unread: never lend this connection again
                    raise
                finally:
                    pool.release(conn)
                if added != len(rows):
                    raise EventsError(f"Redis added {added} of {len(rows)} events")
                return

    @staticmethod
    def _number(cursor: Any, rows: Sequence[Mapping[str, Any]]) -> None:
        """Give the claimed events their positions in their PostgreSQL streams (streams locked in name order)."""
        by_stream: dict[str, list[int]] = {}
        for row in rows:
            by_stream.setdefault(row["aggregate_type"], []).append(row["event_id"])
        ids: list[int] = []
        positions: list[int] = []
        for stream in sorted(by_stream):
            events = by_stream[stream]
            cursor.execute(q.TAKE_POSITIONS, (stream, len(events)))
            last = (cursor.fetchone())["last_position"]
            ids.extend(events)
            positions.extend(range(last - len(events) + 1, last + 1))
        cursor.execute(q.MARK_POSITIONED, (ids, positions))

    def _refresh_cache(self, rows: Sequence[Mapping[str, Any]]) -> None:
        assert self._cache is not None
        quotes: set[int] = set()
        accounts: set[str] = set()
        for row in rows:
            payload = json.loads(row["payload"])  # the Redis claim reads payloads as text
            if row["aggregate_type"] == "market_data" and payload.get("table") == "quotes":
                quotes.update(payload.get("security_ids") or ())
            elif row["aggregate_type"] == "position":
                accounts.add(payload["account_id"])
        try:
            if quotes:
                found = self._db.fetch_all(q.CACHE_QUOTES, (sorted(quotes),), readonly=False)
                self.stats.cached += self._cache.put_quotes(found)
            if accounts:
                held = self._db.fetch_all(q.CACHE_POSITIONS, (sorted(accounts),), readonly=False)
                self.stats.cached += self._cache.put_positions(held, accounts, held[0]["as_of"])
        except (redis.exceptions.RedisError, ConnectionError) as exc:
            # The events are delivered; the stale entries expire and readers fall back to PostgreSQL.
            logger.warning("cache refresh failed: %s", mask_secrets(str(exc)))

    def run(self, *, until_idle: bool = False, max_events: int | None = None) -> RelayStats:
        """Publish until ``stop()`` (or, with ``until_idle``, until the outbox is drained; or after
        ``max_events``), woken by NOTIFY and polling every ``poll`` seconds for anything missed."""
        listener = Listener(self._db.options.conninfo, self._db.options.kwargs)
        delay = BACKOFF
        try:
            while not self._stopping:
                if self.heartbeat is not None:
                    self.heartbeat.touch()
                try:
                    n = self.publish_once()
                    delay = BACKOFF
                except (EventsError, ConnectionError, RetryableError) as exc:
                    # Redis away or refusing (out of memory), PostgreSQL restarting: the claim rolled back.
                    self.stats.failures += 1
                    logger.warning("relay: %s; retrying in %.2f s", exc.message, delay)
                    time.sleep(delay)
                    delay = min(delay * 2, MAX_BACKOFF)
                    continue
                if max_events is not None and self.stats.delivered >= max_events:
                    break
                if until_idle:
                    # Drained? A claim also finds nothing while other relays hold the rest: then wait for them.
                    if n == 0 and not self._db.fetch_value(q.ANY_UNDELIVERED, readonly=False):
                        break
                    if n == 0:
                        listener.wait(self.poll)
                elif n < self.batch:
                    listener.wait(self.poll)
        finally:
            listener.close()
        return self.stats

"""Events other services can trust: the transactional outbox, a relay to Redis Streams (or PostgreSQL streams
without Redis), consumer groups with an inbox and dead letters, and the Redis cache of latest quotes and positions.

``db.events`` is the entry point (``api``); writers emit through ``tradedb.db.outbox`` in their own transactions.
"""

from tradedb.events.cache import Cache
from tradedb.events.consumer import ConsumeStats, PostgresConsumer, RedisConsumer
from tradedb.events.envelope import Event
from tradedb.events.relay import Relay, RelayStats

__all__ = ["Cache", "ConsumeStats", "Event", "PostgresConsumer", "RedisConsumer", "Relay", "RelayStats"]

"""The Redis cache of latest quotes and positions: written by the relay from committed data, read with a bound.

Each entry is a snapshot of PostgreSQL as of ``as_of`` (the start of the statement that read it, so every commit
before then is in it); it lives ``staleness`` seconds in Redis and a reader trusts it only while
``now - as_of <= staleness``. Cached data is therefore never newer than committed data and never older than the
staleness bound. A writer never replaces a snapshot with an older one (a Lua check), whichever relay wins a race.
"""

# source-only: the one source; tools/async_to_sync.py generates the sync twin.

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

import redis.asyncio

from tradedb.events.envelope import POSITIONS_PREFIX, QUOTE_PREFIX

QUOTE_FIELDS = ("security_id", "ts", "bid", "ask", "bid_size", "ask_size", "source")

#: KEYS[1] the hash; ARGV[1] as_of (epoch seconds), ARGV[2] time to live (ms), then field/value pairs.
#: Replaces the hash whole (a closed position disappears) unless it holds a newer snapshot.
_PUT = """
local cur = redis.call('HGET', KEYS[1], 'as_of')
if cur and tonumber(cur) > tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'as_of', ARGV[1], unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    return repr(value) if isinstance(value, float) else str(value)


def _float(text: str) -> float | None:
    return None if text == "" else float(text)


class AsyncCache:
    """Latest quotes per security and positions per account in Redis hashes with a time to live."""

    def __init__(self, client: redis.asyncio.Redis, staleness: float) -> None:
        self._client = client
        self.staleness = staleness
        self._ttl_ms = max(1, math.ceil(staleness * 1000))
        self._put = client.register_script(_PUT)

    async def _put_many(self, entries: Iterable[tuple[str, float, list[str]]]) -> int:
        pipe = self._client.pipeline(transaction=False)
        n = 0
        for key, as_of, pairs in entries:
            await self._put(keys=[key], args=[repr(as_of), self._ttl_ms, *pairs], client=pipe)
            n += 1
        if n:
            await pipe.execute()
        return n

    async def put_quotes(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Cache CACHE_QUOTES rows (one per security)."""
        return await self._put_many(
            (
                f"{QUOTE_PREFIX}{row['security_id']}",
                row["as_of"],
                [part for name in QUOTE_FIELDS[1:] for part in (name, _text(row[name]))],
            )
            for row in rows
        )

    async def put_positions(self, rows: Sequence[Mapping[str, Any]], accounts: Iterable[str], as_of: float) -> int:
        """Cache CACHE_POSITIONS rows per account (an account without rows is cached as having none)."""
        by_account: dict[str, list[str]] = {a: [] for a in accounts}
        for row in rows:
            if row["security_id"] is None:  # an account without positions (CACHE_POSITIONS' outer join)
                continue
            value = {k: _text(row[k]) for k in ("quantity", "avg_price", "realized_pnl", "total_commission")}
            value["updated_at"] = _text(row["updated_at"])
            by_account.setdefault(row["account_id"], []).extend((str(row["security_id"]), json.dumps(value)))
        return await self._put_many((f"{POSITIONS_PREFIX}{a}", as_of, pairs) for a, pairs in by_account.items())

    def _fresh(self, entry: Mapping[str, str], now: float) -> bool:
        return bool(entry) and now - float(entry["as_of"]) <= self.staleness

    async def quotes(self, security_ids: Sequence[int]) -> list[tuple[Any, ...]]:
        """Fresh cached quotes of these securities as (security_id, ts, bid, ask, bid_size, ask_size, source);
        a security missing here is missing or stale in the cache."""
        pipe = self._client.pipeline(transaction=False)
        for security_id in security_ids:
            pipe.hgetall(f"{QUOTE_PREFIX}{security_id}")
        entries = await pipe.execute()
        now = time.time()
        out = []
        for security_id, entry in zip(security_ids, entries, strict=True):
            if self._fresh(entry, now):
                ts = datetime.fromisoformat(entry["ts"])
                sizes = [_float(entry[k]) for k in ("bid", "ask", "bid_size", "ask_size")]
                out.append((security_id, ts, *sizes, entry["source"]))
        return out

    async def positions(self, account_id: str) -> dict[int, dict[str, Any]] | None:
        """The cached positions of an account ({security_id: fields as text}), or None when missing or stale."""
        entry = cast(dict[str, str], await self._client.hgetall(f"{POSITIONS_PREFIX}{account_id}"))
        if not self._fresh(entry, time.time()):
            return None
        return {int(k): json.loads(v) for k, v in entry.items() if k != "as_of"}

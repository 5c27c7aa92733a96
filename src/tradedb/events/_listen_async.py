"""Waiting for ``NOTIFY tradedb_events`` (sent when events commit) on a connection of its own.

A lost connection (a server restart) is opened again on the next wait; meanwhile the wait is a plain sleep, so
the callers' poll interval still covers every missed notification.
"""

# source-only: the one source; tools/async_to_sync.py generates the sync twin.

from __future__ import annotations

import asyncio
import logging
from typing import Any

import psycopg
from psycopg import AsyncConnection

CHANNEL = "tradedb_events"
logger = logging.getLogger("tradedb.events")


class AsyncListener:
    def __init__(self, conninfo: str, kwargs: dict[str, Any]) -> None:
        self._conninfo = conninfo
        self._kwargs = {k: v for k, v in kwargs.items() if k not in ("autocommit", "prepare_threshold")}
        self._conn: AsyncConnection[Any] | None = None

    async def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a notification; True when one came."""
        try:
            if self._conn is None or self._conn.closed:
                self._conn = await AsyncConnection.connect(self._conninfo, autocommit=True, **self._kwargs)
                await self._conn.execute(f"LISTEN {CHANNEL}")
            async for _ in self._conn.notifies(timeout=timeout, stop_after=1):
                return True
            return False
        except psycopg.Error as exc:
            logger.warning("event notifications unavailable (%s); polling", type(exc).__name__)
            await self.close()
            await asyncio.sleep(timeout)
            return False

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                await conn.close()
            except psycopg.Error:
                logger.debug("closing a broken listen connection failed")

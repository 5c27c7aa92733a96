"""Waiting for ``NOTIFY tradedb_events`` (sent when events commit) on a connection of its own.

A lost connection (a server restart) is opened again on the next wait; meanwhile the wait is a plain sleep, so
the callers' poll interval still covers every missed notification.
"""

# WARNING: generated from _listen_async.py by tools/async_to_sync.py; edit the async source and run
# `python tools/async_to_sync.py`. A unit test fails when this file is stale.

from __future__ import annotations

import logging
import time
from typing import Any

import psycopg
from psycopg import Connection

CHANNEL = "tradedb_events"
logger = logging.getLogger("tradedb.events")


class Listener:
    def __init__(self, conninfo: str, kwargs: dict[str, Any]) -> None:
        self._conninfo = conninfo
        self._kwargs = {k: v for k, v in kwargs.items() if k not in ("autocommit", "prepare_threshold")}
        self._conn: Connection[Any] | None = None

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a notification; True when one came."""
        try:
            if self._conn is None or self._conn.closed:
                self._conn = Connection.connect(self._conninfo, autocommit=True, **self._kwargs)
                self._conn.execute(f"LISTEN {CHANNEL}")
            for _ in self._conn.notifies(timeout=timeout, stop_after=1):
                return True
            return False
        except psycopg.Error as exc:
            logger.warning("event notifications unavailable (%s); polling", type(exc).__name__)
            self.close()
            time.sleep(timeout)
            return False

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.close()
            except psycopg.Error:
                logger.debug("closing a broken listen connection failed")

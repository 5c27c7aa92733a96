"""One test body for both APIs: the one driver that runs a Database or an AsyncDatabase the same way.

``Api`` holds either; ``api.feature("market_data")`` (or ``execution``) runs any method of that feature to completion,
awaiting coroutines and collecting async generators on the Api's own event loop.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

import tradedb
from tradedb.settings import Settings

#: A step of a transaction: (sql, params) run in order; a callable gets the attempt number and returns one.
Step = tuple[str, tuple[Any, ...] | None] | Callable[[int], tuple[str, tuple[Any, ...] | None]]


class Api:
    """Drive a sync or async Database with the same calls."""

    def __init__(self, kind: str, url: str, settings: Settings, **kwargs: Any) -> None:
        self.kind = kind
        self.runner = asyncio.Runner() if kind == "async" else None
        if self.runner is not None:
            self.adb = tradedb.connect_async(url, settings=settings, **kwargs)
        else:
            self.db = tradedb.connect(url, settings=settings, **kwargs)

    def _run(self, coro: Any) -> Any:
        assert self.runner is not None
        return self.runner.run(coro)

    def close(self) -> None:
        if self.runner is not None:
            self._run(self.adb.close())
            self.runner.close()
        else:
            self.db.close()

    def fetch_value(self, query: str, params: tuple[Any, ...] | None = None, *, readonly: bool = True) -> Any:
        if self.runner is not None:
            return self._run(self.adb.fetch_value(query, params, readonly=readonly))
        return self.db.fetch_value(query, params, readonly=readonly)

    def fetch_all(self, query: str, params: tuple[Any, ...] | None = None) -> list[dict[str, Any]]:
        if self.runner is not None:
            return self._run(self.adb.fetch_all(query, params))  # type: ignore[no-any-return]
        return self.db.fetch_all(query, params)

    def execute(self, query: str, params: tuple[Any, ...] | None = None) -> int:
        if self.runner is not None:
            return self._run(self.adb.execute(query, params))  # type: ignore[no-any-return]
        return self.db.execute(query, params)

    def in_transaction(self, steps: list[Step], *, readonly: bool = False) -> list[Any]:
        """Run steps in ``db.transaction()`` (never retried); return the first column of each step's first row."""
        if self.runner is not None:

            async def body() -> list[Any]:
                async with self.adb.transaction(readonly=readonly) as conn:
                    return [await _astep(conn, step, 1) for step in steps]

            return self._run(body())  # type: ignore[no-any-return]
        with self.db.transaction(readonly=readonly) as conn:
            return [_step(conn, step, 1) for step in steps]

    def run_transaction(self, steps: list[Step], *, retries: int | None = None) -> tuple[list[Any], int]:
        """Run steps through ``run_transaction``; return the results and the number of attempts."""
        attempts = 0
        if self.runner is not None:

            async def fn(conn: Any) -> list[Any]:
                nonlocal attempts
                attempts += 1
                return [await _astep(conn, step, attempts) for step in steps]

            return self._run(self.adb.run_transaction(fn, retries=retries)), attempts

        def sync_fn(conn: Any) -> list[Any]:
            nonlocal attempts
            attempts += 1
            return [_step(conn, step, attempts) for step in steps]

        return self.db.run_transaction(sync_fn, retries=retries), attempts

    def hold_one_and_checkout_another(self) -> None:
        """Keep one connection checked out and ask for a second (exhausts a pool of one)."""
        if self.runner is not None:

            async def body() -> None:
                async with self.adb.connection(), self.adb.connection():
                    pass

            self._run(body())
            return
        with self.db.connection(), self.db.connection():
            pass

    def stats(self) -> dict[str, dict[str, int]]:
        return self.adb.stats() if self.runner is not None else self.db.stats()

    def feature(self, name: str) -> Feature:
        return Feature(self, name)


class Feature:
    """``db.<name>`` of either API; a call returns its result (a list for generators), whichever the API."""

    def __init__(self, api: Api, name: str) -> None:
        self.api = api
        self.name = name

    @property
    def kind(self) -> str:
        return self.api.kind

    def close(self) -> None:
        self.api.close()

    def __getattr__(self, attribute: str) -> Any:
        target = self.api.adb if self.api.runner is not None else self.api.db
        method = getattr(getattr(target, self.name), attribute)

        def call(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            if inspect.isasyncgen(result):
                generator = result

                async def collect() -> list[Any]:
                    return [item async for item in generator]

                return self.api._run(collect())
            if inspect.iscoroutine(result):
                return self.api._run(result)
            return list(result) if inspect.isgenerator(result) else result

        return call


def _resolve(step: Step, attempt: int) -> tuple[str, tuple[Any, ...] | None]:
    return step(attempt) if callable(step) else step


def _step(conn: Any, step: Step, attempt: int) -> Any:
    query, params = _resolve(step, attempt)
    cursor = conn.execute(query, params)
    row = cursor.fetchone() if cursor.description else None
    return row[0] if row else None


async def _astep(conn: Any, step: Step, attempt: int) -> Any:
    query, params = _resolve(step, attempt)
    cursor = await conn.execute(query, params)
    row = await cursor.fetchone() if cursor.description else None
    return row[0] if row else None


def call(api: Api, name: str, *args: Any, **kwargs: Any) -> Any:
    """Call ``db.execution.<name>`` on either API."""
    return getattr(api.feature("execution"), name)(*args, **kwargs)

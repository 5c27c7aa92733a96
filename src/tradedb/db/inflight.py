"""Run up to N calls at once and collect their results: tasks for async code, threads for sync code.

The two classes have the same shape, so the async market-data source and its generated sync twin call them the
same way (``AsyncInFlight`` becomes ``InFlight`` in the twin).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from types import TracebackType
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class AsyncInFlight(Generic[T]):
    """At most ``limit`` coroutines running; ``submit`` returns the results of those that finished meanwhile."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.running: set[asyncio.Task[T]] = set()

    async def __aenter__(self) -> AsyncInFlight[T]:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Whatever happened, calls already running finish (each is a whole transaction) before control returns.
        if self.running:
            await asyncio.wait(self.running)

    async def submit(self, fn: Callable[..., Awaitable[T]], *args: Any) -> list[T]:
        self.running.add(asyncio.ensure_future(fn(*args)))
        if len(self.running) < self.limit:
            return []
        finished, self.running = await asyncio.wait(self.running, return_when=asyncio.FIRST_COMPLETED)
        return [task.result() for task in finished]

    async def drain(self) -> list[T]:
        if not self.running:
            return []
        finished, self.running = await asyncio.wait(self.running)
        return [task.result() for task in finished]


class InFlight(Generic[T]):
    """At most ``limit`` calls running in threads; ``submit`` returns the results of those that finished."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.running: set[Future[T]] = set()
        self.executor = ThreadPoolExecutor(limit, thread_name_prefix="tradedb-write")

    def __enter__(self) -> InFlight[T]:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.executor.shutdown(wait=True)

    def submit(self, fn: Callable[..., T], *args: Any) -> list[T]:
        self.running.add(self.executor.submit(fn, *args))
        if len(self.running) < self.limit:
            return []
        finished, pending = wait(self.running, return_when=FIRST_COMPLETED)
        self.running = set(pending)
        return [future.result() for future in finished]

    def drain(self) -> list[T]:
        finished, _ = wait(self.running)
        self.running = set()
        return [future.result() for future in finished]


class AsyncBackground:
    """One call at a time beside the caller's own work: ``start`` it, go on, ``wait`` for it (its error raises
    there). The async twin of :class:`Background`."""

    def __init__(self) -> None:
        self._task: asyncio.Task[Any] | None = None

    def start(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        assert self._task is None, "wait for the running call first"
        self._task = asyncio.ensure_future(fn(*args))

    async def wait(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await task

    async def close(self) -> None:
        """Wait for a running call and ignore its outcome (the caller is failing already)."""
        task, self._task = self._task, None
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)


class Background:
    """One call at a time in a thread beside the caller's own work (see :class:`AsyncBackground`)."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="tradedb-background")
        self._future: Future[Any] | None = None

    def start(self, fn: Callable[..., Any], *args: Any) -> None:
        assert self._future is None, "wait for the running call first"
        self._future = self._executor.submit(fn, *args)

    def wait(self) -> None:
        future, self._future = self._future, None
        if future is not None:
            future.result()

    def close(self) -> None:
        future, self._future = self._future, None
        if future is not None:
            wait([future])
        self._executor.shutdown(wait=True)

"""``timed``: how long an operation took, its rows, CPU, memory and database time, into ``performance_logs``.

A timing is a log record of the ``tradedb.performance`` logger carrying a :class:`~tradedb.observe.records.Timing`:
a :class:`~tradedb.observe.handler.DatabaseHandler` stores it in ``performance_logs``, any other handler prints
one line. Without a handler on that logger, or when ``sample`` skips it, a timing costs two clock reads.
"""

from __future__ import annotations

import functools
import inspect
import logging
import random
import resource
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast

from tradedb.db.counters import DB_TIME
from tradedb.errors import ValidationError
from tradedb.observe.records import TIMING_ATTR, Timing

logger = logging.getLogger("tradedb.performance")

P = ParamSpec("P")
R = TypeVar("R")

# ru_maxrss is in KiB on Linux, bytes on macOS.
_RSS_UNIT = 1024 * 1024 if sys.platform == "darwin" else 1024


class timed:
    """Measure an operation: ``@timed("load_bars")`` on a function (sync or async) or ``with timed("load") as t:``.

    Inside the block, ``t.rows = n`` and ``t.data["key"] = value`` add what is known. ``sample`` (0 to 1) is the
    share of calls recorded. Recorded: duration, CPU share, the process's peak memory, the time spent holding
    tradedb's database connections (``db_ms``; other clients' time is not seen), the exception type when the
    block raised, and the correlation id of :func:`~tradedb.observe.correlation`.
    """

    __slots__ = ("_cpu", "_db", "_started", "_token", "data", "operation", "rows", "sample")

    def __init__(self, operation: str, *, sample: float = 1.0, rows: int | None = None) -> None:
        if not isinstance(operation, str) or not operation or len(operation) > 200:
            raise ValidationError(f"operation must be a non-empty name of at most 200 characters, got {operation!r}")
        if not isinstance(sample, int | float) or isinstance(sample, bool) or not 0 <= sample <= 1:
            raise ValidationError(f"sample must be a number between 0 and 1, got {sample!r}")
        self.operation = operation
        self.sample = float(sample)
        self.rows = rows
        self.data: dict[str, Any] = {}
        self._started = 0.0
        self._cpu = 0.0
        self._db: list[float] | None = None
        self._token: Any = None

    def __enter__(self) -> timed:
        if self.sample < 1.0 and random.random() >= self.sample:
            self._started = -1.0  # not sampled
            return self
        self._db = [0.0]
        self._token = DB_TIME.set(self._db)
        self._cpu = time.process_time()
        self._started = time.perf_counter()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._started < 0:
            return
        wall = time.perf_counter() - self._started
        cpu = time.process_time() - self._cpu
        DB_TIME.reset(self._token)
        outer = DB_TIME.get()
        if outer is not None and self._db:  # an enclosing block's database time includes this one's
            outer[0] += self._db[0]
        if not logger.isEnabledFor(logging.INFO):
            return
        data = dict(self.data)
        if exc_type is not None:
            data["error"] = exc_type.__name__
        timing = Timing(
            ts=datetime.now(UTC),
            operation=self.operation,
            duration_ms=wall * 1000,
            rows=self.rows,
            memory_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / _RSS_UNIT,
            cpu_percent=100 * cpu / wall if wall > 0 else None,
            db_ms=self._db[0] * 1000 if self._db else None,
            data=data or None,
        )
        logger.info("%s took %.3f ms", self.operation, timing.duration_ms, extra={TIMING_ATTR: timing}, stacklevel=2)

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorate ``fn``: every call is a new measurement (safe across threads and tasks)."""
        operation, sample = self.operation, self.sample
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with timed(operation, sample=sample):
                    return await fn(*args, **kwargs)

            return cast(Callable[P, R], run_async)

        @functools.wraps(fn)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            with timed(operation, sample=sample):
                return fn(*args, **kwargs)

        return run

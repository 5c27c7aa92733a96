"""In-process counters the observability package exports (``tradedb.observe``): cheap enough for hot paths.

Plain integers and dict entries bumped under the GIL (a lost increment between threads is possible in theory and
harmless for monitoring); no lock, no import of a metrics library here.
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass
class Counters:
    """What this process did since it started."""

    #: Transactions re-run by ``run_transaction`` after a transient failure.
    transaction_retries: int = 0
    #: Rows committed by tradedb's writers, per qualified table.
    rows_written: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))

    def wrote(self, table: str, rows: int) -> None:
        self.rows_written[table] += rows


COUNTERS = Counters()

#: Seconds spent holding database connections inside the current ``timed`` block (None: no block is open).
DB_TIME: ContextVar[list[float] | None] = ContextVar("tradedb_db_time", default=None)


class DbClock:
    """Adds the time a connection is held to the open ``timed`` block, if any (one ContextVar read otherwise)."""

    __slots__ = ("acc", "started")

    def __init__(self) -> None:
        self.acc = DB_TIME.get()
        self.started = time.perf_counter() if self.acc is not None else 0.0

    def stop(self) -> None:
        if self.acc is not None:
            self.acc[0] += time.perf_counter() - self.started

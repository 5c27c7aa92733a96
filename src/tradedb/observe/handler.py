"""``DatabaseHandler``: log records and timings into ``logging.system_logs`` / ``performance_logs``, never blocking.

The caller's thread appends a capture to an in-memory queue and returns; one writer thread per handler turns
captures into rows and stores them by binary COPY in batches. While the database cannot be reached, rows go to
a spill file (JSON lines) and are replayed, oldest first, when it is back; a queue that grows past ``max_queue``
(the database is slow, not down) spills on the caller's thread instead of growing. Nothing is dropped: the
system this replaces lost records silently when its queue filled.
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import psycopg
from psycopg import sql
from psycopg.types.json import set_json_dumps

from tradedb.db.embedded import default_home, server_url
from tradedb.errors import ValidationError
from tradedb.masking import mask_secrets
from tradedb.observe import records as rec
from tradedb.observe import spill as sp
from tradedb.settings import Settings, load_settings

#: One sequence per process: (pid, seq) orders a process's records whatever order they arrive in.
_SEQ = itertools.count(1)
#: Live handlers, for the metrics collector and forked children.
HANDLERS: weakref.WeakSet[DatabaseHandler] = weakref.WeakSet()
#: Connections a forked child inherited: kept, never closed (closing would end the parent's session).
_INHERITED: list[psycopg.Connection[Any]] = []

#: Most rows one COPY takes from a backlog.
MAX_COPY = 5_000

_TABLES = {
    rec.SYSTEM_LOGS: (rec.SYSTEM_LOG_COLUMNS, rec.SYSTEM_LOG_TYPES),
    rec.PERFORMANCE_LOGS: (rec.PERFORMANCE_COLUMNS, rec.PERFORMANCE_TYPES),
}


def _copy_sql(table: str) -> sql.Composed:
    schema, name = table.split(".")
    columns = _TABLES[table][0]
    return sql.SQL("COPY {}.{} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(schema), sql.Identifier(name), sql.SQL(", ").join(map(sql.Identifier, columns))
    )


_COPY = {table: _copy_sql(table) for table in _TABLES}


#: Errors of the rows themselves (not of the server): the batch is stored row by row and refused rows set aside.
_REFUSED = (psycopg.DataError, psycopg.IntegrityError, TypeError, ValueError)


def _as_row(row: sp.Row) -> sp.Row:
    return row


class DatabaseHandler(logging.Handler):
    """A ``logging.Handler`` that stores records in ``logging.system_logs`` (and timings of :func:`timed` in
    ``logging.performance_logs``) from a background thread.

    ``service`` names the writer (default ``TRADEDB_SERVICE``, else the application name); ``batch_size`` rows
    or ``flush_interval`` seconds make a batch; ``spill_dir`` (default ``TRADEDB_LOG_SPILL_DIR``, else
    ``<TRADEDB_HOME>/log-spill``) holds rows while the database is unreachable; messages longer than
    ``max_message`` characters are cut (the original length goes into ``data._truncated_from``).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        service: str | None = None,
        settings: Settings | None = None,
        level: int = logging.NOTSET,
        batch_size: int = 1000,
        flush_interval: float = 1.0,
        max_queue: int = 100_000,
        spill_dir: str | Path | None = None,
        max_message: int = rec.MAX_MESSAGE,
    ) -> None:
        super().__init__(level)
        self.settings = settings or load_settings()
        self.service = rec.check_service(
            service if service is not None else self.settings.service or self.settings.application_name
        )
        for name, value, low in (
            ("batch_size", batch_size, 1),
            ("max_queue", max_queue, 1),
            ("max_message", max_message, 100),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValidationError(f"{name} must be an integer >= {low}, got {value!r}")
        if not isinstance(flush_interval, int | float) or not 0 < flush_interval <= 3600:
            raise ValidationError(f"flush_interval must be between 0 and 3600 seconds, got {flush_interval!r}")
        self._url = url or server_url(self.settings)
        self._batch_size = batch_size
        self._flush_interval = float(flush_interval)
        self._max_queue = max_queue
        self._max_message = max_message
        folder = Path(spill_dir or self.settings.log_spill_dir or (self.settings.home or default_home()) / "log-spill")
        self._spill = sp.SpillFile(folder, self.service)
        self._queue: deque[rec.Capture | tuple[rec.Timing, str | None, int]] = deque()
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._stopping = False
        self._retry_now = False
        self._conn: psycopg.Connection[Any] | None = None
        self._next_attempt = 0.0
        self._failures = 0
        self._backlog: list[tuple[Path, IO[str], int]] = []
        self._pid = os.getpid()
        self.counts = {"accepted": 0, "stored": 0, "spilled": 0, "overflowed": 0, "replayed": 0, "rejected": 0}
        self.last_error: str | None = None
        self._start_writer()
        HANDLERS.add(self)

    def _start_writer(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"tradedb-log-writer-{self.service}", daemon=True)
        self._thread.start()

    def _after_fork(self) -> None:
        """In a forked child (a server forking workers after configuring logging): the parent's writer thread did
        not come along. Start this process's own, with its own connection and spill file; what the parent had
        queued is the parent's to store."""
        if self._conn is not None:
            _INHERITED.append(self._conn)  # never closed here: closing would end the parent's session
            self._conn = None
        self._queue.clear()
        self._backlog = []
        self._pid = os.getpid()
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._spill = sp.SpillFile(self._spill.folder, self.service)
        self.counts = dict.fromkeys(self.counts, 0)
        self._start_writer()

    # --- the caller's side ----------------------------------------------------------------------------------

    def emit(self, record: logging.LogRecord) -> None:
        """Queue the record (or spill it when the queue is full); never blocks on the database, never raises."""
        if threading.get_ident() == self._thread.ident or self._stopping:
            return  # the writer's own records (psycopg's warnings) would feed back into it; a closed handler
        try:
            timing = getattr(record, rec.TIMING_ATTR, None)
            seq = next(_SEQ)
            if isinstance(timing, rec.Timing):
                item: rec.Capture | tuple[rec.Timing, str | None, int] = (timing, rec.current_correlation(), seq)
            else:
                item = rec.capture(record, seq)
            self.counts["accepted"] += 1
            if len(self._queue) >= self._max_queue:
                self._spill.append([self._row(item)])
                self.counts["overflowed"] += 1
                return
            self._queue.append(item)
            if len(self._queue) >= self._batch_size:
                self._wake.set()
        except Exception:
            self.handleError(record)

    def flush(self, timeout: float | None = 10.0) -> bool:  # type: ignore[override]
        """Store everything accepted so far; True when it is in the database (False: some is still spilled)."""
        target = self.counts["accepted"]
        deadline = None if timeout is None else time.monotonic() + timeout
        self._retry_now = True
        with self._idle:
            while self.counts["stored"] < target and self._thread.is_alive():
                self._wake.set()
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._idle.wait(0.05 if left is None else min(left, 0.05))
        return self.counts["stored"] >= target

    def close(self) -> None:
        """Store what is queued (within ``flush_interval`` + 10 s; at once when the database is away), spill the
        rest (the next handler to start in the spill folder replays it), stop the writer."""
        if self._stopping:
            return
        self.flush(timeout=0.5 if self._failures else self._flush_interval + 10)
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout=10)
        leftover = [self._row(item) for item in self._drain(len(self._queue))]
        if leftover:
            self._spill.append(leftover)
        if self._conn is not None:
            self._conn.close()
        for _, handle, _ in self._backlog:
            handle.close()
        self._spill.close()
        HANDLERS.discard(self)
        super().close()

    def stats(self) -> dict[str, Any]:
        """Counts since the handler started, the queue's length, rows waiting in spill files, the last error."""
        return {
            **self.counts,
            "queued": len(self._queue),
            "spill_pending": self._spill.pending + self._backlog_rows(),
            "connected": self._conn is not None and not self._conn.closed,
            "last_error": self.last_error,
        }

    # --- the writer thread ----------------------------------------------------------------------------------

    def _run(self) -> None:
        self._replay_orphans()
        while True:
            self._wake.wait(self._flush_interval)
            self._wake.clear()
            stopping = self._stopping
            try:
                self._cycle()
            except Exception as exc:  # the writer must outlive anything a row or the server does
                self._warn(f"log writer error: {type(exc).__name__}: {exc}")
            with self._idle:
                self._idle.notify_all()
            if stopping:
                return

    def _cycle(self) -> None:
        if self._backlog or self._spill.pending:
            self._catch_up()
        while self._queue:
            # A backlog goes in larger COPYs: each COPY ends with a wait for the server, which overlaps the
            # client's encoding only within one COPY.
            items = self._drain(max(self._batch_size, min(len(self._queue), MAX_COPY)))
            if self._backlog or self._spill.pending or not self._store(items, build=self._row):
                rows = [self._row(item) for item in items]
                self._spill.append(rows)
                self.counts["spilled"] += len(rows)
                self._catch_up()

    def _drain(self, limit: int) -> list[rec.Capture | tuple[rec.Timing, str | None, int]]:
        items: list[rec.Capture | tuple[rec.Timing, str | None, int]] = []
        while self._queue and len(items) < limit:
            items.append(self._queue.popleft())
        return items

    def _row(self, item: rec.Capture | tuple[rec.Timing, str | None, int]) -> sp.Row:
        if not isinstance(item, rec.Capture):
            timing, correlation_id, _ = item
            return rec.PERFORMANCE_LOGS, rec.performance_row(timing, correlation_id, self.service, self._pid)
        try:
            return rec.SYSTEM_LOGS, rec.log_row(item, self.service, self._pid, self._max_message)
        except Exception as exc:  # a record whose attributes misbehave is still stored, with what could be read
            error = {"_error": f"{type(exc).__name__}: {rec.clean_text(exc)}"}
            values = (datetime.now(UTC), self.service, "error", "", rec.clean_text(item.message), error)
            return rec.SYSTEM_LOGS, (*values, item.correlation_id, rec.HOST, self._pid, item.seq)

    def _catch_up(self) -> None:
        """Replay spilled rows, oldest first, when the database is back (or it is time to try again)."""
        if not self._retry_now and time.monotonic() < self._next_attempt:
            return
        self._retry_now = False
        rotated = self._spill.rotate()
        if rotated is not None:
            self._backlog.append(rotated)
        while self._backlog:
            path, handle, _ = self._backlog[0]
            replayed = sp.replay_file(path, handle, self._store)
            if replayed is None:
                return  # the database went away again: the file stays first in line
            self.counts["replayed"] += replayed
            self._backlog.pop(0)

    def _replay_orphans(self) -> None:
        for path, handle in sp.orphans(self._spill.folder, self._spill.path):
            if sp.replay_file(path, handle, self._store_orphan) is None:
                handle.close()  # unlocked: claimed again later, by this handler or another
                return

    def _store_orphan(self, rows: list[sp.Row]) -> bool:
        return self._store(rows, own=False)

    def _store(self, batch: Sequence[Any], *, build: Callable[[Any], sp.Row] = _as_row, own: bool = True) -> bool:
        """COPY a batch (queued items, or rows) in one transaction, each row built while the COPY streams (the
        server inserts while the next rows are built); False when the database cannot be reached (spill it)."""
        conn = self._connection()
        if conn is None:
            return False
        try:
            try:
                self._copy(conn, (build(x) for x in batch))
            except _REFUSED as exc:
                # A row the table refuses must not hold back the others: store them one by one, set the bad aside.
                self._warn(f"log rows refused ({type(exc).__name__}: {exc}); storing row by row")
                for row in [build(x) for x in batch]:
                    try:
                        self._copy(conn, [row])
                    except _REFUSED as row_exc:
                        self._reject(row, row_exc)
        except psycopg.Error as exc:
            self._down(exc)
            return False
        if own:
            self.counts["stored"] += len(batch)
        with self._idle:
            self._idle.notify_all()
        return True

    @staticmethod
    def _copy(conn: psycopg.Connection[Any], rows: Iterable[sp.Row]) -> None:
        """One pass: the first row's table streams into one COPY; rows of the other table follow in a second."""
        iterator = iter(rows)
        first = next(iterator, None)
        if first is None:
            return
        table = first[0]
        others: list[tuple[Any, ...]] = []
        with conn.transaction(), conn.cursor() as cursor:
            with cursor.copy(_COPY[table]) as copy:
                copy.set_types(list(_TABLES[table][1]))
                copy.write_row(first[1])
                for other, values in iterator:
                    if other == table:
                        copy.write_row(values)
                    else:
                        others.append(values)
            if others:
                second = next(t for t in _TABLES if t != table)
                with cursor.copy(_COPY[second]) as copy:
                    copy.set_types(list(_TABLES[second][1]))
                    for values in others:
                        copy.write_row(values)

    def _connection(self) -> psycopg.Connection[Any] | None:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        if not self._retry_now and time.monotonic() < self._next_attempt:
            return None
        try:
            conn = psycopg.connect(self._url, autocommit=True, **self.settings.connection_options())
        except psycopg.Error as exc:
            self._down(exc)
            return None
        set_json_dumps(rec.dumps, context=conn)
        self._conn = conn
        self._failures = 0
        self.last_error = None
        return conn

    def _down(self, exc: psycopg.Error) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._failures += 1
        self._next_attempt = time.monotonic() + min(0.25 * 2**self._failures, 10.0)
        message = f"log database unreachable, spilling to {self._spill.folder}: {type(exc).__name__}: {exc}"
        if self._failures == 1:
            self._warn(message)
        self.last_error = mask_secrets(message)

    def _reject(self, row: sp.Row, exc: Exception) -> None:
        rejected = self._spill.folder / "rejected.jsonl"
        with open(rejected, "a", encoding="utf-8") as handle:
            handle.write(sp.encode(*row))
        self.counts["rejected"] += 1  # accounted for with its batch (stored): set aside where an operator finds it
        self._warn(f"a log row was refused ({type(exc).__name__}: {exc}); kept in {rejected}")

    def _backlog_rows(self) -> int:
        return sum(rows for _, _, rows in self._backlog)

    @staticmethod
    def _warn(message: str) -> None:
        # Not through logging: the handler may be the one receiving it.
        sys.stderr.write(f"tradedb.observe: {mask_secrets(message)}\n")


def _after_fork_in_child() -> None:
    for handler in list(HANDLERS):
        handler._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)

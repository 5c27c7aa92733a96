"""The handler's spill files: rows that could not reach the database, kept as JSON lines until they can.

Each handler owns one file (``<service>-<pid>-<token>.jsonl``) and holds an exclusive ``flock`` on it while it
lives. A file nobody holds belongs to a process that ended before its rows were replayed: the next handler to
start in the same folder claims it and replays it first. Replay goes in chunks; the offset reached is written
next to the file after each committed chunk, so a crash during replay repeats at most one chunk.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from tradedb.observe.records import json_safe

#: A row as it travels: the qualified table, then the row's values in that table's column order.
Row = tuple[str, tuple[Any, ...]]

CHUNK = 10_000


def encode(table: str, row: tuple[Any, ...]) -> str:
    values = [v.isoformat() if isinstance(v, datetime) else v for v in row]
    values = [json_safe(v) if isinstance(v, dict) else v for v in values]
    return json.dumps([table, *values], separators=(",", ":")) + "\n"


def decode(line: str) -> Row:
    table, ts, *rest = json.loads(line)
    return table, (datetime.fromisoformat(ts), *rest)


class SpillFile:
    """One handler's current file, locked (``flock``) for its lifetime; appends and rotation are thread-safe."""

    def __init__(self, folder: Path, service: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self._prefix = "".join(c if c.isalnum() or c in "-_" else "_" for c in service)[:40]
        self._lock = threading.Lock()
        self.path, self._handle = self._open()
        self.pending = 0

    def _open(self) -> tuple[Path, IO[str]]:
        path = self.folder / f"{self._prefix}-{os.getpid()}-{secrets.token_hex(4)}.jsonl"
        handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 (open for the file's lifetime)
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return path, handle

    def append(self, rows: Sequence[Row]) -> None:
        """Append rows and push them to the operating system (a process crash then loses none of them)."""
        text = "".join(encode(table, row) for table, row in rows)
        with self._lock:
            self._handle.write(text)
            self._handle.flush()
            self.pending += len(rows)

    def rotate(self) -> tuple[Path, IO[str], int] | None:
        """Hand over the current file (still locked, with its row count) for replay; None when it is empty.

        Appends go on to the new file meanwhile, so the lock is held only for the swap, never for a replay.
        """
        with self._lock:
            if not self.pending:
                return None
            full = (self.path, self._handle, self.pending)
            self.path, self._handle = self._open()
            self.pending = 0
            return full

    def close(self) -> None:
        """Release the file: removed when empty, else left for the next handler to claim."""
        with self._lock:
            if not self.pending:
                self.path.unlink(missing_ok=True)
            self._handle.close()


def orphans(folder: Path, own: Path) -> Iterator[tuple[Path, IO[str]]]:
    """Yield the spill files of processes that ended (nobody holds their lock), locked for the caller."""
    for path in sorted(folder.glob("*.jsonl")):
        if path == own:
            continue
        try:
            handle = open(path, "r+", encoding="utf-8")  # noqa: SIM115 (closed by the caller)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        yield path, handle


def replay_file(path: Path, handle: IO[str], write: Callable[[list[Row]], bool]) -> int | None:
    """Replay a file held locked (a rotated or an orphaned one) through ``write`` (False: the database is away),
    then delete it; return the rows replayed, or None when ``write`` failed (the file stays, its offset kept)."""
    done = _replay(path, write)
    if done is None:
        return None
    path.unlink(missing_ok=True)
    _offset_path(path).unlink(missing_ok=True)
    handle.close()
    return done


def _offset_path(path: Path) -> Path:
    return path.with_suffix(".offset")


def _replay(path: Path, write: Callable[[list[Row]], bool]) -> int | None:
    offset_file = _offset_path(path)
    start = int(offset_file.read_text() or 0) if offset_file.exists() else 0
    done = 0
    with open(path, encoding="utf-8") as handle:
        handle.seek(start)
        while True:
            lines = [line for line in (handle.readline() for _ in range(CHUNK)) if line.endswith("\n")]
            if not lines:
                return done
            if not write([decode(line) for line in lines]):
                return None
            done += len(lines)
            offset_file.write_text(str(handle.tell()))

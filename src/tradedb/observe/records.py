"""Log records and timings as rows of ``logging.system_logs`` and ``logging.performance_logs`` (no I/O).

The caller's side of the handler only captures (the message, the correlation id, a sequence number); turning a
capture into a row (extras, JSON safety, truncation) happens on the writer thread, through these functions.
"""

from __future__ import annotations

import json
import logging
import socket
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from tradedb.errors import ValidationError

#: Longest message stored as is (characters); a longer one is cut and ends with ``TRUNCATED``.
MAX_MESSAGE = 16_384
TRUNCATED = " …[truncated]"
#: Key of ``data`` that lists the extras stored as their ``repr`` (they were not JSON-serialisable).
REPR_MARK = "_repr"
#: Key of ``data`` holding the length of a truncated message.
TRUNCATED_MARK = "_truncated_from"

SYSTEM_LOG_COLUMNS = ("ts", "service", "level", "logger", "message", "data", "correlation_id", "host", "pid", "seq")
SYSTEM_LOG_TYPES = ("timestamptz", "text", "text", "text", "text", "jsonb", "text", "text", "int4", "int8")
PERFORMANCE_COLUMNS = (
    "ts",
    "service",
    "operation",
    "duration_ms",
    "rows",
    "memory_mb",
    "cpu_percent",
    "data",
    "correlation_id",
    "host",
    "pid",
    "db_ms",
)
PERFORMANCE_TYPES = (
    "timestamptz",
    "text",
    "text",
    "float8",
    "int8",
    "float8",
    "float8",
    "jsonb",
    "text",
    "text",
    "int4",
    "float8",
)
SYSTEM_LOGS = "logging.system_logs"
PERFORMANCE_LOGS = "logging.performance_logs"

HOST = socket.gethostname()

#: Record attribute carrying a timing (set by ``timed``); such records become performance rows.
TIMING_ATTR = "tradedb_timing"

# Attributes every LogRecord has: whatever else a record carries came from ``extra=`` and goes into ``data``.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    TIMING_ATTR,
}

_CORRELATION: ContextVar[str | None] = ContextVar("tradedb_correlation_id", default=None)


@contextmanager
def correlation(correlation_id: str | None = None) -> Iterator[str]:
    """Tie the log records and timings of the block together: ``with correlation("req-42"):`` (a new id if none).

    The id lives in a ``contextvars`` variable, so it follows asyncio tasks and ``contextvars.copy_context``.
    """
    if correlation_id is None:
        correlation_id = uuid.uuid4().hex
    elif not isinstance(correlation_id, str) or not correlation_id or len(correlation_id) > 200:
        raise ValidationError(
            f"a correlation id is a non-empty string of at most 200 characters, got {correlation_id!r}"
        )
    token = _CORRELATION.set(correlation_id)
    try:
        yield correlation_id
    finally:
        _CORRELATION.reset(token)


def current_correlation() -> str | None:
    """Return the correlation id of the current context, if any."""
    return _CORRELATION.get()


_LEVELS = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warning", logging.ERROR: "error"}
_LEVELS[logging.CRITICAL] = "critical"


def level_name(levelno: int) -> str:
    """Map a logging level (custom ones too) to the table's five levels."""
    if levelno < logging.INFO:
        return "debug"
    if levelno < logging.WARNING:
        return "info"
    if levelno < logging.ERROR:
        return "warning"
    if levelno < logging.CRITICAL:
        return "error"
    return "critical"


def clean_text(text: object) -> str:
    """Text PostgreSQL can store: NUL characters become U+FFFD (anything not a string is converted first)."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def json_safe(data: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``data`` with every value JSON can store; the others become their ``repr``, listed under ``_repr``."""
    out: dict[str, Any] = {}
    replaced = []
    for key, value in data.items():
        try:
            json.dumps(value, allow_nan=False)
            out[str(key)] = value
        except (TypeError, ValueError, RecursionError):
            out[str(key)] = _repr(value)
            replaced.append(str(key))
    if replaced:
        out[REPR_MARK] = replaced
    return out


def _repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:  # a broken __repr__ must not lose the record
        return f"<unrepresentable {type(value).__name__}>"


def dumps(data: Any) -> str:
    """Serialise a ``data`` column value: plain ``json.dumps`` when it can, else via :func:`json_safe`.

    Installed as the writer connection's JSON dumper, so each value is serialised once (in the COPY).
    """
    try:
        text = json.dumps(data, separators=(",", ":"), allow_nan=False)  # jsonb has no NaN or Infinity
    except (TypeError, ValueError, RecursionError):
        text = json.dumps(json_safe(data) if isinstance(data, Mapping) else _repr(data), separators=(",", ":"))
    # jsonb refuses \u0000 too.
    return text.replace("\\u0000", "\\ufffd") if "\\u0000" in text else text


class Capture(NamedTuple):
    """What the caller's thread takes from a record: everything else is read on the writer thread.

    (A tuple: made on every logging call, where a dataclass's ``__init__`` costs several times as much.)"""

    record: logging.LogRecord
    message: str
    correlation_id: str | None
    seq: int


def capture(record: logging.LogRecord, seq: int) -> Capture:
    """Take what must be read now (the message, whose arguments may change later, and the context's id)."""
    try:
        message = record.getMessage() if not isinstance(record.msg, dict) else ""
    except Exception as exc:  # a bad format string: keep what was given
        message = f"{record.msg!r} % {record.args!r} (unformattable: {type(exc).__name__})"
    return Capture(record, message, _CORRELATION.get(), seq)


def log_row(item: Capture, service: str, pid: int, max_message: int = MAX_MESSAGE) -> tuple[Any, ...]:
    """Return the ``system_logs`` row of a captured record (columns ``SYSTEM_LOG_COLUMNS``)."""
    record = item.record
    message = item.message
    attributes = record.__dict__
    # A set difference runs in C: most records carry no or few extras.
    data: dict[str, Any] = {key: attributes[key] for key in attributes.keys() - _STANDARD}
    if isinstance(record.msg, dict):
        # structlog's ProcessorFormatter.wrap_for_formatter hands the event dict over as the message.
        event = dict(record.msg)
        message = str(event.pop("event", ""))
        for key in ("level", "logger", "timestamp", "_record", "_from_structlog"):
            event.pop(key, None)
        for key in ("_logger", "_name"):  # wrap_for_formatter's own extras
            data.pop(key, None)
        data.update(event)
    if data:
        # structlog's add_log_level / add_logger_name repeat what the columns hold.
        if "level" in data and data["level"] == record.levelname.lower():
            del data["level"]
        if "logger" in data and data["logger"] == record.name:
            del data["logger"]
    if record.exc_info and record.exc_info[0] is not None:
        data["exc_type"] = record.exc_info[0].__name__
        data["exc_text"] = logging.Formatter().formatException(record.exc_info)
    elif record.exc_text:
        data["exc_text"] = record.exc_text
    if record.stack_info:
        data["stack"] = record.stack_info
    level = _LEVELS.get(record.levelno)
    if level is None or record.levelname != level.upper():
        level = level_name(record.levelno)
        data["level_name"] = record.levelname
    if len(message) > max_message:
        data[TRUNCATED_MARK] = len(message)
        message = message[: max_message - len(TRUNCATED)] + TRUNCATED
    return (
        datetime.fromtimestamp(record.created, UTC),
        service,
        level,
        clean_text(record.name),
        clean_text(message),
        data or None,
        item.correlation_id,
        HOST,
        pid,
        item.seq,
    )


@dataclass(frozen=True)
class Timing:
    """One measured operation, as ``timed`` reports it."""

    ts: datetime
    operation: str
    duration_ms: float
    rows: int | None
    memory_mb: float | None
    cpu_percent: float | None
    db_ms: float | None
    data: dict[str, Any] | None


def performance_row(timing: Timing, correlation_id: str | None, service: str, pid: int) -> tuple[Any, ...]:
    """Return the ``performance_logs`` row of a timing (columns ``PERFORMANCE_COLUMNS``)."""
    return (
        timing.ts,
        service,
        clean_text(timing.operation),
        timing.duration_ms,
        timing.rows,
        timing.memory_mb,
        timing.cpu_percent,
        timing.data,
        correlation_id,
        HOST,
        pid,
        timing.db_ms,
    )


def check_service(service: str) -> str:
    """Validate a service name (the ``service`` column)."""
    if not isinstance(service, str) or not service.strip() or len(service) > 100:
        raise ValidationError(f"service must be a non-empty name of at most 100 characters, got {service!r}")
    return service

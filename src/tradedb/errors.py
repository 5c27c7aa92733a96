"""The typed errors of tradedb: one root, translated from psycopg at the boundary."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import errors as pgerrors

from tradedb.masking import mask_secrets


class TradeDBError(Exception):
    """A tradedb operation failed."""

    #: Exit code the CLI uses for this kind of error.
    exit_code: int = 1
    #: True when retrying the same work may succeed (lost connection, serialization failure, deadlock).
    transient: bool = False

    def __init__(
        self,
        message: str | None = None,
        *,
        sqlstate: str | None = None,
        constraint: str | None = None,
    ) -> None:
        text = message or (self.__doc__ or "").strip().splitlines()[0]
        # Messages may quote a URL or a conninfo string: never let a password through.
        self.message = mask_secrets(text)
        self.sqlstate = sqlstate
        self.constraint = constraint
        super().__init__(self.message)


class ConfigError(TradeDBError):
    """The configuration is invalid."""

    exit_code = 2


class ConnectionError(TradeDBError):
    """The database could not be reached."""

    exit_code = 3


class ConnectionLost(ConnectionError):
    """The connection to the server was lost (server restart, failover, terminated backend)."""

    transient = True


class NodeUnavailable(ConnectionError):
    """A node of the Citus cluster could not be reached; ``node`` is its host:port."""

    def __init__(self, message: str | None = None, *, node: str = "", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.node = node


class PoolTimeout(ConnectionError):
    """No connection became free in the pool within the allowed wait."""


class EmbeddedServerError(TradeDBError):
    """The embedded PostgreSQL server could not be managed."""

    exit_code = 4


class MigrationError(TradeDBError):
    """A migration failed."""

    exit_code = 5


class MigrationLockTimeout(MigrationError):
    """Another migrator held the migration lock for longer than the allowed wait."""


class UnknownRevisionError(MigrationError):
    """The database is at a migration revision this version of tradedb does not know."""


class VerificationError(TradeDBError):
    """The database does not match what tradedb declares."""

    exit_code = 6


class LedgerTampered(VerificationError):
    """The audit ledger does not verify: ``report`` (a ``LedgerReport``) lists each finding."""

    def __init__(self, message: str, *, report: Any) -> None:
        super().__init__(message)
        self.report = report


class ValidationError(TradeDBError):
    """An input value is invalid."""

    #: Bad input (an argument, a row, a file): its own code, apart from a bad configuration (2).
    exit_code = 8


class BookIntegrityError(ValidationError):
    """An order book event makes no sense for the book (policy "reject"): a cancel of an order not in the book, a
    size going negative, an order crossing the book, an order id added twice."""


class DuplicateError(TradeDBError):
    """A row with the same unique key already exists."""


class NotFoundError(TradeDBError):
    """A referenced row does not exist."""


class PermissionDenied(TradeDBError):
    """The current role may not do this."""


class ConcurrencyError(TradeDBError):
    """A concurrent transaction conflicted with this one."""


class RetryableError(ConcurrencyError):
    """A transient conflict that is safe to retry (serialization failure, deadlock)."""

    transient = True


class RetriesExhausted(TradeDBError):
    """Work declared retry-safe kept failing with transient errors."""

    def __init__(self, message: str, *, attempts: int, last: TradeDBError) -> None:
        super().__init__(message, sqlstate=last.sqlstate, constraint=last.constraint)
        self.attempts = attempts
        self.last = last


class BackupError(TradeDBError):
    """A backup or restore failed or did not verify."""

    exit_code = 7


class DigestError(TradeDBError):
    """An audit digest could not be written or read: a missing folder, a malformed file, a signature that does not
    match."""

    exit_code = 6


class SecretError(TradeDBError):
    """A secret could not be decrypted (unknown key id, wrong key, or tampered data)."""


class InvalidTransition(ValidationError):
    """The order cannot move to that state from its current one."""


class OrderConflict(ValidationError):
    """A client_order_id or execution_id was already used for different content."""


class Overfill(ValidationError):
    """A fill exceeds the order's remaining quantity."""


class RiskLimitExceeded(ValidationError):
    """The order would breach a risk limit."""

    def __init__(self, message: str, *, limit_type: str, limit_value: Decimal, value: Decimal) -> None:
        super().__init__(message)
        self.limit_type = limit_type
        self.limit_value = limit_value
        self.value = value


class NotificationError(TradeDBError):
    """A notification channel did not take a message (the dispatcher records the attempt and retries)."""


class MaintenanceMode(TradeDBError):
    """The platform is in maintenance mode: the trading services' tables refuse writes until it is turned off."""


class StaleVersion(ConcurrencyError):
    """The order changed since the version the caller saw (optimistic locking)."""


_MAINTENANCE_MESSAGE = "the platform is in maintenance mode: "
_REMOTE_NODE = re.compile(r"connection to the remote node (?:[^@\s]+@)?(\S+?) failed")


def translate(exc: psycopg.Error, context: str = "") -> TradeDBError:
    """Map a psycopg error to the matching tradedb error, keeping SQLSTATE and constraint name."""
    diag = getattr(exc, "diag", None)
    sqlstate = getattr(exc, "sqlstate", None)
    constraint = diag.constraint_name if diag is not None else None
    detail = (diag.message_primary if diag is not None else None) or str(exc).strip()
    message = f"{context}: {detail}" if context else detail
    kind: type[TradeDBError]
    if sqlstate in RAISED_BY_FUNCTIONS:
        kind = RAISED_BY_FUNCTIONS[sqlstate]
    elif sqlstate == "XX000" and detail.startswith(_MAINTENANCE_MESSAGE):
        # Citus re-raises a worker's error with SQLSTATE XX000: the guard on a shard is known by its message.
        kind = MaintenanceMode
    elif isinstance(exc, pgerrors.UniqueViolation):
        kind = DuplicateError
    elif isinstance(exc, pgerrors.ExclusionViolation):
        kind = IdentifierConflict if constraint and constraint.startswith("security_identifiers_") else ValidationError
    elif isinstance(exc, pgerrors.ForeignKeyViolation):
        kind = NotFoundError
    elif isinstance(exc, pgerrors.CheckViolation | pgerrors.NotNullViolation | pgerrors.DataError):
        kind = ValidationError
    elif isinstance(exc, pgerrors.InsufficientPrivilege):
        kind = PermissionDenied
    elif isinstance(exc, pgerrors.SerializationFailure | pgerrors.DeadlockDetected):
        kind = RetryableError
    elif (node := _REMOTE_NODE.search(detail)) is not None:
        # Citus names the worker it could not reach; the coordinator's own connection is fine, so this does not
        # heal by retrying at once.
        return NodeUnavailable(message, node=node.group(1), sqlstate=sqlstate)
    elif isinstance(exc, psycopg.OperationalError):
        # Authentication (class 28) and a missing database do not heal by retrying; everything else that breaks
        # a connection (admin shutdown 57P01, crash 57P02, network loss with no SQLSTATE) may.
        permanent = sqlstate is not None and (sqlstate.startswith("28") or sqlstate == "3D000")
        kind = ConnectionError if permanent else ConnectionLost
    else:
        kind = TradeDBError
    return kind(message, sqlstate=sqlstate, constraint=constraint)


class ParameterError(ValidationError):
    """Strategy parameters failed validation; ``checks`` maps each parameter to its outcome (a ``ParamCheck``)."""

    def __init__(self, message: str, checks: dict[str, Any]) -> None:
        super().__init__(message)
        self.checks = checks


class StrategyConflict(ValidationError):
    """A strategy name and version was registered again with a different definition (register a new version)."""


class BacktestConflict(ValidationError):
    """A backtest run was recorded again with the same inputs but different results."""


class EventsError(TradeDBError):
    """Events could not be published or consumed."""


class EventsUnavailable(EventsError):
    """Redis could not be reached, or refused the credentials (the URL in the message has its password masked)."""


class UnknownStream(ValidationError):
    """No such event stream."""


class UnknownGroup(ValidationError):
    """No such consumer group."""


class MetricsError(TradeDBError):
    """The metrics endpoint could not start (the port is in use, the address cannot be bound)."""


class UnknownExchange(ValidationError):
    """A venue is not an ISO 10383 MIC that ``shared.exchanges`` holds (load the ISO list first)."""


class IdentifierConflict(ValidationError):
    """An identifier would name two securities at once: its validity overlaps another assignment of it."""


class AmbiguousSymbol(ValidationError):
    """A symbol resolves to more than one security on one date (pass ``exchange=`` or a ``scheme=``)."""


class ClusterError(TradeDBError):
    """The Citus cluster is not in a state tradedb can use (no workers, a worker unreachable during setup)."""

    exit_code = 2


class ArchiveError(TradeDBError):
    """A Parquet archive could not be written, read or restored (an unwritable folder, an unreachable bucket, a
    partition that is back in PostgreSQL)."""

    exit_code = 9


class ArchiveCorrupt(ArchiveError):
    """An archived file does not hold what its catalog row says (edited, truncated or replaced after archiving)."""


class ArchivedRange(ValidationError):
    """Rows fall in a range archived to Parquet: ``tradedb archive restore`` brings it back before writing there."""


#: SQLSTATEs that tradedb's own server-side functions raise (class TD), and the errors they stand for.
RAISED_BY_FUNCTIONS: dict[str, type[TradeDBError]] = {
    "TD001": NotFoundError,
    "TD002": Overfill,
    "TD003": InvalidTransition,
    "TD004": OrderConflict,
    "TD005": MaintenanceMode,
}

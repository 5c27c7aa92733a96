"""tradedb: the PostgreSQL foundation of a trading platform.

The public surface is what ``__all__`` lists; modules whose names start with ``_`` are private. Market-data types
(``WriteResult``, ...) load on first use, so ``import tradedb`` loads neither pyarrow nor numpy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tradedb._version import __version__
from tradedb.database import Database, connect
from tradedb.database_async import AsyncDatabase, connect_async
from tradedb.errors import (
    AmbiguousSymbol,
    ArchiveCorrupt,
    ArchivedRange,
    ArchiveError,
    BacktestConflict,
    BackupError,
    BookIntegrityError,
    ClusterError,
    ConcurrencyError,
    ConfigError,
    ConnectionError,
    ConnectionLost,
    DigestError,
    DuplicateError,
    EmbeddedServerError,
    EventsError,
    EventsUnavailable,
    IdentifierConflict,
    InvalidTransition,
    LedgerTampered,
    MaintenanceMode,
    MetricsError,
    MigrationError,
    MigrationLockTimeout,
    NodeUnavailable,
    NotFoundError,
    NotificationError,
    OrderConflict,
    Overfill,
    ParameterError,
    PermissionDenied,
    PoolTimeout,
    RetriesExhausted,
    RetryableError,
    RiskLimitExceeded,
    SecretError,
    StaleVersion,
    StrategyConflict,
    TradeDBError,
    UnknownExchange,
    UnknownGroup,
    UnknownRevisionError,
    UnknownStream,
    ValidationError,
    VerificationError,
)
from tradedb.execution import (
    BatchResult,
    FillInput,
    FillResult,
    OrderRequest,
    PositionDifference,
    PositionState,
)
from tradedb.settings import Settings, load_settings

if TYPE_CHECKING:
    from tradedb.marketdata import OnConflict, Policy, WriteOptions, WriteResult

_MARKET_DATA_TYPES = ("OnConflict", "Policy", "WriteOptions", "WriteResult")

__all__ = [
    "AmbiguousSymbol",
    "ArchiveCorrupt",
    "ArchiveError",
    "ArchivedRange",
    "AsyncDatabase",
    "BacktestConflict",
    "BackupError",
    "BatchResult",
    "BookIntegrityError",
    "ClusterError",
    "ConcurrencyError",
    "ConfigError",
    "ConnectionError",
    "ConnectionLost",
    "Database",
    "DigestError",
    "DuplicateError",
    "EmbeddedServerError",
    "EventsError",
    "EventsUnavailable",
    "FillInput",
    "FillResult",
    "IdentifierConflict",
    "InvalidTransition",
    "LedgerTampered",
    "MaintenanceMode",
    "MetricsError",
    "MigrationError",
    "MigrationLockTimeout",
    "NodeUnavailable",
    "NotFoundError",
    "NotificationError",
    "OnConflict",
    "OrderConflict",
    "OrderRequest",
    "Overfill",
    "ParameterError",
    "PermissionDenied",
    "Policy",
    "PoolTimeout",
    "PositionDifference",
    "PositionState",
    "RetriesExhausted",
    "RetryableError",
    "RiskLimitExceeded",
    "SecretError",
    "Settings",
    "StaleVersion",
    "StrategyConflict",
    "TradeDBError",
    "UnknownExchange",
    "UnknownGroup",
    "UnknownRevisionError",
    "UnknownStream",
    "ValidationError",
    "VerificationError",
    "WriteOptions",
    "WriteResult",
    "__version__",
    "connect",
    "connect_async",
    "load_settings",
]


def __getattr__(name: str) -> Any:
    if name in _MARKET_DATA_TYPES:
        import tradedb.marketdata

        return getattr(tradedb.marketdata, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""tradedb: the PostgreSQL foundation of a trading platform.

The public surface is what ``__all__`` lists; modules whose names start with ``_`` are private.
"""

from tradedb._version import __version__
from tradedb.database import Database, connect
from tradedb.database_async import AsyncDatabase, connect_async
from tradedb.errors import (
    ConcurrencyError,
    ConfigError,
    ConnectionError,
    ConnectionLost,
    DuplicateError,
    EmbeddedServerError,
    MigrationError,
    MigrationLockTimeout,
    NotFoundError,
    PermissionDenied,
    PoolTimeout,
    RetriesExhausted,
    RetryableError,
    TradeDBError,
    UnknownRevisionError,
    ValidationError,
    VerificationError,
)
from tradedb.settings import Settings, load_settings

__all__ = [
    "AsyncDatabase",
    "ConcurrencyError",
    "ConfigError",
    "ConnectionError",
    "ConnectionLost",
    "Database",
    "DuplicateError",
    "EmbeddedServerError",
    "MigrationError",
    "MigrationLockTimeout",
    "NotFoundError",
    "PermissionDenied",
    "PoolTimeout",
    "RetriesExhausted",
    "RetryableError",
    "Settings",
    "TradeDBError",
    "UnknownRevisionError",
    "ValidationError",
    "VerificationError",
    "__version__",
    "connect",
    "connect_async",
    "load_settings",
]

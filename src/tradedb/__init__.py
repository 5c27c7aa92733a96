"""tradedb: the PostgreSQL foundation of a trading platform.

The public surface is what ``__all__`` lists; modules whose names start with ``_`` are private.
"""

from tradedb._version import __version__
from tradedb.errors import (
    ConcurrencyError,
    ConfigError,
    ConnectionError,
    DuplicateError,
    EmbeddedServerError,
    MigrationError,
    MigrationLockTimeout,
    NotFoundError,
    PermissionDenied,
    RetryableError,
    TradeDBError,
    UnknownRevisionError,
    ValidationError,
    VerificationError,
)
from tradedb.settings import Settings, load_settings

__all__ = [
    "ConcurrencyError",
    "ConfigError",
    "ConnectionError",
    "DuplicateError",
    "EmbeddedServerError",
    "MigrationError",
    "MigrationLockTimeout",
    "NotFoundError",
    "PermissionDenied",
    "RetryableError",
    "Settings",
    "TradeDBError",
    "UnknownRevisionError",
    "ValidationError",
    "VerificationError",
    "__version__",
    "load_settings",
]

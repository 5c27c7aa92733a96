"""SQLAlchemy models of the ``trading_system`` database: one module per service schema, one MetaData.

The models load on first use of ``metadata``, ``Base`` or a service module: the connection layer needs only the
schema names (``tradedb.schema.names``), and SQLAlchemy with every model was half of ``import tradedb``.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any

from tradedb.schema.names import SERVICE_SCHEMAS

if TYPE_CHECKING:
    import sqlalchemy as sa

    from tradedb.schema import (
        analytics,
        data_ingestion,
        execution,
        logs,
        notification,
        risk_management,
        shared,
        strategy_engine,
    )
    from tradedb.schema._base import NAMING_CONVENTION, Base, metadata

#: The model modules, one per service schema (``logs`` holds the ``logging`` schema).
_MODELS = (
    "analytics",
    "data_ingestion",
    "execution",
    "logs",
    "notification",
    "risk_management",
    "shared",
    "strategy_engine",
)


def _models() -> ModuleType:
    """The module of the one MetaData, once every service schema's tables are in it."""
    for module in _MODELS:
        importlib.import_module(f"{__name__}.{module}")
    return importlib.import_module(f"{__name__}._base")


def __getattr__(name: str) -> Any:
    """Load the models on the first use of what needs them (PEP 562)."""
    if name in _MODELS:
        return importlib.import_module(f"{__name__}.{name}")
    if name in ("NAMING_CONVENTION", "Base", "metadata"):
        return getattr(_models(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def partitioned_tables() -> list[sa.Table]:
    """Return the time-partitioned tables, in metadata order."""
    tables: list[sa.Table] = _models().metadata.sorted_tables
    return [t for t in tables if "partition_column" in t.info]


__all__ = [
    "NAMING_CONVENTION",
    "SERVICE_SCHEMAS",
    "Base",
    "analytics",
    "data_ingestion",
    "execution",
    "logs",
    "metadata",
    "notification",
    "partitioned_tables",
    "risk_management",
    "shared",
    "strategy_engine",
]

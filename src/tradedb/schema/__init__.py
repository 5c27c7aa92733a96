"""SQLAlchemy models of the ``trading_system`` database: one module per service schema, one MetaData."""

from __future__ import annotations

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
from tradedb.schema._base import NAMING_CONVENTION, SERVICE_SCHEMAS, Base, metadata


def partitioned_tables() -> list[sa.Table]:
    """Return the time-partitioned tables, in metadata order."""
    return [t for t in metadata.sorted_tables if "partition_column" in t.info]


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

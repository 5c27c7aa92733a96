"""The one MetaData of tradedb, its naming convention, and helpers shared by the service schema modules."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, mapped_column

from tradedb.schema.names import SERVICE_SCHEMAS

#: Every constraint and index gets a stable, explicit name: error translation and migrations rely on them.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

PartitionInterval = Literal["tick", "day", "month"]


class Base(DeclarativeBase):
    """Declarative base bound to the single tradedb MetaData."""

    metadata = metadata


def partitioned(schema: str, column: str, interval: PartitionInterval, comment: str, *args: Any) -> tuple[Any, ...]:
    """Build ``__table_args__`` for a table range-partitioned by time on ``column``.

    ``interval`` is the partition width: ``tick`` follows the profile (1 h / 15 min / 1 min), ``day`` and
    ``month`` are fixed. The partition manager reads it from ``Table.info``.
    """
    return (
        *args,
        {
            "schema": schema,
            "comment": comment,
            "postgresql_partition_by": f"RANGE ({column})",
            "info": {"partition_column": column, "partition_interval": interval},
        },
    )


def plain(schema: str, comment: str, *args: Any) -> tuple[Any, ...]:
    """Build ``__table_args__`` for an ordinary table."""
    return (*args, {"schema": schema, "comment": comment})


def one_of(column: str, values: tuple[str, ...], name: str | None = None) -> sa.CheckConstraint:
    """Return a named CHECK constraint restricting ``column`` to ``values`` (our enumeration style)."""
    listed = ", ".join("'" + v.replace("'", "''") + "'" for v in values)
    return sa.CheckConstraint(f"{column} IN ({listed})", name=name or column)


def created_at() -> Any:
    """Return a ``created_at timestamptz NOT NULL DEFAULT now()`` column."""
    return mapped_column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def updated_at() -> Any:
    """Return an ``updated_at`` column the ORM refreshes on update."""
    return mapped_column(
        sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now(), onupdate=sa.func.now()
    )


def sequence_default(schema: str, table: str, column: str) -> tuple[sa.Sequence, Any]:
    """Return a sequence and a server default drawing from it.

    Partitioned tables cannot have identity columns before PostgreSQL 17, so their surrogate keys draw from a
    named sequence instead.
    """
    seq = sa.Sequence(f"{table}_{column}_seq", schema=schema, metadata=metadata)
    return seq, sa.text(f"nextval('{schema}.{table}_{column}_seq'::regclass)")


Timestamp = sa.DateTime(timezone=True)
Money = sa.Numeric()  # exact, unconstrained numeric: Decimal in Python
Float: sa.Double[float] = sa.Double()
Symbol = sa.String(32)

__all__ = [
    "NAMING_CONVENTION",
    "SERVICE_SCHEMAS",
    "Base",
    "Float",
    "Money",
    "Symbol",
    "Timestamp",
    "created_at",
    "datetime",
    "metadata",
    "one_of",
    "partitioned",
    "plain",
    "sequence_default",
    "updated_at",
]

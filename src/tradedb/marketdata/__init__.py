"""Market data at COPY speed (``db.market_data``): writes, quality checks, coverage, reads, files and symbols.

``api_async`` is the one source of the I/O (``api`` its generated sync twin). Logic without I/O lives beside it:
input and datasets in ``_datasets``, checks in ``_quality``, the binary COPY encoding in ``_encoding``, write
planning in ``_planning``, read helpers in ``_reading``, the SQL in ``_sql``; vendor files in ``files``, the
security master's bulk upsert in ``securities`` and coverage bookkeeping for maintenance in ``coverage``.

The types load on first use: importing this package (e.g. for ``coverage``) does not load pyarrow or numpy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tradedb.marketdata._datasets import OnConflict, Policy
    from tradedb.marketdata._planning import WriteOptions, WriteResult

__all__ = ["OnConflict", "Policy", "WriteOptions", "WriteResult"]


def __getattr__(name: str) -> Any:
    if name in ("WriteResult", "WriteOptions"):
        from tradedb.marketdata import _planning

        return getattr(_planning, name)
    if name in ("OnConflict", "Policy"):
        from tradedb.marketdata import _datasets

        return getattr(_datasets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

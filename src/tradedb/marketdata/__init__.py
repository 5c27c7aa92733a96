"""Market data at COPY speed (``db.market_data``): writes, quality checks, coverage, reads, files and symbols.

``api_async`` is the one source of the I/O (``api`` its generated sync twin). Logic without I/O lives beside it:
input and datasets in ``_datasets``, checks in ``_quality``, the binary COPY encoding in ``tradedb.columnar``, write
planning in ``_planning``, read helpers in ``_reading``, the SQL in ``_sql``; vendor files in ``files``, the
security master's bulk upsert in ``securities`` and coverage bookkeeping for maintenance in ``coverage``.

The names below load on first use: importing this package (e.g. for ``coverage``) loads neither pyarrow nor numpy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tradedb.marketdata._datasets import OnConflict, Policy, check_write_options
    from tradedb.marketdata._planning import WriteOptions, WriteResult
    from tradedb.marketdata._reading import check_actions as check_corporate_actions
    from tradedb.marketdata._reading import check_range, check_timeframe
    from tradedb.marketdata._reading import to_utc as check_time

#: Public name -> (private module, its name there).
_LAZY = {
    "OnConflict": ("_datasets", "OnConflict"),
    "Policy": ("_datasets", "Policy"),
    "check_write_options": ("_datasets", "check_write_options"),
    "WriteOptions": ("_planning", "WriteOptions"),
    "WriteResult": ("_planning", "WriteResult"),
    "check_corporate_actions": ("_reading", "check_actions"),
    "check_timeframe": ("_reading", "check_timeframe"),
    "check_range": ("_reading", "check_range"),
    "check_time": ("_reading", "to_utc"),
}

__all__ = [
    "OnConflict",
    "Policy",
    "WriteOptions",
    "WriteResult",
    "check_corporate_actions",
    "check_range",
    "check_time",
    "check_timeframe",
    "check_write_options",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attribute = _LAZY[name]
    return getattr(importlib.import_module(f"{__name__}.{module}"), attribute)

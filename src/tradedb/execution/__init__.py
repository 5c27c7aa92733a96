"""Orders, fills and positions that stay exact under concurrency (``db.execution``).

``api_async`` is the one source of the I/O (``api`` its generated sync twin); the I/O-free rules (validation,
the order state machine, position arithmetic) are in ``_rules`` and the SQL in ``_sql``.
"""

from tradedb.execution._rules import (
    BatchResult,
    FillInput,
    FillResult,
    OrderRequest,
    PositionDifference,
    PositionState,
    apply_fill,
)

__all__ = [
    "BatchResult",
    "FillInput",
    "FillResult",
    "OrderRequest",
    "PositionDifference",
    "PositionState",
    "apply_fill",
]

"""Risk limits, post-trade checks, halts and risk events (``db.risk``).

``api_async`` is the one source of the I/O (``api`` its generated sync twin); valuation, the session and
high-water state and breach detection are I/O-free in ``_rules``, the SQL in ``_sql``.
"""

from tradedb.risk._rules import PNL_LIMITS, Breach, PositionValue, RiskCheck, RiskState, exposure
from tradedb.schema.names import LIMIT_TYPES

__all__ = ["LIMIT_TYPES", "PNL_LIMITS", "Breach", "PositionValue", "RiskCheck", "RiskState", "exposure"]

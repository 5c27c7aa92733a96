"""Portfolio snapshots and daily performance (``db.analytics``).

``api_async`` is the one source of the I/O (``api`` its generated sync twin); the day-by-day performance arithmetic
is I/O-free in ``_rules``, the SQL in ``_sql``.
"""

from tradedb.analytics._rules import TRADING_DAYS, DailyPerformance, DayFill, daily_performance

__all__ = ["TRADING_DAYS", "DailyPerformance", "DayFill", "daily_performance"]

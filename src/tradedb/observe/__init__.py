"""Observability: logs and timings into the database without blocking, a live view of the server, Prometheus.

- :class:`DatabaseHandler`: a ``logging.Handler`` storing records in ``logging.system_logs`` by binary COPY from a
  background thread, spilling to a local file while the database is unreachable (see :mod:`.handler`).
- :func:`correlation` ties records and timings of one request; :func:`timed` measures an operation into
  ``logging.performance_logs``.
- :func:`snapshot` is what ``tradedb top`` shows; :class:`SlowQueryCapture` records statements slower than a
  threshold.
- :class:`TradedbCollector` and :class:`MetricsServer` (``tradedb metrics serve``) export Prometheus metrics
  (imported on first use: ``import tradedb.observe`` does not load prometheus-client).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tradedb.observe.activity import SlowQueryCapture, Snapshot, snapshot
from tradedb.observe.handler import DatabaseHandler
from tradedb.observe.records import MAX_MESSAGE, Timing, correlation, current_correlation
from tradedb.observe.timing import timed

if TYPE_CHECKING:
    from tradedb.observe.metrics import MetricsServer, TradedbCollector

__all__ = [
    "MAX_MESSAGE",
    "DatabaseHandler",
    "MetricsServer",
    "SlowQueryCapture",
    "Snapshot",
    "Timing",
    "TradedbCollector",
    "correlation",
    "current_correlation",
    "snapshot",
    "timed",
]


def __getattr__(name: str) -> Any:
    if name in ("MetricsServer", "TradedbCollector"):
        from tradedb.observe import metrics

        return getattr(metrics, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

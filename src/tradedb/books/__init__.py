"""Order books rebuilt from stored events (``db.books``), and replays of those events for backtests
(``db.replay``).

The engine applies events to array state in one compiled pass (numba; plain Python without it), starting from
the latest snapshot in ``order_book_snapshots``; see :mod:`tradedb.books.api_async` and
:mod:`tradedb.books.replay_async` for the semantics.
"""

from tradedb.books._engine import Book, BookPolicy, Finding, Level, RestingOrder

__all__ = ["Book", "BookPolicy", "Finding", "Level", "RestingOrder"]

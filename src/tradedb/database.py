"""The composition root: the sync Database is the pooled connections with every feature hung on it.

Features load on first use (``db.market_data`` imports pyarrow and numpy; a service that only records fills never
does).
"""

# WARNING: generated from database_async.py by tools/async_to_sync.py; edit the async source and run
# `python tools/async_to_sync.py`. A unit test fails when this file is stale.

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from tradedb.db.connections import Connections
from tradedb.db.embedded import server_url
from tradedb.settings import Settings, load_settings

if TYPE_CHECKING:
    from tradedb.accounts.api import Accounts
    from tradedb.analytics.api import Analytics
    from tradedb.books.api import Books
    from tradedb.books.replay import Replay
    from tradedb.config.api import Config
    from tradedb.events.api import Events
    from tradedb.events.cache import Cache
    from tradedb.execution.api import Execution
    from tradedb.marketdata.api import MarketData
    from tradedb.notify.api import Notifications
    from tradedb.reference.fundamentals import Fundamentals
    from tradedb.reference.loads import Loads
    from tradedb.reference.securities import Securities
    from tradedb.risk.api import Risk
    from tradedb.strategies.api import Strategies
    from tradedb.strategies.backtests import Backtests
    from tradedb.strategies.optimizations import Optimizations
    from tradedb.strategies.signals import Signals


class Database(Connections):
    """Pools for the primary (and read replicas), created lazily, closed by ``close()`` or ``with``; the
    features are attributes: ``config`` (platform settings), ``accounts``, ``execution`` (orders, fills,
    positions), ``risk`` (limits, post-trade checks, halts, risk events), ``analytics`` (portfolio snapshots,
    daily performance), ``market_data`` (quotes, trades, bars,
    order book events), ``books`` (order books rebuilt from events), ``replay`` (event replays for backtests),
    ``strategies`` (strategies, parameters, instances), ``signals`` (what instances decided), ``backtests``
    (runs and their metrics), ``optimizations`` (parameter searches and their iterations), ``events`` (the
    outbox, its relay and consumers, the Redis cache) and ``notifications`` (channels and their dispatcher)."""

    def close(self) -> None:
        if "events" in self.__dict__:
            self.events.close()
        super().close()

    @cached_property
    def execution(self) -> Execution:
        """Orders, fills and positions (see :mod:`tradedb.execution`)."""
        from tradedb.execution.api import Execution

        return Execution(self, after_fills=self.risk.after_fills)

    @cached_property
    def accounts(self) -> Accounts:
        """Trading accounts: create, list, disable (see :mod:`tradedb.accounts`)."""
        from tradedb.accounts.api import Accounts

        return Accounts(self)

    @cached_property
    def config(self) -> Config:
        """Platform settings, typed (``shared.system_config``; see :mod:`tradedb.config`)."""
        from tradedb.config.api import Config

        return Config(self)

    @cached_property
    def risk(self) -> Risk:
        """Risk limits, post-trade checks, halts and risk events (see :mod:`tradedb.risk`)."""
        from tradedb.risk.api import Risk

        return Risk(self)

    @cached_property
    def analytics(self) -> Analytics:
        """Portfolio snapshots (mark-to-market) and daily performance (see :mod:`tradedb.analytics`)."""
        from tradedb.analytics.api import Analytics

        return Analytics(self, self.risk)

    @cached_property
    def market_data(self) -> MarketData:
        """Quotes, trades, bars and order book events (see :mod:`tradedb.marketdata`)."""
        from tradedb.marketdata.api import MarketData

        return MarketData(self, quote_cache=self._quote_cache)

    @cached_property
    def securities(self) -> Securities:
        """The security master, symbology and index membership (see :mod:`tradedb.reference`)."""
        from tradedb.reference.securities import Securities

        return Securities(self, self.loads)

    @cached_property
    def fundamentals(self) -> Fundamentals:
        """Company information, key statistics and institutional holders (see :mod:`tradedb.reference`)."""
        from tradedb.reference.fundamentals import Fundamentals

        return Fundamentals(self, self.securities)

    @cached_property
    def loads(self) -> Loads:
        """The ingest log, ``data_ingestion.load_runs`` (see :mod:`tradedb.reference`)."""
        from tradedb.reference.loads import Loads

        return Loads(self)

    def _quote_cache(self) -> Cache | None:
        return self.events.cache()

    @cached_property
    def events(self) -> Events:
        """Events to other services: emit, relay, consume, status (see :mod:`tradedb.events`)."""
        from tradedb.events.api import Events

        return Events(self)

    @cached_property
    def notifications(self) -> Notifications:
        """Notification channels and the dispatcher from events to them (see :mod:`tradedb.notify`)."""
        from tradedb.notify.api import Notifications

        return Notifications(self, self.events)

    @cached_property
    def books(self) -> Books:
        """Order books rebuilt from stored events (see :mod:`tradedb.books`)."""
        from tradedb.books.api import Books

        return Books(self, self.market_data)

    @cached_property
    def replay(self) -> Replay:
        """Chronological, randomized and bootstrapped replays of stored events (see :mod:`tradedb.books`)."""
        from tradedb.books.replay import Replay

        return Replay(self, self.market_data)

    @cached_property
    def strategies(self) -> Strategies:
        """Strategies, their typed parameters and instances (see :mod:`tradedb.strategies`)."""
        from tradedb.strategies.api import Strategies

        return Strategies(self)

    @cached_property
    def backtests(self) -> Backtests:
        """Backtest runs, their metrics, comparisons and optimizations (see :mod:`tradedb.strategies`)."""
        from tradedb.strategies.backtests import Backtests

        return Backtests(self, self.strategies, self.market_data)

    @cached_property
    def optimizations(self) -> Optimizations:
        """Parameter optimizations and their iterations (see :mod:`tradedb.strategies`)."""
        from tradedb.strategies.optimizations import Optimizations

        return Optimizations(self, self.strategies)

    @cached_property
    def signals(self) -> Signals:
        """Strategy signals written at COPY speed and read by instance, security and time (see
        :mod:`tradedb.strategies`)."""
        from tradedb.strategies.signals import Signals

        return Signals(self, self.market_data)


def connect(
    url: str | None = None,
    *,
    settings: Settings | None = None,
    service: str | None = None,
    replica_urls: list[str] | None = None,
    min_size: int | None = None,
    max_size: int | None = None,
    timeout: float | None = None,
    max_lifetime: float | None = None,
    max_idle: float | None = None,
    name: str = "tradedb",
    account: str | None = None,
    app_user: str | None = None,
) -> Database:
    """Return a Database for ``url`` (default: the configured server, else the embedded one).

    Keyword arguments override settings: ``service`` scopes every connection to that service's role, and logs in
    with the service's own login when TRADEDB_<SERVICE>_DATABASE_URL is set (``tradedb setup --service-users``);
    ``replica_urls`` (default DATABASE_REPLICA_URLS) serve read-only work; ``min_size``/``max_size`` (pool
    size, default DATABASE_POOL_MIN_SIZE/MAX_SIZE), ``timeout`` (checkout wait, default DATABASE_POOL_TIMEOUT
    or the connect timeout), ``max_lifetime`` and ``max_idle`` (seconds); ``account`` is the tenant of
    every transaction (row-level security; ``transaction(account=...)`` overrides it) and ``app_user`` the user
    recorded in the audit log. No connection is opened until used.
    """
    settings = settings or load_settings()
    scope = service or settings.service
    target = url or (settings.service_url(scope) if scope else None) or server_url(settings)
    return Database(
        target,
        settings=settings,
        service=service,
        replica_urls=replica_urls,
        min_size=min_size,
        max_size=max_size,
        timeout=timeout,
        max_lifetime=max_lifetime,
        max_idle=max_idle,
        name=name,
        account=account,
        app_user=app_user,
    )

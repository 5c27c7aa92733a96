"""The composition root: the async Database is the pooled connections with every feature hung on it.

Features load on first use (``db.market_data`` imports pyarrow and numpy; a service that only records fills never
does).
"""

# source-only: the one source; tools/async_to_sync.py generates the sync twin.

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from tradedb.db.connections_async import AsyncConnections
from tradedb.db.embedded import server_url
from tradedb.settings import Settings, load_settings

if TYPE_CHECKING:
    from tradedb.accounts.api_async import AsyncAccounts
    from tradedb.analytics.api_async import AsyncAnalytics
    from tradedb.books.api_async import AsyncBooks
    from tradedb.books.replay_async import AsyncReplay
    from tradedb.config.api_async import AsyncConfig
    from tradedb.events.api_async import AsyncEvents
    from tradedb.events.cache_async import AsyncCache
    from tradedb.execution.api_async import AsyncExecution
    from tradedb.marketdata.api_async import AsyncMarketData
    from tradedb.notify.api_async import AsyncNotifications
    from tradedb.reference.fundamentals_async import AsyncFundamentals
    from tradedb.reference.loads_async import AsyncLoads
    from tradedb.reference.securities_async import AsyncSecurities
    from tradedb.risk.api_async import AsyncRisk
    from tradedb.strategies.api_async import AsyncStrategies
    from tradedb.strategies.backtests_async import AsyncBacktests
    from tradedb.strategies.optimizations_async import AsyncOptimizations
    from tradedb.strategies.signals_async import AsyncSignals


class AsyncDatabase(AsyncConnections):
    """Pools for the primary (and read replicas), created lazily, closed by ``close()`` or ``async with``; the
    features are attributes: ``config`` (platform settings), ``accounts``, ``execution`` (orders, fills,
    positions), ``risk`` (limits, post-trade checks, halts, risk events), ``analytics`` (portfolio snapshots,
    daily performance), ``market_data`` (quotes, trades, bars,
    order book events), ``books`` (order books rebuilt from events), ``replay`` (event replays for backtests),
    ``strategies`` (strategies, parameters, instances), ``signals`` (what instances decided), ``backtests``
    (runs and their metrics), ``optimizations`` (parameter searches and their iterations), ``events`` (the
    outbox, its relay and consumers, the Redis cache) and ``notifications`` (channels and their dispatcher)."""

    async def close(self) -> None:
        if "events" in self.__dict__:
            await self.events.close()
        await super().close()

    @cached_property
    def execution(self) -> AsyncExecution:
        """Orders, fills and positions (see :mod:`tradedb.execution`)."""
        from tradedb.execution.api_async import AsyncExecution

        return AsyncExecution(self, after_fills=self.risk.after_fills)

    @cached_property
    def accounts(self) -> AsyncAccounts:
        """Trading accounts: create, list, disable (see :mod:`tradedb.accounts`)."""
        from tradedb.accounts.api_async import AsyncAccounts

        return AsyncAccounts(self)

    @cached_property
    def config(self) -> AsyncConfig:
        """Platform settings, typed (``shared.system_config``; see :mod:`tradedb.config`)."""
        from tradedb.config.api_async import AsyncConfig

        return AsyncConfig(self)

    @cached_property
    def risk(self) -> AsyncRisk:
        """Risk limits, post-trade checks, halts and risk events (see :mod:`tradedb.risk`)."""
        from tradedb.risk.api_async import AsyncRisk

        return AsyncRisk(self)

    @cached_property
    def analytics(self) -> AsyncAnalytics:
        """Portfolio snapshots (mark-to-market) and daily performance (see :mod:`tradedb.analytics`)."""
        from tradedb.analytics.api_async import AsyncAnalytics

        return AsyncAnalytics(self, self.risk)

    @cached_property
    def market_data(self) -> AsyncMarketData:
        """Quotes, trades, bars and order book events (see :mod:`tradedb.marketdata`)."""
        from tradedb.marketdata.api_async import AsyncMarketData

        return AsyncMarketData(self, quote_cache=self._quote_cache)

    @cached_property
    def securities(self) -> AsyncSecurities:
        """The security master, symbology and index membership (see :mod:`tradedb.reference`)."""
        from tradedb.reference.securities_async import AsyncSecurities

        return AsyncSecurities(self, self.loads)

    @cached_property
    def fundamentals(self) -> AsyncFundamentals:
        """Company information, key statistics and institutional holders (see :mod:`tradedb.reference`)."""
        from tradedb.reference.fundamentals_async import AsyncFundamentals

        return AsyncFundamentals(self, self.securities)

    @cached_property
    def loads(self) -> AsyncLoads:
        """The ingest log, ``data_ingestion.load_runs`` (see :mod:`tradedb.reference`)."""
        from tradedb.reference.loads_async import AsyncLoads

        return AsyncLoads(self)

    async def _quote_cache(self) -> AsyncCache | None:
        return await self.events.cache()

    @cached_property
    def events(self) -> AsyncEvents:
        """Events to other services: emit, relay, consume, status (see :mod:`tradedb.events`)."""
        from tradedb.events.api_async import AsyncEvents

        return AsyncEvents(self)

    @cached_property
    def notifications(self) -> AsyncNotifications:
        """Notification channels and the dispatcher from events to them (see :mod:`tradedb.notify`)."""
        from tradedb.notify.api_async import AsyncNotifications

        return AsyncNotifications(self, self.events)

    @cached_property
    def books(self) -> AsyncBooks:
        """Order books rebuilt from stored events (see :mod:`tradedb.books`)."""
        from tradedb.books.api_async import AsyncBooks

        return AsyncBooks(self, self.market_data)

    @cached_property
    def replay(self) -> AsyncReplay:
        """Chronological, randomized and bootstrapped replays of stored events (see :mod:`tradedb.books`)."""
        from tradedb.books.replay_async import AsyncReplay

        return AsyncReplay(self, self.market_data)

    @cached_property
    def strategies(self) -> AsyncStrategies:
        """Strategies, their typed parameters and instances (see :mod:`tradedb.strategies`)."""
        from tradedb.strategies.api_async import AsyncStrategies

        return AsyncStrategies(self)

    @cached_property
    def backtests(self) -> AsyncBacktests:
        """Backtest runs, their metrics, comparisons and optimizations (see :mod:`tradedb.strategies`)."""
        from tradedb.strategies.backtests_async import AsyncBacktests

        return AsyncBacktests(self, self.strategies, self.market_data)

    @cached_property
    def optimizations(self) -> AsyncOptimizations:
        """Parameter optimizations and their iterations (see :mod:`tradedb.strategies`)."""
        from tradedb.strategies.optimizations_async import AsyncOptimizations

        return AsyncOptimizations(self, self.strategies)

    @cached_property
    def signals(self) -> AsyncSignals:
        """Strategy signals written at COPY speed and read by instance, security and time (see
        :mod:`tradedb.strategies`)."""
        from tradedb.strategies.signals_async import AsyncSignals

        return AsyncSignals(self, self.market_data)


def connect_async(
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
) -> AsyncDatabase:
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
    return AsyncDatabase(
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

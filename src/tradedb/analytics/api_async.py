"""Portfolio snapshots and daily performance: ``db.analytics`` of the async Database.

A mark-to-market runs the risk check of each account (``db.risk``: marks, PnL, breaches, halts) and stores what it
valued in ``analytics.portfolio_summary``. Daily performance replays an account's fills day by day (``_rules``)
and stores each day in ``analytics.performance_metrics``.
"""

# source-only: the one source of this I/O; tools/async_to_sync.py generates the sync twin.

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from psycopg.rows import dict_row

from tradedb.accounts import check_account
from tradedb.accounts.api_async import missing_account
from tradedb.analytics import _rules as rules
from tradedb.analytics._sql import (
    ACCOUNT,
    ACCOUNTS_WITH_CAPITAL,
    CLOSES,
    DROP_STALE,
    FILLS,
    PERFORMANCE,
    PORTFOLIO,
    SAVE_PERFORMANCE,
    SNAPSHOT,
)
from tradedb.db.inputs import check_day, to_decimal
from tradedb.errors import ValidationError
from tradedb.risk import RiskCheck

if TYPE_CHECKING:
    from tradedb.db.connections_async import AsyncConnections
    from tradedb.risk.api_async import AsyncRisk

Row = dict[str, Any]


class AsyncAnalytics:
    """The analytics API of one Database (``db.analytics``)."""

    def __init__(self, db: AsyncConnections, risk: AsyncRisk) -> None:
        self._db = db
        self._risk = risk

    async def mark_to_market(
        self, account_ids: Iterable[str] | None = None, *, marks: Mapping[int, Any] | None = None
    ) -> list[RiskCheck]:
        """Check every account with positions or PnL limits (or those named) and store what each was worth.

        The risk check records breaches and halts as ``db.risk.check`` does; each position it valued (quantity,
        market value, unrealized and realized PnL, the mark's time) replaces the account's snapshot in
        ``analytics.portfolio_summary``.
        """
        checks = await self._risk.mark_to_market(account_ids, marks=marks)
        for check in checks:
            positions = check.positions
            params = {
                "account": check.account_id,
                "security": [p.security_id for p in positions],
                "quantity": [p.quantity for p in positions],
                "value": [p.market_value for p in positions],
                "unrealized": [p.unrealized_pnl for p in positions],
                "realized": [p.realized_pnl for p in positions],
                "as_of": [p.marked_at or check.checked_at for p in positions],
            }
            async with self._db.transaction() as conn:
                await conn.execute(DROP_STALE, (check.account_id, params["security"]))
                if positions:
                    await conn.execute(SNAPSHOT, params)
        return checks

    async def portfolio(self, account_id: str | None = None) -> list[Row]:
        """Return the stored snapshot (of one account, or all): each position's value as last marked."""
        if account_id is not None:
            check_account(account_id)
        return await self._db.fetch_all(PORTFOLIO, {"account": account_id}, readonly=False)

    async def daily_performance(
        self, account_id: str, *, start: date | str | None = None, end: date | str | None = None
    ) -> list[rules.DailyPerformance]:
        """Compute the account's performance of every day from ``start`` to ``end`` (default: its first fill's
        day to today, UTC), store it in ``analytics.performance_metrics`` and return it.

        Days are UTC; a day's close is the newest bar close or trade at or before its end. The account needs
        ``capital`` (``db.accounts.set_capital``): returns are measured on it.
        """
        check_account(account_id)
        first, last = check_day(start, "start"), check_day(end, "end")
        if first is not None and last is not None and first > last:
            raise ValidationError(f"start {first} is after end {last}")
        async with self._db.connection() as conn:
            cursor = conn.cursor(row_factory=dict_row)
            await cursor.execute(ACCOUNT, (account_id,))
            account = await cursor.fetchone()
            if account is None:
                raise await missing_account(conn, account_id)
            if account["capital"] is None:
                raise ValidationError(
                    f"account {account_id} has no capital: set it (db.accounts.set_capital, or tradedb accounts "
                    f"set-capital) to measure returns"
                )
            last = last or account["tx_now"].astimezone(UTC).date()
            await cursor.execute(FILLS, (account_id, last))
            fills = [rules.DayFill(**row) for row in await cursor.fetchall()]
            if not fills:
                return []
            earliest = min(f.day for f in fills)
            days = rules.days_between(min(earliest, first or earliest), last)
            securities = sorted({f.security_id for f in fills})
            reads = [conn.cursor(row_factory=dict_row) for _ in securities]
            async with conn.pipeline():
                for read, security_id in zip(reads, securities, strict=True):
                    await read.execute(CLOSES, {"security_id": security_id, "first": days[0], "last": last})
            closes: dict[tuple[int, date], Decimal | None] = {
                (r["security_id"], r["day"]): None if r["price"] is None else to_decimal(r["price"], "close")
                for read in reads
                for r in await read.fetchall()
            }
        computed = rules.daily_performance(account["capital"], fills, closes, days)
        wanted = [d for d in computed if first is None or d.date >= first]
        params: dict[str, Any] = {c: [getattr(d, c) for d in wanted] for c in rules.STORED}
        async with self._db.transaction() as conn:
            await conn.execute(SAVE_PERFORMANCE, {"account": account_id, **params})
        return wanted

    async def performance(
        self, account_id: str, *, start: date | str | None = None, end: date | str | None = None
    ) -> list[Row]:
        """Return the stored daily performance of an account, by date."""
        check_account(account_id)
        params = {"account": account_id, "start": check_day(start, "start"), "end": check_day(end, "end")}
        return await self._db.fetch_all(PERFORMANCE, params, readonly=False)

    async def accounts_with_capital(self) -> list[str]:
        """The accounts whose daily performance can be computed (they have capital and fills)."""
        return [r["account_id"] for r in await self._db.fetch_all(ACCOUNTS_WITH_CAPITAL, readonly=False)]

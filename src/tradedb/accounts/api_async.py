"""Trading accounts: ``db.accounts`` of the async Database.

Accounts live in ``execution.accounts``, the tenant key of row-level security. Creating one also gives it the
seeded ``default_risk_limit`` (``shared.system_config``) as an account-wide ``max_position_notional`` limit, so an
administrative connection (the owner: no ``service=``) creates accounts; services see only their account scope.
"""

# source-only: the one source of this I/O; tools/async_to_sync.py generates the sync twin.

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any

from psycopg import AsyncConnection
from psycopg.rows import TupleRow, dict_row

from tradedb.accounts import _rules as rules
from tradedb.accounts._sql import ACCOUNT, ACCOUNTS, DEFAULT_LIMIT, INSERT_ACCOUNT, SET_ACTIVE, SET_CAPITAL, VISIBILITY
from tradedb.db.inputs import to_decimal
from tradedb.errors import DuplicateError, NotFoundError

if TYPE_CHECKING:
    from tradedb.db.connections_async import AsyncConnections

Row = dict[str, Any]


async def missing_account(conn: AsyncConnection[Any], account_id: str) -> NotFoundError:
    """The error for ``account_id`` not found on ``conn``, naming the account scope when that is why."""
    row = await (await conn.execute(VISIBILITY)).fetchone()
    assert row is not None
    return rules.unknown_account(account_id, row[0], bool(row[1]))


class AsyncAccounts:
    """The accounts API of one Database (``db.accounts``)."""

    def __init__(self, db: AsyncConnections) -> None:
        self._db = db

    async def create(self, account_id: str, name: str, *, base_currency: str = "USD", capital: Any = None) -> Row:
        """Create an account (active) and give it the default risk limit; return its row.

        ``base_currency`` is an ISO 4217 code: PnL, notionals and loss limits of the account are in it.
        ``capital`` (> 0, in the base currency) is the equity returns are measured on. An existing ``account_id``
        raises ``DuplicateError``.
        """
        account_id = rules.check_account(account_id)
        name = rules.check_name(name)
        base_currency = rules.check_currency(base_currency)
        amount = None if capital is None else to_decimal(capital, "capital", positive=True)
        async with self._db.transaction(account=account_id) as conn:
            cursor = conn.cursor(row_factory=dict_row)
            await cursor.execute(INSERT_ACCOUNT, (account_id, name, base_currency, amount))
            row = await cursor.fetchone()
            if row is None:
                raise DuplicateError(f"account {account_id!r} already exists")
            await cursor.execute(DEFAULT_LIMIT, (account_id,))
        return row

    async def get(self, account_id: str) -> Row:
        """Return an account's row; ``NotFoundError`` when it does not exist or is outside the account scope."""
        account_id = rules.check_account(account_id)
        async with self._db.connection() as conn:
            cursor = conn.cursor(row_factory=dict_row)
            await cursor.execute(ACCOUNT, (account_id,))
            row = await cursor.fetchone()
            if row is None:
                raise await missing_account(conn, account_id)
        return row

    async def list(self, *, include_inactive: bool = True) -> builtins.list[Row]:
        """Return the visible accounts (all of them for the owner and backoffice), by id."""
        return await self._db.fetch_all(ACCOUNTS, {"all": bool(include_inactive)}, readonly=False)

    async def set_capital(self, account_id: str, capital: Any) -> Row:
        """Set the equity an account's returns are measured on (> 0, in its base currency)."""
        amount = to_decimal(capital, "capital", positive=True)
        return await self._update(SET_CAPITAL, (amount, rules.check_account(account_id)))

    async def disable(self, account_id: str) -> Row:
        """Disable an account: it can no longer trade (new orders raise ``ValidationError``)."""
        return await self._set_active(account_id, False)

    async def enable(self, account_id: str) -> Row:
        """Enable a disabled account again."""
        return await self._set_active(account_id, True)

    async def _set_active(self, account_id: str, active: bool) -> Row:
        return await self._update(SET_ACTIVE, (active, rules.check_account(account_id)))

    async def _update(self, statement: str, params: tuple[Any, str]) -> Row:
        async def update(conn: AsyncConnection[TupleRow]) -> Row:
            cursor = conn.cursor(row_factory=dict_row)
            await cursor.execute(statement, params)
            row = await cursor.fetchone()
            if row is None:
                raise await missing_account(conn, params[1])
            return row

        return await self._db.run_transaction(update)

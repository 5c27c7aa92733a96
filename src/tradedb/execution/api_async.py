"""Orders, fills and positions that stay exact: ``db.execution`` of the async Database.

Validation, the state machine and position arithmetic live in ``_rules``, a batch's plan in ``_batch``, the SQL
in ``_sql``. A single fill is one call of the server-side ``execution.record_fill`` (migration 0015), which does
what ``_rules`` does, exactly; the tests hold the two to each other.

Locking: a fill locks its order row, then its position row, always in that order (a batch: its orders by id, then
its positions by key), so concurrent fills never deadlock and never lose an update; fill ids are assigned while
the position is locked, so ``fill_id`` order is the order in which fills were applied (which ``reconcile`` and
``position_at`` replay).
"""

# source-only: the one source of this I/O; tools/async_to_sync.py generates the sync twin.

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from uuid import UUID

from psycopg import AsyncConnection, AsyncCursor
from psycopg.rows import DictRow, TupleRow, dict_row
from psycopg.types.json import Jsonb

from tradedb.accounts import check_account
from tradedb.accounts.api_async import missing_account
from tradedb.db.counters import COUNTERS
from tradedb.db.inputs import check_id, check_time, one_of, to_decimal
from tradedb.db.outbox_async import emit
from tradedb.db.outbox_rules import NewEvent, emit_params, new_event
from tradedb.errors import (
    NotFoundError,
    OrderConflict,
    RiskLimitExceeded,
    StaleVersion,
    ValidationError,
)
from tradedb.execution import _batch
from tradedb.execution import _rules as base
from tradedb.execution._sql import (
    ACCOUNT_FOR_SHARE,
    ACCOUNTS_OF_ORDERS,
    ACTIVE_LIMITS,
    COPY_FILLS,
    COPY_FILLS_STAGED,
    COPY_ORDER_EVENTS,
    COPY_ORDER_EVENTS_STAGED,
    CREATE_POSITIONS,
    FILLS_BY_EXECUTION_IDS,
    FILLS_FOR_POSITION_AT,
    FILLS_FOR_REPLAY,
    INSERT_EVENT,
    INSERT_EVENT_EMIT,
    INSERT_FILL_ROW,
    INSERT_ORDER,
    INSERT_ORDER_EVENT_ROW,
    INSERT_RISK_EVENT,
    INSERT_STAGED,
    LAST_PRICE,
    ORDER_ACCOUNT,
    ORDER_BY_CLIENT_ID,
    ORDER_FOR_UPDATE,
    ORDER_OF_ACCOUNT_FOR_UPDATE,
    ORDERS,
    ORDERS_FOR_UPDATE,
    ORDERS_OF_ACCOUNT_FOR_UPDATE,
    POSITION,
    POSITION_QUANTITY,
    POSITIONS,
    POSITIONS_FOR_UPDATE,
    POSITIONS_OF_ACCOUNT_FOR_UPDATE,
    RECORD_FILL,
    RESERVE_FILL_IDS,
    RLS_ACTIVE,
    SECURITY_EXISTS,
    STAGE,
    UPDATE_ORDERS_FILLED,
    UPDATE_ORDERS_OF_ACCOUNT_FILLED,
    UPDATE_POSITIONS,
    UPDATE_POSITIONS_OF_ACCOUNT,
    UPDATE_STATUS,
)

if TYPE_CHECKING:
    from tradedb.db.connections_async import AsyncConnections

Row = base.Row
#: What runs after fills: the post-trade risk check of the accounts that have PnL limits (``db.risk.after_fills``;
#: the flag says the accounts are known to have one).
AfterFills = Callable[[Iterable[str], bool], Awaitable[object]]


def _state(row: Mapping[str, Any] | None) -> base.PositionState:
    if row is None:
        return base.PositionState()
    return base.PositionState(row["quantity"], row["avg_price"], row["realized_pnl"], row["total_commission"])


async def _one(cursor: AsyncCursor[DictRow], query: str, params: Any) -> Row | None:
    await cursor.execute(query, params)
    return await cursor.fetchone()


async def _order_event(cursor: AsyncCursor[DictRow], params: tuple[Any, ...], events: list[NewEvent]) -> None:
    """Write the order event row, and the outbox's events with it in the same statement."""
    if events:
        await cursor.execute(INSERT_EVENT_EMIT, (*params, *emit_params(events)))
    else:
        await cursor.execute(INSERT_EVENT, params)


class AsyncExecution:
    """The execution API of one Database (``db.execution``)."""

    def __init__(self, db: AsyncConnections, *, after_fills: AfterFills | None = None) -> None:
        self._db = db
        #: Events to the outbox with every change (TRADEDB_EVENTS_OUTBOX).
        self._outbox = db.settings.events_outbox
        self._after_fills = after_fills

    # --- orders -------------------------------------------------------------------------------------------

    async def submit_order(self, *, reference_price: Any = None, **fields: Any) -> Row:
        """Validate, risk-check and store an order; return its row.

        Fields: ``account_id``, ``security_id``, ``side``, ``quantity``, ``order_type`` (market), ``limit_price``,
        ``stop_price``, ``time_in_force`` (day), ``expire_at`` (gtd), ``client_order_id`` (a UUID; generated when
        omitted), ``strategy_instance_id``, ``signal_id``. The same request twice returns the same order; a
        different request with a used ``client_order_id`` raises ``OrderConflict``. A risk limit breach, or an
        order of a halted account that does not reduce a position, raises ``RiskLimitExceeded``, records a
        ``risk_events`` row and stores no order. ``reference_price`` prices a market order for the notional limit
        (default: the latest trade or bar close).
        """
        request = base.order_request(**fields)
        reference = None if reference_price is None else to_decimal(reference_price, "reference_price", positive=True)

        async def store(conn: AsyncConnection[TupleRow]) -> Row | RiskLimitExceeded:
            cursor = conn.cursor(row_factory=dict_row)
            existing = await _one(cursor, ORDER_BY_CLIENT_ID, (request.account_id, request.client_order_id))
            if existing is not None:
                return self._idempotent(request, existing)
            halt = await self._require_references(cursor, request)
            breach = await self._risk_check(cursor, request, reference, halt)
            if breach is not None:
                return breach
            row = await _one(cursor, INSERT_ORDER, request.__dict__)
            if row is None:  # the same client_order_id committed concurrently
                raced = await _one(cursor, ORDER_BY_CLIENT_ID, (request.account_id, request.client_order_id))
                assert raced is not None
                return self._idempotent(request, raced)
            event = (row["order_id"], row["account_id"], None, row["status"], "submitted to tradedb", None)
            await _order_event(cursor, event, [base.order_event(row, "order.created")] if self._outbox else [])
            return row

        # Idempotent on client_order_id, so safe to re-run after a deadlock or a lost connection.
        outcome = await self._db.run_transaction(store)
        if not isinstance(outcome, RiskLimitExceeded):
            return outcome
        # The order's transaction wrote nothing; the blocked order is recorded on its own.
        data = {
            "limit_type": outcome.limit_type,
            "limit_value": str(outcome.limit_value),
            "value": str(outcome.value),
            "client_order_id": str(request.client_order_id),
            "side": request.side,
            "quantity": str(request.quantity),
        }
        async with self._db.transaction() as conn:
            await conn.execute(
                INSERT_RISK_EVENT, (request.account_id, request.security_id, outcome.message, Jsonb(data))
            )
            if self._outbox:
                breach = {"account_id": request.account_id, "security_id": request.security_id, **data}
                await emit(conn, [new_event("risk", request.account_id, "risk.order_blocked", breach)])
        raise outcome

    @staticmethod
    def _idempotent(request: base.OrderRequest, existing: Row) -> Row:
        if request.same_request(existing):
            return existing
        raise OrderConflict(
            f"client_order_id {request.client_order_id} was already used for a different order "
            f"(order {existing['order_id']})"
        )

    async def _require_references(self, cursor: AsyncCursor[DictRow], request: base.OrderRequest) -> Row | None:
        """Check the account and security; return the account's halt (None: not halted)."""
        # FOR SHARE keeps the account from being changed or removed while the order is checked.
        account = await _one(cursor, ACCOUNT_FOR_SHARE, (request.account_id,))
        if account is None:
            raise await missing_account(cursor.connection, request.account_id)
        if not account["is_active"]:
            raise ValidationError(f"account {request.account_id!r} is not active")
        security = await _one(cursor, SECURITY_EXISTS, (request.security_id,))
        if security is None:
            raise NotFoundError(f"unknown security_id {request.security_id}")
        if security["status"] != "active":
            raise ValidationError(f"security {request.security_id} is {security['status']}")
        return account if account["halted_at"] is not None else None

    async def _risk_check(
        self, cursor: AsyncCursor[DictRow], request: base.OrderRequest, reference: Decimal | None, halt: Row | None
    ) -> RiskLimitExceeded | None:
        await cursor.execute(ACTIVE_LIMITS, (request.account_id, request.security_id))
        limits = await cursor.fetchall()
        if not limits and halt is None:
            return None
        held_row = await _one(cursor, POSITION_QUANTITY, (request.account_id, request.security_id))
        held = held_row["quantity"] if held_row else Decimal(0)
        after = held + request.signed_quantity()
        if halt is not None and not base.reduces_position(held, after):
            return RiskLimitExceeded(
                f"order blocked: account {request.account_id} is halted since {halt['halted_at']:%Y-%m-%d %H:%M:%S %Z}"
                f" ({halt['halt_reason']}); only orders that reduce a position are accepted until the halt is lifted"
                f" (db.risk.resume, or tradedb risk resume)",
                limit_type="halt",
                limit_value=Decimal(0),
                value=request.quantity,
            )
        price = request.limit_price or request.stop_price or reference
        for limit in limits:
            kind, value = limit["limit_type"], limit["limit_value"]
            scope = "account-wide" if limit["security_id"] is None else f"for security {request.security_id}"
            measured: Decimal | None = None
            if kind == "max_order_quantity":
                measured = request.quantity
            elif kind == "max_position_quantity" and abs(after) > abs(held):
                measured = abs(after)
            elif kind == "max_position_notional" and abs(after) > abs(held):
                if price is None:
                    last = await _one(cursor, LAST_PRICE, {"id": request.security_id})
                    if last is None:
                        raise ValidationError(
                            "max_position_notional applies but there is no price to value the order: pass "
                            "reference_price (or a limit price)"
                        )
                    price = Decimal(str(last["price"]))
                measured = abs(after) * price
            if measured is not None and measured > value:
                return RiskLimitExceeded(
                    f"order blocked: {kind} {scope} is {value}, the order would make it {measured}",
                    limit_type=kind,
                    limit_value=value,
                    value=measured,
                )
        return None

    async def transition(
        self,
        order_id: int,
        to: str,
        *,
        expected_version: int | None = None,
        reason: str | None = None,
        payload: Mapping[str, Any] | None = None,
        account_id: str | None = None,
    ) -> Row:
        """Move an order to ``to`` (submitted, cancelled, rejected, expired); write an order event.

        An illegal transition raises ``InvalidTransition``; a version other than ``expected_version`` raises
        ``StaleVersion``. Both leave the database unchanged. ``account_id``, the order's account when the caller
        knows it, is checked (an order of another account is ``NotFoundError``); on a Citus cluster it saves
        looking the account up on every node.
        """
        check_id(order_id, "order_id")
        if expected_version is not None:
            check_id(expected_version, "expected_version")
        if account_id is not None:
            account_id = check_account(account_id)

        async def move(conn: AsyncConnection[TupleRow]) -> Row:
            cursor = conn.cursor(row_factory=dict_row)
            order = await self._lock_order(cursor, order_id, account_id)
            if order is None:
                of = "" if account_id is None else f" of account {account_id!r}"
                raise NotFoundError(f"unknown order {order_id}{of}")
            if expected_version is not None and order["version"] != expected_version:
                raise StaleVersion(
                    f"order {order_id} is at version {order['version']}, not {expected_version}: reload it"
                )
            base.check_transition(order["status"], to)
            row = await _one(cursor, UPDATE_STATUS, (to, to, reason, order["account_id"], order_id))
            assert row is not None
            await _order_event(
                cursor,
                (
                    order_id,
                    order["account_id"],
                    order["status"],
                    to,
                    reason,
                    None if payload is None else Jsonb(dict(payload)),
                ),
                [base.order_event(row, f"order.{to}", from_status=order["status"], reason=reason)]
                if self._outbox
                else [],
            )
            return row

        # Re-running after a deadlock or lost connection is safe: the failed attempt was rolled back whole, and
        # a transition that did commit is not retried (run_transaction never retries a lost COMMIT).
        return await self._db.run_transaction(move)

    async def cancel_order(
        self,
        order_id: int,
        *,
        reason: str | None = None,
        expected_version: int | None = None,
        account_id: str | None = None,
    ) -> Row:
        """Cancel an order that is pending, submitted or partially filled."""
        return await self.transition(
            order_id, "cancelled", expected_version=expected_version, reason=reason, account_id=account_id
        )

    async def _lock_order(self, cursor: AsyncCursor[DictRow], order_id: int, account_id: str | None) -> Row | None:
        """The order, locked (None: no such order, or not of ``account_id``)."""
        if account_id is None and await self._db.on_citus(cursor.connection):
            found = await _one(cursor, ORDER_ACCOUNT, (order_id,))
            if found is None:
                return None
            account_id = found["account_id"]
        if account_id is None:
            return await _one(cursor, ORDER_FOR_UPDATE, (order_id,))
        return await _one(cursor, ORDER_OF_ACCOUNT_FOR_UPDATE, (account_id, order_id))

    # --- fills --------------------------------------------------------------------------------------------

    async def record_fill(
        self,
        execution_id: str | UUID,
        order_id: int,
        quantity: Any,
        price: Any,
        *,
        commission: Any = 0,
        executed_at: datetime | None = None,
        liquidity: str | None = None,
        settlement_date: date | None = None,
        account_id: str | None = None,
    ) -> base.FillResult:
        """Record an execution of an order: the fill, the order's fill state and the position, in one transaction.

        Recording the same ``execution_id`` again changes nothing and returns the first result
        (``duplicate=True``); execution ids are unique per account. ``account_id``, when the caller knows the
        order's account, is checked (an order of another account is ``NotFoundError``); on a Citus cluster it saves
        looking the account up on every node. A fill beyond the remaining quantity raises ``Overfill``; a fill
        of a cancelled (or otherwise final) order raises ``InvalidTransition``; neither writes anything. When the
        account has a PnL limit (``max_daily_loss``, ``max_drawdown``), the post-trade risk check follows the
        commit (``db.risk.check``: breaches become risk events and may halt the account).
        """
        fill = base.fill_input(
            execution_id,
            order_id,
            quantity,
            price,
            commission=commission,
            executed_at=executed_at,
            liquidity=liquidity,
            settlement_date=settlement_date,
            account_id=account_id,
        )

        async def record(conn: AsyncConnection[TupleRow]) -> tuple[base.FillResult, bool]:
            cursor = await conn.execute(
                RECORD_FILL,
                (
                    fill.execution_id,
                    fill.order_id,
                    fill.quantity,
                    fill.price,
                    fill.commission,
                    fill.executed_at,
                    fill.liquidity,
                    fill.settlement_date,
                    self._outbox,
                    fill.account_id,
                ),
            )
            row = await cursor.fetchone()
            result = cursor.pgresult
            assert row is not None
            assert result is not None
            # The names straight from the result: cursor.description builds an object per column (~50 here).
            names = [(result.fname(i) or b"").decode() for i in range(result.nfields - 1)]
            return base.fill_result(names, row[:-1]), bool(row[-1])

        # One statement, its own transaction. Idempotent on execution_id: a re-run finds the fill if it committed.
        result, pnl_limited = await self._db.run_transaction(record, single_statement=True)
        if not result.duplicate:
            COUNTERS.wrote("execution.fills", 1)
        # After the commit: the check sees the fill. A duplicate checks again, so a retry after a check that
        # failed (the fill committed, the check did not) still checks.
        if pnl_limited and self._after_fills is not None:
            await self._after_fills([result.order["account_id"]], True)
        return result

    async def record_fills(self, fills: Iterable[Mapping[str, Any]]) -> base.BatchResult:
        """Record a batch of fills (dicts of record_fill's arguments) in one transaction, for bulk replay.

        Executions already recorded are compared, then skipped; the new ones are applied in batch order with the
        arithmetic of single fills, and written set-wise: the fills and order events by COPY, each order and
        position updated once. Any bad fill fails the whole batch: nothing is written. The accounts of the batch that
        have a PnL limit are checked after the commit, as after a single fill. Execution ids are unique per account
        (the account of the fill's order; a fill may name it, as ``account_id``, to have it checked).
        """
        batch = [base.fill_input(**dict(f)) for f in fills]

        async def replay_batch(conn: AsyncConnection[TupleRow]) -> tuple[int, int, list[str]]:
            cursor = conn.cursor(row_factory=dict_row)
            await cursor.execute(ACCOUNTS_OF_ORDERS, (sorted({f.order_id for f in batch}),))
            account_of = {row["order_id"]: row["account_id"] for row in await cursor.fetchall()}
            seen: dict[tuple[str, str], base.FillInput] = {}
            for fill in batch:
                account = account_of.get(fill.order_id)
                if account is None or fill.account_id not in (None, account):
                    of = "" if fill.account_id is None else f" of account {fill.account_id!r}"
                    raise NotFoundError(f"unknown order {fill.order_id}{of}")
                resolved = replace(fill, account_id=account)
                if seen.setdefault((account, fill.execution_id), resolved) != resolved:
                    raise OrderConflict(f"execution_id {fill.execution_id!r} appears twice with different content")
            await cursor.execute(FILLS_BY_EXECUTION_IDS, ([k[0] for k in seen], [k[1] for k in seen]))
            recorded_before = {(row["account_id"], row["execution_id"]): row for row in await cursor.fetchall()}
            for key, fill in seen.items():
                if key in recorded_before and not fill.matches(recorded_before[key]):
                    raise OrderConflict(
                        f"execution_id {fill.execution_id!r} was already recorded with different content"
                    )
            new = [fill for key, fill in seen.items() if key not in recorded_before]
            if new and await self._db.on_citus(conn):
                for account in sorted({key[0] for key in seen if key not in recorded_before}):
                    await self._apply_batch(cursor, [f for f in new if f.account_id == account], account)
            elif new:
                await self._apply_batch(cursor, new)
            return len(new), len(batch) - len(new), sorted(set(account_of.values()))

        recorded, duplicates, accounts = await self._db.run_transaction(replay_batch)
        COUNTERS.wrote("execution.fills", recorded)
        if self._after_fills is not None and accounts:
            await self._after_fills(accounts, False)
        return base.BatchResult(recorded=recorded, duplicates=duplicates)

    async def _apply_batch(
        self, cursor: AsyncCursor[DictRow], fills: list[base.FillInput], account: str | None = None
    ) -> None:
        """Apply new fills set-wise; ``account``: all are of that account (Citus: every statement on its node)."""
        order_ids = sorted({f.order_id for f in fills})
        if account is None:
            await cursor.execute(ORDERS_FOR_UPDATE, (order_ids,))
        else:
            await cursor.execute(ORDERS_OF_ACCOUNT_FOR_UPDATE, (account, order_ids))
        orders = {row["order_id"]: row for row in await cursor.fetchall()}
        missing = next((f.order_id for f in fills if f.order_id not in orders), None)
        if missing is not None:
            raise NotFoundError(f"unknown order {missing}")
        keys = sorted({(row["account_id"], row["security_id"]) for row in orders.values()})
        columns = ([k[0] for k in keys], [k[1] for k in keys])
        await cursor.execute(CREATE_POSITIONS, columns)
        if account is None:
            await cursor.execute(POSITIONS_FOR_UPDATE, columns)
        else:
            await cursor.execute(POSITIONS_OF_ACCOUNT_FOR_UPDATE, (account, columns[1]))
        positions = {(row["account_id"], row["security_id"]): row for row in await cursor.fetchall()}
        # Ids taken while the positions are locked: fill_id order is application order, as for single fills.
        await cursor.execute(RESERVE_FILL_IDS, (len(fills),))
        fill_ids = [row["nextval"] for row in await cursor.fetchall()]
        now = next(iter(orders.values()))["tx_now"]
        plan = _batch.BatchPlan(fills, orders, positions, fill_ids, now, emit=self._outbox)
        await cursor.execute(RLS_ACTIVE)
        rls = bool((await cursor.fetchone() or {}).get("rls"))
        if rls and await self._db.on_citus(cursor.connection):
            # The shards apply the policies and take no COPY under them: rows go one by one, in a pipeline.
            await cursor.executemany(INSERT_FILL_ROW, list(plan.fill_rows()))
            await cursor.executemany(INSERT_ORDER_EVENT_ROW, plan.order_events)
        else:
            await self._copy_batch(cursor, plan, staged=rls)
        updated_orders = [list(column) for column in zip(*plan.orders(), strict=True)]
        updated_positions = [list(column) for column in zip(*plan.positions(), strict=True)]
        if account is None:
            await cursor.execute(UPDATE_ORDERS_FILLED, updated_orders)
            await cursor.execute(UPDATE_POSITIONS, updated_positions)
        else:
            await cursor.execute(UPDATE_ORDERS_OF_ACCOUNT_FILLED, [*updated_orders, account])
            await cursor.execute(UPDATE_POSITIONS_OF_ACCOUNT, [*updated_positions, account])
        if plan.events:
            await emit(cursor.connection, plan.events)

    @staticmethod
    async def _copy_batch(cursor: AsyncCursor[DictRow], plan: _batch.BatchPlan, *, staged: bool) -> None:
        if staged:
            await cursor.execute(STAGE)
        # Each fill is applied as its row is sent: the server stores rows while the next ones are planned. A bad
        # fill raises inside the COPY, which the rollback discards with everything else.
        async with cursor.copy(COPY_FILLS_STAGED if staged else COPY_FILLS) as copy:
            for row in plan.fill_rows():
                await copy.write_row(row)
        async with cursor.copy(COPY_ORDER_EVENTS_STAGED if staged else COPY_ORDER_EVENTS) as copy:
            for row in plan.order_events:
                await copy.write_row(row)
        if staged:
            await cursor.execute(INSERT_STAGED)

    # --- positions ----------------------------------------------------------------------------------------

    async def positions(self, account_id: str | None = None) -> list[Row]:
        """Return stored positions (of one account, or all)."""
        if account_id is not None:
            check_account(account_id)
        return await self._db.fetch_all(POSITIONS, {"account": account_id}, readonly=False)

    async def position(self, account_id: str, security_id: int) -> Row | None:
        """Return one stored position, or None."""
        check_account(account_id)
        check_id(security_id, "security_id")
        return await self._db.fetch_one(POSITION, (account_id, security_id), readonly=False)

    async def position_at(self, account_id: str, security_id: int, as_of: datetime) -> base.PositionState:
        """Return the position implied by the fills executed up to ``as_of`` (replayed in fill order)."""
        check_account(account_id)
        check_id(security_id, "security_id")
        check_time(as_of, "as_of")
        async with self._db.connection() as conn:
            cursor = await conn.execute(FILLS_FOR_POSITION_AT, (account_id, security_id, as_of))
            rows = await cursor.fetchall()
        return base.normalized(base.replay([(r[0], r[1], r[2], r[3]) for r in rows]))

    async def orders(self, *, account_id: str | None = None, status: str | None = None, limit: int = 100) -> list[Row]:
        """Return the newest orders, optionally of one account and status."""
        if status is not None:
            one_of(status, "status", tuple(base.TRANSITIONS))
        check_id(limit, "limit")
        return await self._db.fetch_all(
            ORDERS, {"account": account_id, "status": status, "limit": limit}, readonly=False
        )

    async def reconcile(self, account_id: str | None = None) -> list[base.PositionDifference]:
        """Compare stored positions with what the fills imply; return the differences (empty: all exact)."""
        async with self._db.connection() as conn:
            fills = await (await conn.execute(FILLS_FOR_REPLAY, {"account": account_id})).fetchall()
            cursor = conn.cursor(row_factory=dict_row)
            await cursor.execute(POSITIONS, {"account": account_id})
            stored = {(r["account_id"], r["security_id"]): _state(r) for r in await cursor.fetchall()}
        implied: dict[tuple[str, int], list[tuple[str, Decimal, Decimal, Decimal]]] = {}
        for account, security, side, quantity, price, commission in fills:
            implied.setdefault((account, security), []).append((side, quantity, price, commission))
        differences = []
        for key in sorted(set(stored) | set(implied)):
            expected = base.normalized(base.replay(implied.get(key, [])))
            actual = stored.get(key)
            if actual is None:
                problems = [f"no stored position, the fills imply quantity {expected.quantity}"]
            else:
                problems = base.position_differences(base.normalized(actual), expected)
            if problems:
                differences.append(base.PositionDifference(key[0], key[1], problems))
        return differences

"""Risk limits, post-trade checks, halts and risk events: ``db.risk`` of the sync Database.

Valuation, the session and high-water state and breach detection are I/O-free in ``_rules``; the SQL is in
``_sql``. A check marks the account's positions (the newest of the last quote's mid, last trade and last bar
close, or the caller's marks), advances its ``account_risk`` state and records each new breach of
``max_daily_loss`` / ``max_drawdown`` as a risk event; a limit with ``halt_on_breach`` halts the account. It runs
after every fill of an account with such a limit (``db.execution`` calls it) and on every mark-to-market.
"""

# WARNING: generated from api_async.py by tools/async_to_sync.py; edit the async source and run
# `python tools/async_to_sync.py`. A unit test fails when this file is stale.

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from psycopg import Connection, Cursor
from psycopg.rows import DictRow, TupleRow, dict_row
from psycopg.types.json import Jsonb

from tradedb.accounts import check_account
from tradedb.accounts.api import missing_account
from tradedb.db.inputs import check_id, check_time, to_decimal
from tradedb.db.outbox import emit
from tradedb.db.outbox_rules import new_event
from tradedb.errors import NotFoundError, ValidationError
from tradedb.risk import _rules as rules
from tradedb.risk._sql import (
    ACCOUNT,
    ACCOUNT_LOCKED,
    ACCOUNTS_TO_MARK,
    ACKNOWLEDGE,
    EVENT_FOR_UPDATE,
    EVENTS,
    HALT,
    INSERT_EVENT,
    LIMITS,
    MARK,
    OPEN_BREACHES,
    PNL_LIMITED,
    PNL_LIMITS,
    POSITIONS,
    POSITIONS_MARKED,
    REMOVE_LIMIT,
    RESOLVE,
    RESUME,
    SAVE_STATE,
    SECURITY,
    SET_LIMIT,
    STATE,
)

if TYPE_CHECKING:
    from tradedb.db.connections import Connections

Row = rules.Row


def _one(cursor: Cursor[DictRow], query: str, params: Any) -> Row | None:
    cursor.execute(query, params)
    return cursor.fetchone()


class Risk:
    """The risk API of one Database (``db.risk``)."""

    def __init__(self, db: Connections) -> None:
        self._db = db
        self._outbox = db.settings.events_outbox

    # --- limits -------------------------------------------------------------------------------------------

    def set_limit(
        self,
        account_id: str,
        limit_type: str,
        value: Any,
        *,
        security_id: int | None = None,
        halt_on_breach: bool = False,
    ) -> Row:
        """Set a limit (replacing the account's limit of that type and scope); return its row.

        ``limit_type``: ``max_order_quantity``, ``max_position_quantity``, ``max_position_notional`` (checked
        before each order, account-wide or for ``security_id``), ``max_daily_loss`` or ``max_drawdown`` (amounts in
        the account currency, account-wide, checked after each fill and mark-to-market). ``halt_on_breach`` halts
        the account when the limit is breached. Setting a PnL limit checks the account at once, so the limit is
        measured from then on.
        """
        limit = rules.limit_input(check_account(account_id), limit_type, value, security_id, halt_on_breach)

        def store(conn: Connection[TupleRow]) -> Row:
            cursor = conn.cursor(row_factory=dict_row)
            if _one(cursor, ACCOUNT, (limit.account_id,)) is None:
                raise missing_account(conn, limit.account_id)
            if limit.security_id is not None and _one(cursor, SECURITY, (limit.security_id,)) is None:
                raise NotFoundError(f"unknown security_id {limit.security_id}")
            row = _one(cursor, SET_LIMIT, limit.__dict__)
            assert row is not None
            if limit.limit_type in rules.PNL_LIMITS:
                self._check(cursor, limit.account_id, {})
            return row

        return self._db.run_transaction(store)

    def limits(self, account_id: str | None = None, *, include_inactive: bool = False) -> list[Row]:
        """Return the limits (of one account, or every visible one)."""
        if account_id is not None:
            check_account(account_id)
        return self._db.fetch_all(LIMITS, {"account": account_id, "all": include_inactive}, readonly=False)

    def remove_limit(self, limit_id: int) -> Row:
        """Remove a limit; return the row it had."""
        check_id(limit_id, "limit_id")
        with self._db.transaction() as conn:
            row = _one(conn.cursor(row_factory=dict_row), REMOVE_LIMIT, (limit_id,))
        if row is None:
            raise NotFoundError(f"unknown risk limit {limit_id}")
        return row

    # --- checks -------------------------------------------------------------------------------------------

    def check(self, account_id: str, *, marks: Mapping[int, Any] | None = None) -> rules.RiskCheck:
        """Mark the account's positions and check its PnL limits; return what was found and done.

        ``marks`` ({security_id: price}) replace the stored prices of those securities. A breach without an
        open risk event gets one (severity ``high``, ``critical`` when the limit halts the account).
        """
        check_account(account_id)
        given = rules.check_marks(marks)

        def run(conn: Connection[TupleRow]) -> rules.RiskCheck:
            return self._check(conn.cursor(row_factory=dict_row), account_id, given)

        return self._db.run_transaction(run)

    def mark_to_market(
        self, account_ids: Iterable[str] | None = None, *, marks: Mapping[int, Any] | None = None
    ) -> list[rules.RiskCheck]:
        """Check every account with positions or PnL limits (or those named); one transaction per account."""
        given = rules.check_marks(marks)
        if account_ids is None:
            names = [r["account_id"] for r in self._db.fetch_all(ACCOUNTS_TO_MARK, readonly=False)]
        else:
            names = [check_account(a) for a in account_ids]
        return [self.check(name, marks=given) for name in names]

    def after_fills(self, account_ids: Iterable[str], limited: bool = False) -> list[rules.RiskCheck]:
        """Check the accounts among ``account_ids`` that have a PnL limit (what ``db.execution`` runs after fills;
        ``limited``: the caller knows they all have one)."""
        wanted = sorted(set(account_ids))
        if not limited:
            wanted = sorted(r["account_id"] for r in self._db.fetch_all(PNL_LIMITED, (wanted,), readonly=False))
        return [self.check(name) for name in wanted]

    def _check(self, cursor: Cursor[DictRow], account_id: str, marks: dict[int, Any]) -> rules.RiskCheck:
        conn = cursor.connection
        account = _one(cursor, ACCOUNT_LOCKED, (account_id,))
        if account is None:
            raise missing_account(conn, account_id)
        currency: str = account["base_currency"]
        now: datetime = account["tx_now"]
        # What the check reads, in one round trip (after the lock).
        read_positions, read_state, read_limits = (conn.cursor(row_factory=dict_row) for _ in range(3))
        distributed = self._db.on_citus(conn)  # on Citus the marks are read per security
        with conn.pipeline():
            read_positions.execute(POSITIONS if distributed else POSITIONS_MARKED, (account_id,))
            read_state.execute(STATE, (account_id,))
            read_limits.execute(PNL_LIMITS, (account_id,))
        held = read_positions.fetchall()
        if distributed:
            _mark(conn, held)
        positions = []
        for row in held:
            stored = None if row["mark"] is None else to_decimal(row["mark"], "mark")
            mark = marks.get(row["security_id"], stored)
            if row["security_id"] in marks:
                row["marked_at"] = now
            positions.append(rules.value_position(row, currency, mark))
        previous = read_state.fetchone()
        before = None
        if previous is not None:
            before = rules.RiskState(
                previous["session_date"], previous["session_start_pnl"], previous["high_water_pnl"], previous["pnl"]
            )
        state = rules.advance(before, rules.total_pnl(positions), now.astimezone(UTC).date())
        saved = _one(
            cursor,
            SAVE_STATE,
            {
                "account": account_id,
                "session_date": state.session_date,
                "start": state.session_start_pnl,
                "high": state.high_water_pnl,
                "pnl": state.pnl,
            },
        )
        assert saved is not None
        found = rules.breaches(list(read_limits.fetchall()), state)
        new = []
        if found:
            cursor.execute(OPEN_BREACHES, (account_id,))
            open_keys = {r["breach"] for r in cursor.fetchall()}
            for breach in found:
                key = _breach_key(breach, state)
                if key in open_keys:
                    continue
                new.append(breach)
                message = breach.message(account_id, currency)
                data = {
                    "breach": key,
                    "limit_id": breach.limit_id,
                    "limit_type": breach.limit_type,
                    "limit_value": rules.amount_text(breach.limit_value),
                    "value": rules.amount_text(breach.measured),
                    "pnl": rules.amount_text(state.pnl),
                    "session_start_pnl": rules.amount_text(state.session_start_pnl),
                    "high_water_pnl": rules.amount_text(state.high_water_pnl),
                    "halts": breach.halts,
                }
                self._event(cursor, account_id, "limit_breach", severity=breach.severity, message=message, data=data)
                if breach.halts and saved["halted_at"] is None:
                    halted = _one(
                        cursor, HALT, {"account": account_id, "reason": message, "by": f"limit {breach.limit_id}"}
                    )
                    saved = halted or saved
        return rules.RiskCheck(
            account_id,
            currency,
            now,
            state,
            positions,
            breaches=new,
            halted=saved["halted_at"] is not None,
            halt_reason=saved["halt_reason"],
        )

    def _event(
        self,
        cursor: Cursor[DictRow],
        account_id: str,
        event_type: str,
        *,
        severity: str,
        message: str,
        data: dict[str, Any],
    ) -> Row:
        row = _one(
            cursor,
            INSERT_EVENT,
            {
                "account": account_id,
                "security": None,
                "type": event_type,
                "severity": severity,
                "message": message,
                "data": Jsonb(data),
            },
        )
        assert row is not None
        if self._outbox:
            payload = {"event_id": row["event_id"], "severity": severity, "message": message, **data}
            emit(cursor, [new_event("risk", account_id, f"risk.{event_type}", payload)])
        return row

    def state(self, account_id: str) -> Row | None:
        """Return the account's risk state (session start, high-water mark, last PnL, halt), or None."""
        check_account(account_id)
        return self._db.fetch_one(STATE, (account_id,), readonly=False)

    # --- halts --------------------------------------------------------------------------------------------

    def halt(self, account_id: str, *, reason: str, by: str) -> Row:
        """Halt an account by hand: until ``resume``, only orders that reduce a position are accepted."""
        check_account(account_id)
        by = rules.check_person(by)
        if not isinstance(reason, str) or not reason.strip():
            raise ValidationError("reason must say why the account is halted")

        def stop(conn: Connection[TupleRow]) -> Row:
            cursor = conn.cursor(row_factory=dict_row)
            self._check(cursor, account_id, {})
            row = _one(cursor, HALT, {"account": account_id, "reason": reason.strip(), "by": by})
            if row is None:
                raise ValidationError(f"account {account_id!r} is already halted")
            message = f"halted by {by}: {reason.strip()}"
            self._event(cursor, account_id, "halt", severity="critical", message=message, data={"by": by})
            return row

        return self._db.run_transaction(stop)

    def resume(self, account_id: str, *, by: str, note: str | None = None) -> Row:
        """Lift an account's halt; record who did it (and why) as a risk event."""
        check_account(account_id)
        by = rules.check_person(by)

        def lift(conn: Connection[TupleRow]) -> Row:
            cursor = conn.cursor(row_factory=dict_row)
            if _one(cursor, ACCOUNT, (account_id,)) is None:
                raise missing_account(conn, account_id)
            row = _one(cursor, RESUME, (account_id,))
            if row is None:
                raise ValidationError(f"account {account_id!r} is not halted")
            message = f"resumed by {by}" + (f": {note}" if note else "")
            self._event(cursor, account_id, "resume", severity="medium", message=message, data={"by": by, "note": note})
            return row

        return self._db.run_transaction(lift)

    # --- events -------------------------------------------------------------------------------------------

    def events(
        self,
        account_id: str | None = None,
        *,
        open_only: bool = False,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[Row]:
        """Return risk events, newest first (``open_only``: not resolved yet)."""
        if account_id is not None:
            check_account(account_id)
        if since is not None:
            check_time(since, "since")
        check_id(limit, "limit")
        params = {"account": account_id, "open": open_only, "since": since, "limit": limit}
        return self._db.fetch_all(EVENTS, params, readonly=False)

    def acknowledge(self, event_id: int, *, by: str, note: str | None = None) -> Row:
        """Record that ``by`` has seen a risk event (and what they said)."""
        return self._close(event_id, by, note, ACKNOWLEDGE, "acknowledged")

    def resolve(self, event_id: int, *, by: str, note: str | None = None) -> Row:
        """Resolve a risk event (acknowledging it too, if nobody had); a breach resolved is reported again if the
        account is still beyond the limit at the next check."""
        return self._close(event_id, by, note, RESOLVE, "resolved")

    def _close(self, event_id: int, by: str, note: str | None, statement: str, done: str) -> Row:
        check_id(event_id, "event_id")
        by = rules.check_person(by)
        if note is not None and not isinstance(note, str):
            raise ValidationError(f"note must be text, got {note!r}")

        def update(conn: Connection[TupleRow]) -> Row:
            cursor = conn.cursor(row_factory=dict_row)
            event = _one(cursor, EVENT_FOR_UPDATE, (event_id,))
            if event is None:
                raise NotFoundError(f"unknown risk event {event_id}")
            if event[f"{done}_at"] is not None:
                raise ValidationError(
                    f"risk event {event_id} was already {done} at {event[f'{done}_at']:%Y-%m-%d %H:%M:%S %Z}"
                    f" by {event[f'{done}_by'] or 'an unknown person'}"
                )
            row = _one(cursor, statement, {"by": by, "note": note, "event": event_id})
            assert row is not None
            return row

        return self._db.run_transaction(update)


def _breach_key(breach: rules.Breach, state: rules.RiskState) -> str:
    """One open event per breach: a drawdown breach per limit, a daily loss breach per limit and session."""
    if breach.limit_type == "max_daily_loss":
        return f"{breach.limit_id}@{state.session_date.isoformat()}"
    return str(breach.limit_id)


def _mark(conn: Connection[TupleRow], positions: list[DictRow]) -> None:
    """Give each position its mark and when it was marked (MARK per security, all in one round trip)."""
    cursors = [conn.cursor(row_factory=dict_row) for _ in positions]
    with conn.pipeline():
        for cursor, row in zip(cursors, positions, strict=True):
            cursor.execute(MARK, {"security_id": row["security_id"]})
    for cursor, row in zip(cursors, positions, strict=True):
        found = cursor.fetchone()
        row["mark"], row["marked_at"] = (found["price"], found["ts"]) if found is not None else (None, None)

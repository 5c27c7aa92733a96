"""Orders, fills and positions against a real database, through both APIs."""

from __future__ import annotations

import asyncio
import random
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tradedb
from tests.conftest import TestDatabase, run_cli
from tests.integration.facade import Api, call
from tests.unit.test_execution_base import LOTS, reference
from tradedb import (
    InvalidTransition,
    NotFoundError,
    OrderConflict,
    Overfill,
    RiskLimitExceeded,
    StaleVersion,
    ValidationError,
)
from tradedb.execution import _rules as base

SNAPSHOT = {
    "orders": "SELECT * FROM execution.orders ORDER BY order_id",
    "order_events": "SELECT * FROM execution.order_events ORDER BY event_id",
    "fills": "SELECT * FROM execution.fills ORDER BY fill_id",
    "positions": "SELECT * FROM execution.positions ORDER BY account_id, security_id",
    "risk_events": "SELECT * FROM risk_management.risk_events ORDER BY event_id",
}


def snapshot(db: TestDatabase) -> dict[str, list[tuple[object, ...]]]:
    with db.connect() as conn:
        return {name: conn.execute(query).fetchall() for name, query in SNAPSHOT.items()}


@pytest.fixture(scope="module")
def security(db: TestDatabase) -> int:
    with db.connect() as conn:
        conn.execute("INSERT INTO shared.exchanges (mic, name) VALUES ('XNAS', 'Nasdaq')")
        row = conn.execute(
            "INSERT INTO shared.securities (symbol, exchange_mic, asset_type) VALUES ('ACME', 'XNAS', 'equity')"
            " RETURNING security_id"
        ).fetchone()
        conn.commit()
    assert row is not None
    return int(str(row[0]))


def new_account(db: TestDatabase, prefix: str = "ACC") -> str:
    account = f"{prefix}-{uuid.uuid4().hex[:10]}"
    with db.connect() as conn:
        conn.execute("INSERT INTO execution.accounts (account_id, name) VALUES (%s, %s)", (account, account))
        conn.commit()
    return account


@pytest.fixture(params=["sync", "async"])
def api(request: pytest.FixtureRequest, db: TestDatabase) -> Iterator[Api]:
    handle = Api(str(request.param), db.url, db.settings)
    yield handle
    handle.close()


def order(api: Api, account: str, security: int, side: str = "buy", quantity: Any = 10, **extra: Any) -> dict[str, Any]:
    return call(api, "submit_order", account_id=account, security_id=security, side=side, quantity=quantity, **extra)  # type: ignore[no-any-return]


def fill(api: Api, order_id: int, quantity: Any, price: Any, **extra: Any) -> base.FillResult:
    return call(api, "record_fill", f"X-{uuid.uuid4().hex}", order_id, quantity, price, **extra)  # type: ignore[no-any-return]


def test_order_lifecycle(api: Api, db: TestDatabase, security: int) -> None:
    account = new_account(db)
    placed = order(api, account, security, quantity=10, order_type="limit", limit_price="100.5")
    assert (placed["status"], placed["version"]) == ("pending", 1)
    submitted = call(api, "transition", placed["order_id"], "submitted", expected_version=1, reason="sent")
    assert (submitted["status"], submitted["version"]) == ("submitted", 2)
    first = fill(api, placed["order_id"], 4, "100.25", commission="0.40")
    assert first.order["status"] == "partially_filled"
    assert first.order["avg_fill_price"] == Decimal("100.25")
    assert first.position["quantity"] == 4
    second = fill(api, placed["order_id"], 6, "100.5")
    assert second.order["status"] == "filled"
    assert second.order["avg_fill_price"] == Decimal("100.4")
    assert second.position["avg_price"] == Decimal("100.4")
    assert second.position["realized_pnl"] == Decimal("-0.40")
    with db.connect() as conn:
        events = conn.execute(
            "SELECT from_status, to_status FROM execution.order_events WHERE order_id = %s ORDER BY event_id",
            (placed["order_id"],),
        ).fetchall()
    assert events == [
        (None, "pending"),
        ("pending", "submitted"),
        ("submitted", "partially_filled"),
        ("partially_filled", "filled"),
    ]
    assert call(api, "reconcile", account) == []


def test_same_request_twice_is_the_same_order(api: Api, db: TestDatabase, security: int) -> None:
    account = new_account(db)
    coid = uuid.uuid4()
    first = order(api, account, security, client_order_id=coid)
    again = order(api, account, security, client_order_id=coid)
    assert first["order_id"] == again["order_id"]
    with pytest.raises(OrderConflict, match=str(coid)):
        order(api, account, security, quantity=11, client_order_id=coid)


def test_same_execution_twice_changes_nothing(api: Api, db: TestDatabase, security: int) -> None:
    account = new_account(db)
    placed = order(api, account, security, quantity=5)
    first = call(api, "record_fill", "EXEC-1-" + account, placed["order_id"], 5, 20)
    before = snapshot(db)
    again = call(api, "record_fill", "EXEC-1-" + account, placed["order_id"], 5, 20)
    assert again.duplicate is True
    assert again.fill == first.fill
    assert snapshot(db) == before
    with pytest.raises(OrderConflict):
        call(api, "record_fill", "EXEC-1-" + account, placed["order_id"], 4, 20)


def test_batch_replay_twice_changes_nothing(api: Api, db: TestDatabase, security: int) -> None:
    account = new_account(db)
    orders = [order(api, account, security, side=side, quantity=10) for side in ("buy", "sell", "buy")]
    batch = [
        {"execution_id": f"B-{account}-{i}", "order_id": o["order_id"], "quantity": q, "price": p, "commission": "0.1"}
        for i, (o, q, p) in enumerate([(orders[0], 6, 10), (orders[0], 4, 11), (orders[1], 10, 12), (orders[2], 3, 9)])
    ]
    first = call(api, "record_fills", batch)
    assert (first.recorded, first.duplicates) == (4, 0)
    before = snapshot(db)
    second = call(api, "record_fills", batch + batch[:1])
    assert (second.recorded, second.duplicates) == (0, 5)
    assert snapshot(db) == before
    position = call(api, "position", account, security)
    assert position["quantity"] == 3
    assert call(api, "reconcile", account) == []


def test_a_bad_fill_in_a_batch_writes_nothing(api: Api, db: TestDatabase, security: int) -> None:
    account = new_account(db)
    placed = order(api, account, security, quantity=5)
    before = snapshot(db)
    batch = [
        {"execution_id": f"OK-{account}", "order_id": placed["order_id"], "quantity": 2, "price": 1},
        {"execution_id": f"BAD-{account}", "order_id": placed["order_id"], "quantity": 9, "price": 1},
    ]
    with pytest.raises(Overfill):
        call(api, "record_fills", batch)
    assert snapshot(db) == before


def test_client_order_ids_and_execution_ids_are_unique_per_account(api: Api, db: TestDatabase, security: int) -> None:
    first, second = new_account(db), new_account(db)
    coid = uuid.uuid4()
    a = order(api, first, security, quantity=5, client_order_id=coid)
    b = order(api, second, security, quantity=5, client_order_id=coid)
    assert a["order_id"] != b["order_id"]
    assert order(api, second, security, quantity=5, client_order_id=coid)["order_id"] == b["order_id"]
    # one execution id in two accounts: two executions; again in one account (given or not): the same one
    shared = f"E-{uuid.uuid4().hex}"
    on_a = call(api, "record_fill", shared, a["order_id"], 2, 10, account_id=first)
    on_b = call(api, "record_fill", shared, b["order_id"], 3, 11)
    assert not on_a.duplicate and not on_b.duplicate
    assert (on_a.fill["account_id"], on_b.fill["account_id"]) == (first, second)
    assert call(api, "record_fill", shared, b["order_id"], 3, 11, account_id=second).duplicate
    with pytest.raises(OrderConflict):
        call(api, "record_fill", shared, b["order_id"], 1, 11)
    # the same in a batch: keyed by the orders' accounts
    again = f"E-{uuid.uuid4().hex}"
    batch = [
        {"execution_id": again, "order_id": a["order_id"], "quantity": 1, "price": 10},
        {"execution_id": again, "order_id": b["order_id"], "quantity": 1, "price": 10, "account_id": second},
        {"execution_id": shared, "order_id": b["order_id"], "quantity": 3, "price": 11},
    ]
    result = call(api, "record_fills", batch)
    assert (result.recorded, result.duplicates) == (2, 1)
    assert [call(api, "position", acc, security)["quantity"] for acc in (first, second)] == [3, 4]
    assert call(api, "reconcile", first) == [] and call(api, "reconcile", second) == []
    # the state machine with the account given: the order of that account, locked by its whole key
    cancelled = call(api, "cancel_order", a["order_id"], account_id=first, reason="done")
    assert (cancelled["status"], cancelled["account_id"]) == ("cancelled", first)


def batch_fill(order_id: int, quantity: Any, price: Any = 10, **extra: Any) -> dict[str, Any]:
    return {
        "execution_id": f"X-{uuid.uuid4().hex}",
        "order_id": order_id,
        "quantity": quantity,
        "price": price,
        **extra,
    }


def bad_inputs(api: Api, db: TestDatabase, security: int) -> list[tuple[str, type[Exception], Any]]:
    account = new_account(db)
    live = order(api, account, security, quantity=5, order_type="limit", limit_price=10)
    cancelled = order(api, account, security, quantity=5)
    call(api, "cancel_order", cancelled["order_id"])
    coid = uuid.uuid4()
    order(api, account, security, quantity=1, client_order_id=coid)
    oid = live["order_id"]
    other = new_account(db)
    return [
        ("zero quantity", ValidationError, lambda: order(api, account, security, quantity=0)),
        ("negative quantity", ValidationError, lambda: order(api, account, security, quantity=-3)),
        ("NaN quantity", ValidationError, lambda: order(api, account, security, quantity=float("nan"))),
        ("NaN price", ValidationError, lambda: fill(api, oid, 1, Decimal("NaN"))),
        ("zero price", ValidationError, lambda: fill(api, oid, 1, 0)),
        ("negative fill quantity", ValidationError, lambda: fill(api, oid, -1, 10)),
        ("unknown account", NotFoundError, lambda: order(api, "NOPE-" + account, security)),
        ("unknown security", NotFoundError, lambda: order(api, account, 99_999_999)),
        ("unknown order", NotFoundError, lambda: fill(api, 99_999_999, 1, 10)),
        ("overfill", Overfill, lambda: fill(api, oid, 6, 10)),
        ("fill on a cancelled order", InvalidTransition, lambda: fill(api, cancelled["order_id"], 1, 10)),
        ("illegal transition", InvalidTransition, lambda: call(api, "transition", oid, "filled")),
        (
            "illegal transition from a final state",
            InvalidTransition,
            lambda: call(api, "transition", cancelled["order_id"], "submitted"),
        ),
        ("stale version", StaleVersion, lambda: call(api, "transition", oid, "submitted", expected_version=7)),
        ("unknown order in a batch", NotFoundError, lambda: call(api, "record_fills", [batch_fill(99_999_999, 1)])),
        (
            "a batch filling a cancelled order",
            InvalidTransition,
            lambda: call(api, "record_fills", [batch_fill(oid, 1), batch_fill(cancelled["order_id"], 1)]),
        ),
        (
            "a batch overfilling by its sum",
            Overfill,
            lambda: call(api, "record_fills", [batch_fill(oid, 3), batch_fill(oid, 3)]),
        ),
        (
            "used client_order_id, other content",
            OrderConflict,
            lambda: order(api, account, security, quantity=2, client_order_id=coid),
        ),
        ("an order of another account", NotFoundError, lambda: fill(api, oid, 1, 10, account_id=other)),
        (
            "a transition naming another account",
            NotFoundError,
            lambda: call(api, "transition", oid, "submitted", account_id=other),
        ),
        ("a cancel naming another account", NotFoundError, lambda: call(api, "cancel_order", oid, account_id=other)),
        ("a bad account_id", ValidationError, lambda: fill(api, oid, 1, 10, account_id="no spaces")),
        (
            "a batch naming another account",
            NotFoundError,
            lambda: call(api, "record_fills", [batch_fill(oid, 1), batch_fill(oid, 1, account_id=other)]),
        ),
    ]


def test_every_bad_input_is_typed_and_changes_nothing(api: Api, db: TestDatabase, security: int) -> None:
    cases = bad_inputs(api, db, security)
    for name, error, action in cases:
        before = snapshot(db)
        with pytest.raises(error):
            action()
        assert snapshot(db) == before, name


def test_risk_limits(api: Api, db: TestDatabase, security: int) -> None:
    account = new_account(db)
    with db.connect() as conn:
        conn.execute(
            "INSERT INTO risk_management.risk_limits (account_id, security_id, limit_type, limit_value)"
            " VALUES (%s, NULL, 'max_order_quantity', 100), (%s, %s, 'max_position_quantity', 150),"
            " (%s, NULL, 'max_position_notional', 20000)",
            (account, account, security, account),
        )
        conn.commit()
    ok = order(api, account, security, quantity=100, order_type="limit", limit_price=50)
    fill(api, ok["order_id"], 100, 50)
    before = snapshot(db)
    with pytest.raises(RiskLimitExceeded, match="max_order_quantity account-wide is 100") as info:
        order(api, account, security, quantity=101, order_type="limit", limit_price=50)
    assert info.value.limit_type == "max_order_quantity"
    with pytest.raises(RiskLimitExceeded, match=f"max_position_quantity for security {security} is 150"):
        order(api, account, security, quantity=60, order_type="limit", limit_price=50)
    with pytest.raises(RiskLimitExceeded, match="max_position_notional"):
        order(api, account, security, quantity=40, order_type="limit", limit_price=200)
    after = snapshot(db)
    assert after["orders"] == before["orders"]
    new_events = [e for e in after["risk_events"] if e not in before["risk_events"]]
    assert len(new_events) == 3
    with db.connect() as conn:
        kinds = conn.execute(
            "SELECT data->>'limit_type' FROM risk_management.risk_events WHERE account_id = %s ORDER BY event_id",
            (account,),
        ).fetchall()
    assert kinds == [("max_order_quantity",), ("max_position_quantity",), ("max_position_notional",)]
    # Reducing a position is always allowed; within limits passes.
    order(api, account, security, side="sell", quantity=100, order_type="limit", limit_price=50)
    order(api, account, security, quantity=50, order_type="limit", limit_price=50)
    # A market order is valued at the latest price, or refused when there is none.
    with pytest.raises(ValidationError, match="reference_price"):
        order(api, account, security, quantity=1)
    order(api, account, security, quantity=1, reference_price=50)


def test_position_at_and_reconcile_find_tampering(api: Api, db: TestDatabase, security: int) -> None:
    account = new_account(db)
    placed = order(api, account, security, quantity=10)
    early = fill(api, placed["order_id"], 4, 10)
    fill(api, placed["order_id"], 6, 20)
    at = call(api, "position_at", account, security, early.fill["executed_at"])
    assert (at.quantity, at.avg_price) == (4, Decimal(10))
    with db.connect() as conn:
        conn.execute("UPDATE execution.positions SET quantity = 11 WHERE account_id = %s", (account,))
        conn.commit()
    differences = call(api, "reconcile", account)
    assert len(differences) == 1
    assert differences[0].differences == ["quantity is 11 but the fills imply 10"]
    result = run_cli("reconcile", "--account", account, env=db.env())
    assert result.returncode == 1, result.stderr
    assert "quantity is 11" in result.stdout
    with db.connect() as conn:
        conn.execute("UPDATE execution.positions SET quantity = 10 WHERE account_id = %s", (account,))
        conn.commit()


def test_cli_positions_and_orders(db: TestDatabase, security: int) -> None:
    with tradedb.connect(db.url, settings=db.settings) as handle:
        account = new_account(db, "CLI")
        placed = handle.execution.submit_order(account_id=account, security_id=security, side="buy", quantity=3)
        handle.execution.record_fill(f"CLI-{account}", placed["order_id"], 3, "12.5")
    positions = run_cli("positions", "--account", account, env=db.env())
    assert positions.returncode == 0, positions.stderr
    assert account in positions.stdout and "12.5" in positions.stdout
    assert "12.50" not in positions.stdout and "3.000" not in positions.stdout  # no trailing zeros
    orders = run_cli("orders", "--account", account, "--status", "filled", env=db.env())
    assert orders.returncode == 0, orders.stderr
    assert str(placed["order_id"]) in orders.stdout
    bad = run_cli("orders", "--status", "done", env=db.env())
    assert bad.returncode == 8
    assert "status must be one of" in bad.stderr


amounts = st.tuples(
    st.sampled_from(["buy", "sell"]),
    st.integers(min_value=1, max_value=50),
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal(500), places=2),
    st.booleans(),
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(amounts, min_size=1, max_size=12))
def test_random_trades_through_tradedb_match_the_reference(
    db: TestDatabase, security: int, trades: list[tuple[str, int, Decimal, bool]]
) -> None:
    account = new_account(db, "PROP")
    applied: list[tuple[str, Decimal, Decimal, Decimal]] = []
    with tradedb.connect(db.url, settings=db.settings, max_size=2) as handle:
        for side, quantity, price, partial in trades:
            placed = handle.execution.submit_order(
                account_id=account, security_id=security, side=side, quantity=quantity
            )
            parts = [quantity // 2, quantity - quantity // 2] if partial and quantity > 1 else [quantity]
            for part in parts:
                handle.execution.record_fill(
                    f"P-{uuid.uuid4().hex}", placed["order_id"], part, price, commission="0.01"
                )
                applied.append((side, Decimal(part), price, Decimal("0.01")))
        stored = handle.execution.position(account, security)
    assert stored is not None
    qty, avg, pnl, fees = reference(applied)
    assert (stored["quantity"], stored["avg_price"], stored["realized_pnl"], stored["total_commission"]) == (
        qty,
        avg,
        pnl,
        fees,
    )


def test_concurrent_fills_on_one_position_are_exact(db: TestDatabase, security: int) -> None:
    """8 threads and 8 asyncio tasks record 2,000 fills on one position at once (with duplicate deliveries)."""
    account = new_account(db, "CONC")
    per_worker = 125
    with tradedb.connect(db.url, settings=db.settings, max_size=16) as handle:
        orders = [
            handle.execution.submit_order(
                account_id=account, security_id=security, side="buy" if i % 3 else "sell", quantity=per_worker
            )
            for i in range(16)
        ]
    rng = random.Random(7)
    prices = [[Decimal(rng.randint(9000, 11000)) / 100 for _ in range(per_worker)] for _ in orders]
    errors: list[BaseException] = []

    def thread_worker(index: int) -> None:
        with tradedb.connect(db.url, settings=db.settings, max_size=2) as handle:
            for n in range(per_worker):
                try:
                    execution_id = f"C-{account}-{index}-{n}"
                    handle.execution.record_fill(execution_id, orders[index]["order_id"], 1, prices[index][n])
                    if n % 10 == 0:  # a duplicate delivery of the same execution
                        assert handle.execution.record_fill(
                            execution_id, orders[index]["order_id"], 1, prices[index][n]
                        ).duplicate
                except Exception as exc:
                    errors.append(exc)

    async def task_worker(adb: tradedb.AsyncDatabase, index: int) -> None:
        for n in range(per_worker):
            try:
                execution_id = f"C-{account}-{index}-{n}"
                await adb.execution.record_fill(execution_id, orders[index]["order_id"], 1, prices[index][n])
            except Exception as exc:
                errors.append(exc)

    async def tasks() -> None:
        async with tradedb.connect_async(db.url, settings=db.settings, max_size=8) as adb:
            await asyncio.gather(*(task_worker(adb, i) for i in range(8, 16)))

    threads = [threading.Thread(target=thread_worker, args=(i,)) for i in range(8)]
    threads.append(threading.Thread(target=lambda: asyncio.run(tasks())))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with db.connect() as conn:
        count, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT execution_id) FROM execution.fills WHERE account_id = %s", (account,)
        ).fetchone()  # type: ignore[misc]
        filled = conn.execute(
            "SELECT DISTINCT status, filled_quantity FROM execution.orders WHERE account_id = %s", (account,)
        ).fetchall()
    assert (count, distinct) == (2000, 2000)
    assert filled == [("filled", Decimal(per_worker))]
    with tradedb.connect(db.url, settings=db.settings) as handle:
        assert handle.execution.reconcile(account) == []
        position = handle.execution.position(account, security)
    assert position is not None
    buys = sum(1 for i in range(16) if i % 3)
    assert position["quantity"] == per_worker * (buys - (16 - buys))


def test_verify_reports_positions_that_differ(db: TestDatabase, security: int) -> None:
    account = new_account(db, "VER")
    with tradedb.connect(db.url, settings=db.settings) as handle:
        placed = handle.execution.submit_order(account_id=account, security_id=security, side="buy", quantity=2)
        handle.execution.record_fill(f"V-{account}", placed["order_id"], 2, 5)
    with db.connect() as conn:
        conn.execute("UPDATE execution.positions SET realized_pnl = 1 WHERE account_id = %s", (account,))
        conn.commit()
    result = run_cli("verify", "--json", env=db.env())
    assert result.returncode == 1
    assert f"{account}/{security}" in result.stdout
    with db.connect() as conn:
        conn.execute("UPDATE execution.positions SET realized_pnl = 0 WHERE account_id = %s", (account,))
        conn.commit()


def test_psycopg_numeric_is_decimal(db: TestDatabase) -> None:
    with db.connect() as conn:
        row = conn.execute("SELECT 1.5::numeric").fetchone()
    assert row is not None and isinstance(row[0], Decimal) and row[0] == Decimal("1.5")


OUTCOME = {
    "orders": "SELECT quantity, filled_quantity, avg_fill_price, status, version FROM execution.orders"
    " WHERE account_id = %(a)s ORDER BY order_id",
    "order_events": "SELECT from_status, to_status, reason, payload - 'execution_id' FROM execution.order_events"
    " WHERE account_id = %(a)s AND reason = 'fill' ORDER BY event_id",
    "fills": "SELECT side, quantity, price, commission, executed_at FROM execution.fills WHERE account_id = %(a)s"
    " ORDER BY fill_id",
    "positions": "SELECT quantity, avg_price, realized_pnl, total_commission, opened_at, version"
    " FROM execution.positions WHERE account_id = %(a)s",
    "events": "SELECT aggregate_type, event_type, seq, payload - '{order_id,client_order_id,account_id,fill_id,"
    "execution_id}'::text[] FROM shared.event_outbox WHERE payload->>'account_id' = %(a)s ORDER BY event_id",
}


def outcome(db: TestDatabase, account: str) -> dict[str, list[tuple[object, ...]]]:
    with db.connect() as conn:
        return {name: conn.execute(query, {"a": account}).fetchall() for name, query in OUTCOME.items()}


trades_with_times = st.lists(
    st.tuples(
        st.sampled_from(["buy", "sell"]),
        st.integers(min_value=1, max_value=40),
        st.decimals(min_value=Decimal("0.0001"), max_value=Decimal(900), places=4),
        st.integers(min_value=1, max_value=3),
    ),
    min_size=1,
    max_size=10,
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(trades_with_times)
def test_a_batch_is_exactly_its_fills_one_by_one(
    db: TestDatabase, security: int, trades: list[tuple[str, int, Decimal, int]]
) -> None:
    """record_fills writes what record_fill does fill by fill: orders, order events, fills, the position and the
    outbox's events, version for version (the set-based path against the one-call path, and both against the
    reference model)."""
    one_by_one, batched = new_account(db, "ONE"), new_account(db, "SET")
    at = datetime(2026, 11, 2, 14, 30, tzinfo=UTC)
    with tradedb.connect(db.url, settings=db.settings, max_size=2) as handle:
        plans: dict[str, list[dict[str, Any]]] = {one_by_one: [], batched: []}
        for account, planned in plans.items():
            for n, (side, quantity, price, parts) in enumerate(trades):
                placed = handle.execution.submit_order(
                    account_id=account, security_id=security, side=side, quantity=quantity
                )
                sizes = [quantity // parts] * (parts - 1)
                sizes.append(quantity - sum(sizes))
                for k, size in enumerate(s for s in sizes if s > 0):
                    when = at + timedelta(minutes=n, seconds=k)
                    planned.append(batch_fill(placed["order_id"], size, price, executed_at=when))
        for item in plans[one_by_one]:
            handle.execution.record_fill(**item)
        assert handle.execution.record_fills(plans[batched]).recorded == len(plans[batched])
    single, batch = outcome(db, one_by_one), outcome(db, batched)
    assert batch == single
    assert batch["positions"][0][:4] == reference(fills_of(db, batched))


def test_eight_writers_on_eight_accounts_and_one_shared_position(db: TestDatabase, security: int) -> None:
    """8 writers each fill an order of their own account and orders on one shared position, interleaved (single
    fills and small batches): every position ends exactly where its fills, replayed in fill order, put it."""
    shared = new_account(db, "SHARED")
    own = [new_account(db, f"W{i}") for i in range(8)]
    per_writer = 60
    with tradedb.connect(db.url, settings=db.settings, max_size=4) as handle:
        mine = [
            handle.execution.submit_order(account_id=a, security_id=security, side="buy", quantity=10_000)["order_id"]
            for a in own
        ]
        common = [
            handle.execution.submit_order(
                account_id=shared, security_id=security, side="buy" if i % 2 else "sell", quantity=10_000
            )["order_id"]
            for i in range(8)
        ]
    errors: list[BaseException] = []

    def writer(index: int) -> None:
        rng = random.Random(index)
        with tradedb.connect(db.url, settings=db.settings, max_size=1) as handle:
            for n in range(per_writer):
                try:
                    price = Decimal(rng.randint(9000, 11000)) / 100
                    if n % 10 == 9:
                        handle.execution.record_fills(
                            [batch_fill(common[index], 2, price), batch_fill(mine[index], 3, price)]
                        )
                    else:
                        handle.execution.record_fill(f"S-{index}-{n}", common[index], 1, price)
                        handle.execution.record_fill(f"M-{index}-{n}", mine[index], 1, price)
                except Exception as exc:
                    errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with db.connect() as conn:
        for account in [shared, *own]:
            fills = fills_of(db, account)
            stored = conn.execute(
                "SELECT quantity, avg_price, realized_pnl, total_commission, version FROM execution.positions"
                " WHERE account_id = %s",
                (account,),
            ).fetchone()
            assert stored is not None
            assert stored[:4] == reference(fills), account
            # version 1 at creation, one more per fill
            assert stored[4] == 1 + len(fills), account
    expected_shared = sum((-1 if i % 2 == 0 else 1) * (54 + 6 * 2) for i in range(8))
    assert reference(fills_of(db, shared))[0] == expected_shared
    with tradedb.connect(db.url, settings=db.settings) as handle:
        assert handle.execution.reconcile() == []


def fills_of(db: TestDatabase, account: str) -> list[tuple[str, Decimal, Decimal, Decimal]]:
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT side, quantity, price, commission FROM execution.fills WHERE account_id = %s ORDER BY fill_id",
            (account,),
        ).fetchall()
    return [(str(r[0]), Decimal(str(r[1])), Decimal(str(r[2])), Decimal(str(r[3]))) for r in rows]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(*LOTS)
def test_the_server_rounds_averages_as_the_reference_model(
    db: TestDatabase, old_qty: Decimal, old_avg: Decimal | None, add_qty: Decimal, add_price: Decimal
) -> None:
    with db.connect() as conn:
        row = conn.execute(
            "SELECT execution.fill_average(%s, %s, %s, %s)", (old_qty, old_avg, add_qty, add_price)
        ).fetchone()
    assert row is not None
    assert row[0] == base.average(old_qty, old_avg, add_qty, add_price)

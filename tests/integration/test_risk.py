"""Accounts, risk limits, post-trade checks, halts and risk events against a real database, through both APIs."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pandas as pd
import pytest

import tradedb
from tests.conftest import TestDatabase, run_cli
from tests.integration.facade import Api
from tests.unit.test_execution_base import reference
from tradedb import DuplicateError, NotFoundError, RiskLimitExceeded, ValidationError

SNAPSHOT = {
    "accounts": "SELECT * FROM execution.accounts ORDER BY account_id",
    "orders": "SELECT * FROM execution.orders ORDER BY order_id",
    "limits": "SELECT * FROM risk_management.risk_limits ORDER BY limit_id",
    "events": "SELECT * FROM risk_management.risk_events ORDER BY event_id",
    "state": "SELECT * FROM risk_management.account_risk ORDER BY account_id",
}


def snapshot(db: TestDatabase) -> dict[str, list[tuple[object, ...]]]:
    with db.connect() as conn:
        return {name: conn.execute(query).fetchall() for name, query in SNAPSHOT.items()}


@pytest.fixture(scope="module")
def securities(db: TestDatabase) -> list[int]:
    with db.connect() as conn:
        conn.execute("INSERT INTO shared.exchanges (mic, name) VALUES ('XNAS', 'Nasdaq')")
        rows = conn.execute(
            "INSERT INTO shared.securities (symbol, exchange_mic, asset_type, currency)"
            " SELECT 'RSK' || g, 'XNAS', 'equity', CASE WHEN g = 4 THEN 'EUR' ELSE 'USD' END"
            " FROM generate_series(1, 4) g ORDER BY g RETURNING security_id"
        ).fetchall()
        conn.commit()
    return [int(str(r[0])) for r in rows]


@pytest.fixture(params=["sync", "async"])
def api(request: pytest.FixtureRequest, db: TestDatabase) -> Iterator[Api]:
    handle = Api(str(request.param), db.url, db.settings)
    yield handle
    handle.close()


@pytest.fixture
def owner(db: TestDatabase) -> Iterator[tradedb.Database]:
    with tradedb.connect(db.url, settings=db.settings, max_size=2) as handle:
        yield handle


def new_account(owner: tradedb.Database, currency: str = "USD") -> str:
    account = f"R-{uuid.uuid4().hex[:10]}"
    owner.accounts.create(account, f"book {account}", base_currency=currency)
    return account


def new_security(owner: tradedb.Database, currency: str = "USD") -> int:
    """A security of its own for a test whose marks must not be another test's."""
    with owner.transaction() as conn:
        row = conn.execute(
            "INSERT INTO shared.securities (symbol, exchange_mic, asset_type, currency)"
            " VALUES (%s, 'XNAS', 'equity', %s) RETURNING security_id",
            (f"S{uuid.uuid4().hex[:8].upper()}", currency),
        ).fetchone()
    assert row is not None
    return int(row[0])


def buy_and_fill(owner: tradedb.Database, account: str, security: int, quantity: Any, price: Any) -> None:
    placed = owner.execution.submit_order(
        account_id=account, security_id=security, side="buy", quantity=quantity, order_type="limit", limit_price=price
    )
    owner.execution.record_fill(f"X-{uuid.uuid4().hex}", placed["order_id"], quantity, price)


def trade_at(owner: tradedb.Database, security: int, price: float, ts: datetime | None = None) -> None:
    row = {"ts": ts or datetime.now(UTC), "security_id": security, "price": price, "size": 1.0}
    owner.market_data.write_trades([row], source="test")


# --- accounts ---------------------------------------------------------------------------------------------


def test_accounts_are_created_listed_and_disabled(api: Api, db: TestDatabase, securities: list[int]) -> None:
    accounts = api.feature("accounts")
    name = f"AC-{uuid.uuid4().hex[:8]}"
    created = accounts.create(name, " Main book ", base_currency="EUR")
    assert (created["account_id"], created["name"], created["base_currency"], created["is_active"]) == (
        name,
        "Main book",
        "EUR",
        True,
    )
    assert accounts.get(name) == created
    assert name in [a["account_id"] for a in accounts.list()]
    # The seeded default_risk_limit became the account's notional limit.
    limits = api.feature("risk").limits(name)
    assert [(x["limit_type"], x["security_id"], x["limit_value"]) for x in limits] == [
        ("max_position_notional", None, Decimal(10000))
    ]
    assert accounts.disable(name)["is_active"] is False
    assert name not in [a["account_id"] for a in accounts.list(include_inactive=False)]
    with pytest.raises(ValidationError, match="not active"):
        api.feature("execution").submit_order(account_id=name, security_id=securities[0], side="buy", quantity=1)
    assert accounts.enable(name)["is_active"] is True
    with pytest.raises(DuplicateError, match=f"account '{name}' already exists"):
        accounts.create(name, "again")


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("bad id!", "x"), {}, "account_id must be"),
        (("", "x"), {}, "account_id must be"),
        (("OK-1", "  "), {}, "name must be"),
        (("OK-1", "x"), {"base_currency": "XYZ"}, "ISO 4217"),
        (("OK-1", "x"), {"base_currency": "usd"}, "ISO 4217"),
    ],
)
def test_bad_accounts_are_refused_and_nothing_is_written(
    db: TestDatabase, owner: tradedb.Database, args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    before = snapshot(db)
    with pytest.raises(ValidationError, match=message):
        owner.accounts.create(*args, **kwargs)
    assert snapshot(db) == before


def test_unknown_account_says_why(db: TestDatabase, owner: tradedb.Database, securities: list[int]) -> None:
    account = new_account(owner)
    with pytest.raises(NotFoundError, match="unknown account 'NOPE'"):
        owner.accounts.get("NOPE")
    unscoped = tradedb.connect(db.url, settings=db.settings, service="execution", max_size=1)
    with unscoped, pytest.raises(NotFoundError, match="no account scope is set"):
        unscoped.execution.submit_order(account_id=account, security_id=securities[0], side="buy", quantity=1)
    other = tradedb.connect(db.url, settings=db.settings, service="execution", account="ELSEWHERE", max_size=1)
    with other, pytest.raises(NotFoundError, match="outside this connection's account scope"):
        other.execution.submit_order(account_id=account, security_id=securities[0], side="buy", quantity=1)


# --- limits -----------------------------------------------------------------------------------------------


def test_limits_are_set_replaced_listed_and_removed(api: Api, db: TestDatabase, securities: list[int]) -> None:
    risk = api.feature("risk")
    account = _owner_account(db)
    per_security = risk.set_limit(account, "max_position_quantity", 500, security_id=securities[0])
    replaced = risk.set_limit(account, "max_position_quantity", "750.5", security_id=securities[0])
    assert replaced["limit_id"] == per_security["limit_id"] and replaced["limit_value"] == Decimal("750.5")
    loss = risk.set_limit(account, "max_daily_loss", 1000, halt_on_breach=True)
    assert loss["halt_on_breach"] is True
    assert {(x["limit_type"], x["security_id"]) for x in risk.limits(account)} == {
        ("max_position_notional", None),
        ("max_position_quantity", securities[0]),
        ("max_daily_loss", None),
    }
    # Setting a PnL limit starts measuring from now.
    state = risk.state(account)
    assert state is not None and state["pnl"] == 0 and state["halted_at"] is None
    assert risk.remove_limit(loss["limit_id"])["limit_type"] == "max_daily_loss"
    with pytest.raises(NotFoundError, match="unknown risk limit"):
        risk.remove_limit(loss["limit_id"])


def _owner_account(db: TestDatabase) -> str:
    with tradedb.connect(db.url, settings=db.settings, max_size=1) as handle:
        return new_account(handle)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        (("max_daily_loss", -5), {}, ValidationError, "limit_value must be > 0"),
        (("max_drawdown", 0), {}, ValidationError, "limit_value must be > 0"),
        (("max_daily_loss", "lots"), {}, ValidationError, "limit_value must be a number"),
        (("max_loss", 5), {}, ValidationError, "limit_type must be one of"),
        (("max_daily_loss", 5), {"security_id": 1}, ValidationError, "account-wide"),
        (("max_order_quantity", 5), {"security_id": 999999}, NotFoundError, "unknown security_id 999999"),
        (("max_order_quantity", 5), {"halt_on_breach": "yes"}, ValidationError, "halt_on_breach"),
    ],
)
def test_bad_limits_are_refused_and_nothing_is_written(
    db: TestDatabase,
    owner: tradedb.Database,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    account = new_account(owner)
    before = snapshot(db)
    with pytest.raises(error, match=message):
        owner.risk.set_limit(account, *args, **kwargs)
    with pytest.raises(NotFoundError, match="unknown account"):
        owner.risk.set_limit("NO-SUCH-ACCOUNT", "max_order_quantity", 5)
    assert snapshot(db) == before


# --- post-trade checks and halts --------------------------------------------------------------------------


def test_a_daily_loss_breach_halts_the_account_until_resumed(api: Api, db: TestDatabase, securities: list[int]) -> None:
    execution, risk = api.feature("execution"), api.feature("risk")
    with tradedb.connect(db.url, settings=db.settings, max_size=1) as owner:
        account, security = new_account(owner), new_security(owner)
    risk.set_limit(account, "max_daily_loss", 100, halt_on_breach=True)
    first = execution.submit_order(
        account_id=account, security_id=security, side="buy", quantity=10, order_type="limit", limit_price=100
    )
    execution.record_fill(f"X-{uuid.uuid4().hex}", first["order_id"], 10, 100)
    assert risk.state(account)["halted_at"] is None
    with tradedb.connect(db.url, settings=db.settings, max_size=1) as owner:
        trade_at(owner, security, 90.0)  # 10 x -10: a loss of 100, the limit itself, is within it
    within = risk.check(account)
    assert within.pnl == -100 and within.state.daily_loss == 100 and not within.breaches and not within.halted
    second = execution.submit_order(
        account_id=account, security_id=security, side="buy", quantity=2, order_type="limit", limit_price=85
    )
    with tradedb.connect(db.url, settings=db.settings, max_size=1) as owner:
        trade_at(owner, security, 85.0)
    execution.record_fill(f"X-{uuid.uuid4().hex}", second["order_id"], 2, 85)  # the check after this fill halts
    state = risk.state(account)
    assert state["halted_at"] is not None and "max_daily_loss" in state["halt_reason"]
    assert state["pnl"] == 12 * (85 - Decimal("97.5"))
    breach = risk.events(account, open_only=True)[0]
    assert (breach["event_type"], breach["severity"]) == ("limit_breach", "critical")
    assert breach["data"]["value"] == "150" and breach["data"]["limit_value"] == "100"
    # Halted: new risk is refused (and recorded), reducing a position passes, flipping it does not.
    with pytest.raises(RiskLimitExceeded, match=f"account {account} is halted") as info:
        execution.submit_order(account_id=account, security_id=security, side="buy", quantity=1)
    assert info.value.limit_type == "halt"
    with pytest.raises(RiskLimitExceeded, match="halted"):
        execution.submit_order(account_id=account, security_id=security, side="sell", quantity=13)
    with pytest.raises(RiskLimitExceeded, match="halted"):
        execution.submit_order(account_id=account, security_id=securities[0], side="sell", quantity=1)
    execution.submit_order(account_id=account, security_id=security, side="sell", quantity=12)
    assert risk.events(account)[0]["event_type"] == "order_blocked"
    # Another check does not report the open breach twice.
    assert risk.check(account).breaches == []
    assert len([e for e in risk.events(account) if e["event_type"] == "limit_breach"]) == 1
    resumed = risk.resume(account, by="alice", note="reviewed with the desk")
    assert resumed["halted_at"] is None
    assert risk.events(account)[0]["message"] == "resumed by alice: reviewed with the desk"
    execution.submit_order(account_id=account, security_id=security, side="buy", quantity=1)
    with pytest.raises(ValidationError, match="is not halted"):
        risk.resume(account, by="alice")
    # Resolving the breach while the account is still beyond the limit: the next check reports and halts again.
    risk.resolve(breach["event_id"], by="alice", note="loss accepted")
    again = risk.check(account)
    assert [b.limit_type for b in again.breaches] == ["max_daily_loss"] and again.halted


def test_a_drawdown_breach_is_measured_from_the_high_water_mark(owner: tradedb.Database) -> None:
    security = new_security(owner)
    account = new_account(owner)
    owner.risk.set_limit(account, "max_drawdown", 150)
    buy_and_fill(owner, account, security, 10, 100)
    marks = [100, 120, 130, 118, 125, 116, 114.5, 140]
    checks = [owner.risk.check(account, marks={security: m}) for m in marks]
    # The reference: PnL per mark, its running peak (pandas), the first mark whose fall exceeds the limit.
    pnl = pd.Series([10 * (m - 100) for m in marks], dtype="float64")
    drawdown = pnl.cummax() - pnl
    assert [float(c.state.drawdown) for c in checks] == drawdown.tolist()
    assert [float(c.state.high_water_pnl) for c in checks] == pnl.cummax().tolist()
    breached = [i for i, c in enumerate(checks) if c.breaches]
    assert breached == [int((drawdown > 150).idxmax())] == [6]
    assert checks[6].breaches[0].severity == "high" and not checks[6].halted  # the limit does not halt
    assert owner.risk.events(account, open_only=True)[0]["data"]["value"] == "155"


def test_the_check_values_positions_as_an_independent_book_does(owner: tradedb.Database, securities: list[int]) -> None:
    """Random fills over three securities, marked at random prices: PnL equals a reference replay's."""
    rng = random.Random(7)
    account = new_account(owner)
    owner.risk.set_limit(account, "max_daily_loss", 10**9)
    owner.risk.set_limit(account, "max_position_notional", 10**12)  # above the default limit of a new account
    book: dict[int, list[tuple[str, Decimal, Decimal, Decimal]]] = {s: [] for s in securities[:3]}
    for _ in range(60):
        security = rng.choice(securities[:3])
        side = rng.choice(["buy", "sell"])
        quantity, price = Decimal(rng.randint(1, 50)), Decimal(rng.randint(9000, 11000)) / 100
        commission = Decimal(rng.randint(0, 300)) / 100
        placed = owner.execution.submit_order(
            account_id=account, security_id=security, side=side, quantity=quantity, order_type="limit",
            limit_price=price,
        )  # fmt: skip
        owner.execution.record_fill(f"X-{uuid.uuid4().hex}", placed["order_id"], quantity, price, commission=commission)
        book[security].append((side, quantity, price, commission))
    marks = {s: Decimal(rng.randint(9000, 11000)) / 100 for s in book}
    check = owner.risk.check(account, marks=marks)
    expected = Decimal(0)
    for security, fills in book.items():
        quantity, avg, realized, _ = reference(fills)
        expected += realized + (quantity * (marks[security] - avg) if quantity and avg is not None else 0)
    assert abs(check.pnl - expected) < Decimal("1e-6")  # the reference does not round averages to 10 places
    by_security = {p.security_id: p for p in check.positions}
    exposure = [by_security[s].market_value for s in book]
    assert check.exposure["gross"] == sum(abs(v) for v in exposure if v is not None)
    assert check.exposure["net"] == sum(v for v in exposure if v is not None)


def test_positions_without_a_price_or_in_another_currency_are_not_counted(owner: tradedb.Database) -> None:
    account = new_account(owner)
    no_price, foreign = new_security(owner), new_security(owner, "EUR")
    buy_and_fill(owner, account, no_price, 5, 10)
    buy_and_fill(owner, account, foreign, 5, 10)
    trade_at(owner, foreign, 12.0)
    check = owner.risk.check(account)
    assert sorted(check.unpriced) == sorted([no_price, foreign])
    reasons = {p.security_id: p.unpriced for p in check.positions}
    assert reasons[no_price] == "no price" and "EUR" in str(reasons[foreign])
    assert check.pnl == 0 and check.exposure["gross"] == 0


def test_the_mark_is_the_newest_of_quote_trade_and_bar(owner: tradedb.Database) -> None:
    account, security = new_account(owner), new_security(owner)
    buy_and_fill(owner, account, security, 1, 100)
    base = datetime(2026, 11, 27, 15, tzinfo=UTC)
    owner.market_data.write_bars(
        [{"ts": base, "security_id": security, "open": 101, "high": 101, "low": 101, "close": 101.0, "volume": 1}],
        source="test",
        timeframe="1m",
    )
    assert owner.risk.check(account).positions[0].mark == Decimal("101.0")
    trade_at(owner, security, 102.0, base.replace(minute=5))
    assert owner.risk.check(account).positions[0].mark == Decimal("102.0")
    quote = {"ts": base.replace(minute=10), "security_id": security, "bid": 103.0, "ask": 104.0}
    owner.market_data.write_quotes([quote], source="test")
    assert owner.risk.check(account).positions[0].mark == Decimal("103.5")


def test_the_execution_service_checks_and_halts_under_its_own_role(db: TestDatabase, owner: tradedb.Database) -> None:
    account, security = new_account(owner), new_security(owner)
    owner.risk.set_limit(account, "max_daily_loss", 10, halt_on_breach=True)
    with tradedb.connect(db.url, settings=db.settings, service="execution", account=account, max_size=1) as svc:
        placed = svc.execution.submit_order(
            account_id=account, security_id=security, side="buy", quantity=10, order_type="limit", limit_price=200
        )
        # A fill far above the mark: the check that follows it (as the execution role) breaches and halts.
        trade_at(owner, security, 150.0)
        svc.execution.record_fills(
            [{"execution_id": f"X-{uuid.uuid4().hex}", "order_id": placed["order_id"], "quantity": 10, "price": 200}]
        )
        state = svc.risk.state(account)
        assert state is not None and state["halted_at"] is not None
        # A blocked order's risk event is written by the execution role too; a reducing order passes the halt but
        # not the other limits.
        owner.risk.set_limit(account, "max_order_quantity", 5)
        with pytest.raises(RiskLimitExceeded, match="max_order_quantity"):
            svc.execution.submit_order(account_id=account, security_id=security, side="sell", quantity=6)
        kinds = [e["event_type"] for e in svc.risk.events(account)]
    assert kinds[:2] == ["order_blocked", "limit_breach"]


# --- risk events ------------------------------------------------------------------------------------------


def test_risk_events_are_acknowledged_and_resolved_once(api: Api, db: TestDatabase) -> None:
    risk = api.feature("risk")
    account = _owner_account(db)
    risk.halt(account, reason="fat finger on the desk", by="bob")
    halted = risk.events(account)[0]
    assert (halted["event_type"], halted["severity"], halted["message"]) == (
        "halt",
        "critical",
        "halted by bob: fat finger on the desk",
    )
    with pytest.raises(ValidationError, match="already halted"):
        risk.halt(account, reason="again", by="bob")
    seen = risk.acknowledge(halted["event_id"], by="carol", note="looking")
    assert (seen["acknowledged_by"], seen["note"], seen["resolved_at"]) == ("carol", "looking", None)
    with pytest.raises(ValidationError, match=r"already acknowledged .* by carol"):
        risk.acknowledge(halted["event_id"], by="dave")
    done = risk.resolve(halted["event_id"], by="dave", note="limits fixed")
    assert (done["resolved_by"], done["acknowledged_by"], done["note"]) == ("dave", "carol", "limits fixed")
    assert done["resolved_at"] >= done["ts"]
    with pytest.raises(ValidationError, match="already resolved"):
        risk.resolve(halted["event_id"], by="dave")
    assert risk.events(account, open_only=True) == []
    with pytest.raises(NotFoundError, match="unknown risk event"):
        risk.acknowledge(10**12, by="dave")
    with pytest.raises(ValidationError, match="by must name who"):
        risk.resolve(halted["event_id"], by=" ")


# --- CLI --------------------------------------------------------------------------------------------------


def test_cli_manages_accounts_limits_and_events(db: TestDatabase) -> None:
    account = f"CLI-{uuid.uuid4().hex[:8]}"
    env = db.env()
    created = run_cli("accounts", "create", account, "--name", "Desk book", "--currency", "GBP", env=env)
    assert created.returncode == 0, created.stderr
    listed = run_cli("accounts", "list", env=env)
    assert account in listed.stdout and "GBP" in listed.stdout
    bad = run_cli("accounts", "create", "X1", "--name", "n", "--currency", "ABC", env=env)
    assert bad.returncode != 0 and "ISO 4217" in bad.stderr and "Traceback" not in bad.stderr
    limit = run_cli("risk", "set-limit", account, "max_drawdown", "5000", "--halt", env=env)
    assert limit.returncode == 0, limit.stderr
    negative = run_cli("risk", "set-limit", account, "max_drawdown", "--", "-1", env=env)
    assert negative.returncode != 0 and "limit_value must be > 0" in negative.stderr
    limits = run_cli("risk", "limits", "--account", account, env=env)
    assert "max_drawdown" in limits.stdout and "5000" in limits.stdout
    check = run_cli("risk", "check", account, "--json", env=env)
    assert check.returncode == 0, check.stderr
    assert '"pnl": "0"' in check.stdout
    assert run_cli("risk", "halt", account, "--reason", "drill", "--by", "ops", env=env).returncode == 0
    events = run_cli("risk", "events", "--account", account, env=env)
    assert "halted by ops: drill" in events.stdout
    event_id = next(line.split("│")[1].strip() for line in events.stdout.splitlines() if "drill" in line)
    assert run_cli("risk", "ack", event_id, "--by", "ops", env=env).returncode == 0
    assert run_cli("risk", "resolve", event_id, "--by", "ops", "--note", "drill over", env=env).returncode == 0
    assert run_cli("risk", "resume", account, "--by", "ops", env=env).returncode == 0
    assert run_cli("accounts", "disable", account, env=env).returncode == 0
    line = next(x for x in run_cli("accounts", "list", env=env).stdout.splitlines() if account in x)
    assert line.split("│")[4].strip() == "no"

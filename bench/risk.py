"""Benchmark: what post-trade risk costs the fill path, and how long a mark-to-market takes.

Single-writer ``record_fill`` rates on one database, rounds interleaved:
- ``unguarded``: an account without PnL limits, the maintenance-mode triggers disabled (the fill path before
  migration 0017, but for the limits lookup the fill statement now makes);
- ``guarded``: the same with the triggers (the default: one lookup of ``maintenance_mode`` per statement);
- ``checked``: an account with ``max_daily_loss``: every fill is followed by its post-trade check.
Then ``db.analytics.mark_to_market`` of ACCOUNTS accounts with POSITIONS positions each (marks from quotes), and
``daily_performance`` of an account with a year of fills and closes. Figures are medians of ROUNDS rounds.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg

import tradedb
from _server import bench_database, bench_server

DURATION = 3.0
ROUNDS = 3
ACCOUNTS = 100
POSITIONS = 10
GUARDED = ("execution.orders", "execution.fills", "execution.order_events", "execution.positions")


def _rate(fill: Callable[[], object]) -> float:
    done, deadline = 0, time.monotonic() + DURATION
    started = time.monotonic()
    while time.monotonic() < deadline:
        fill()
        done += 1
    return done / (time.monotonic() - started)


def _triggers(url: str, enabled: bool) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for table in GUARDED:
            conn.execute(f"ALTER TABLE {table} {'ENABLE' if enabled else 'DISABLE'} TRIGGER maintenance_mode")


def _fill_rates(db: tradedb.Database, url: str, securities: list[int]) -> None:
    orders = {}
    for name, limited in (("plain", False), ("checked", True)):
        db.accounts.create(name, name, capital=10**9)
        db.risk.set_limit(name, "max_position_notional", 10**15)
        if limited:
            db.risk.set_limit(name, "max_daily_loss", 10**12, halt_on_breach=True)
        placed = db.execution.submit_order(
            account_id=name, security_id=securities[0], side="buy", quantity=10**12, reference_price=1
        )
        orders[name] = placed["order_id"]

    def fill(account: str) -> Callable[[], object]:
        return lambda: db.execution.record_fill(uuid.uuid4().hex, orders[account], 1, Decimal("100.25"))

    rates: dict[str, list[float]] = {}
    for _ in range(ROUNDS):
        _triggers(url, False)
        rates.setdefault("unguarded", []).append(_rate(fill("plain")))
        _triggers(url, True)
        rates.setdefault("guarded", []).append(_rate(fill("plain")))
        rates.setdefault("checked", []).append(_rate(fill("checked")))
    median = {k: statistics.median(v) for k, v in rates.items()}
    print("record_fill, one writer (fills/s; ratio to unguarded in the same run):")
    for name, value in median.items():
        print(f"  {name:<10} {value:8.0f}  {value / median['unguarded']:5.2f}x")


def _mark_to_market(db: tradedb.Database, securities: list[int]) -> None:
    for n in range(ACCOUNTS):
        account = f"MTM-{n:03d}"
        db.accounts.create(account, account)
        db.risk.set_limit(account, "max_position_notional", 10**15)
        orders = [
            db.execution.submit_order(account_id=account, security_id=s, side="buy", quantity=10, reference_price=100)
            for s in securities
        ]
        db.execution.record_fills(
            {"execution_id": f"{account}-{o['order_id']}", "order_id": o["order_id"], "quantity": 10, "price": 100}
            for o in orders
        )
    timings = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        checks = db.analytics.mark_to_market()
        timings.append(time.perf_counter() - started)
    took = statistics.median(timings)
    print(
        f"mark_to_market: {len(checks)} accounts x {POSITIONS} positions in {took * 1000:.0f} ms "
        f"({took / len(checks) * 1000:.2f} ms an account: check, risk state, snapshot)"
    )


def _performance(db: tradedb.Database, securities: list[int], now: datetime) -> None:
    account = "PERF"
    db.accounts.create(account, account, capital=10**7)
    db.risk.set_limit(account, "max_position_notional", 10**15)
    start = (now - timedelta(days=365)).replace(hour=0, minute=0, second=0, microsecond=0)
    bars = []
    for day in range(365):
        price = 100.0 + day % 7
        bars += [
            {"ts": start + timedelta(days=day), "security_id": s, "open": price, "high": price, "low": price,
             "close": price, "volume": 1.0}
            for s in securities
        ]  # fmt: skip
    db.market_data.write_bars(bars, source="bench", timeframe="1d")
    fills = []
    for day in range(0, 365, 2):
        placed = db.execution.submit_order(
            account_id=account,
            security_id=securities[day % POSITIONS],
            side="buy" if day % 4 == 0 else "sell",
            quantity=5,
            reference_price=100,
        )
        executed = start + timedelta(days=day, hours=15)
        fills.append(
            {"execution_id": f"P-{day}", "order_id": placed["order_id"], "quantity": 5, "price": 100 + day % 5}
            | {"executed_at": executed}
        )
    db.execution.record_fills(fills)
    timings = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        days = db.analytics.daily_performance(account)
        timings.append(time.perf_counter() - started)
    print(
        f"daily_performance: {len(days)} days, {len(fills)} fills over {POSITIONS} securities in "
        f"{statistics.median(timings) * 1000:.0f} ms (replay, closes, store)"
    )


def main() -> None:
    with (
        bench_server() as admin,
        bench_database(admin, "tdbbench_risk") as (url, settings),
        tradedb.connect(url, settings=settings, min_size=1, max_size=2) as db,
    ):
        securities = [db.securities.add(f"R{n:03d}", exchange="XNAS") for n in range(POSITIONS)]
        now = datetime.now(UTC)
        db.market_data.write_quotes(
            [{"ts": now, "security_id": s, "bid": 99.5, "ask": 100.5} for s in securities], source="bench"
        )
        _fill_rates(db, url, securities)
        _mark_to_market(db, securities)
        _performance(db, securities, now)


if __name__ == "__main__":
    main()

"""Benchmark: events, every figure against a baseline measured in the same run.

1. ``record_fill`` with the outbox on (two events per fill, in the fill's own statement) against the outbox off.
   Goal: overhead at most 10 %.
2. Relay throughput (claim, pipelined XADD, mark delivered, one transaction per batch) against a raw pipelined
   XADD loop of the same entries into the same Redis. Goal: at least 0.8x.
3. Commit-to-handler latency, p50 and p99: an event per transaction every 2 ms, the relay running, a consumer
   group handler stamping arrival. With Redis, and without it (PostgreSQL streams, NOTIFY). Goal: p50 < 5 ms.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import tradedb
from _server import bench_database, bench_server
from tradedb.events import Event
from tradedb.events.envelope import redis_fields, stream_key
from tradedb.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.redis_server import RedisServer  # a real redis-server on a free port

ROUNDS = 3
FILL_ROUNDS = 9  # interleaved on/off: the machine's drift hits both alike
FILL_SECONDS = 1.5
RELAY_EVENTS = 100_000
LATENCY_EVENTS = 1000
DBNAME = "tdbbench_events"


def settings_for(base: Settings, **overrides: Any) -> Settings:
    return Settings(_env_file=None, **{**base.model_dump(), **overrides})


def fill_rate(db: tradedb.Database, account: str, security: int) -> float:
    order = db.execution.submit_order(account_id=account, security_id=security, side="buy", quantity=10**9)
    n, deadline = 0, time.perf_counter() + FILL_SECONDS
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        db.execution.record_fill(uuid.uuid4().hex, order["order_id"], 1, "100.25")
        n += 1
    return n / (time.perf_counter() - started)


def market(url: str, settings: Settings) -> tuple[str, int]:
    with tradedb.connect(url, settings=settings) as db, db.transaction() as conn:
        conn.execute("INSERT INTO shared.exchanges (mic, name) VALUES ('XNAS', 'Nasdaq') ON CONFLICT DO NOTHING")
        row = conn.execute(
            "INSERT INTO shared.securities (symbol, exchange_mic, asset_type) VALUES ('EVB', 'XNAS', 'equity')"
            " RETURNING security_id"
        ).fetchone()
        conn.execute("INSERT INTO execution.accounts (account_id, name) VALUES ('BENCH', 'bench')")
    assert row is not None
    return "BENCH", int(row[0])


def bench_fills(url: str, settings: Settings) -> None:
    account, security = market(url, settings)
    rates: dict[bool, list[float]] = {True: [], False: []}
    with (
        tradedb.connect(url, settings=settings_for(settings, events_outbox=True), max_size=1) as on,
        tradedb.connect(url, settings=settings_for(settings, events_outbox=False), max_size=1) as off,
    ):
        fill_rate(off, account, security)  # warm up
        for _ in range(FILL_ROUNDS):
            for outbox, db in ((False, off), (True, on)):
                rates[outbox].append(fill_rate(db, account, security))
    with_outbox, without = statistics.median(rates[True]), statistics.median(rates[False])
    overhead = 1 - with_outbox / without
    print(f"record_fill, outbox off: {without:,.0f} fills/s; on: {with_outbox:,.0f} fills/s")
    print(f"  outbox overhead: {overhead:.1%} (goal <= 10 %)")


def emit_payloads(db: tradedb.Database, n: int) -> None:
    for start in range(0, n, 1000):
        with db.transaction() as conn:
            for i in range(start, min(n, start + 1000)):
                payload = {"order_id": i, "status": "partially_filled", "fill_quantity": "1", "price": "100.25"}
                db.events.emit("desk", i % 500, "desk.fill", payload, conn=conn)


def bench_relay(url: str, settings: Settings, redis: RedisServer) -> None:
    client = redis.client()
    relay_rates, raw_rates = [], []
    with tradedb.connect(url, settings=settings_for(settings, redis_url=redis.url)) as db:
        db.events.relay(cache=False).run(until_idle=True)  # what the fills wrote
        for _ in range(ROUNDS):
            emit_payloads(db, RELAY_EVENTS)
            rows = db.fetch_all(
                "SELECT * FROM shared.event_outbox WHERE delivered_at IS NULL ORDER BY event_id", readonly=False
            )
            entries = [(stream_key(r["aggregate_type"]), redis_fields(r)) for r in rows]
            client.delete(stream_key("desk"), "bench:raw")
            started = time.perf_counter()
            for i in range(0, len(entries), 1000):
                pipe = client.pipeline(transaction=False)
                for _, fields in entries[i : i + 1000]:
                    pipe.xadd("bench:raw", fields, maxlen=settings.events_maxlen, approximate=True)
                pipe.execute()
            raw_rates.append(len(entries) / (time.perf_counter() - started))
            started = time.perf_counter()
            stats = db.events.relay(batch=1000, cache=False).run(until_idle=True)
            relay_rates.append(stats.delivered / (time.perf_counter() - started))
            assert stats.delivered == RELAY_EVENTS
    relay, raw = statistics.median(relay_rates), statistics.median(raw_rates)
    print(f"relay: {relay:,.0f} events/s; raw pipelined XADD of the same entries: {raw:,.0f} events/s")
    print(f"  relay / raw: {relay / raw:.2f}x (goal >= 0.8x)")


def bench_latency(url: str, settings: Settings, backend: str) -> None:
    arrived: dict[int, float] = {}
    committed: dict[int, float] = {}
    with tradedb.connect(url, settings=settings) as db:
        relay = db.events.relay(poll=1.0) if backend == "redis" else None
        relay_thread = threading.Thread(target=relay.run) if relay else None
        if relay_thread:
            relay_thread.start()

        def handler(event: Event, conn: Any) -> None:
            arrived[event.payload["n"]] = time.perf_counter()

        group = f"latency-{uuid.uuid4().hex[:6]}"
        db.events.emit("latency", 0, "latency.probe", {"n": -1})  # makes the stream known
        consumer = db.events.consumer(group, handler, "latency", inbox=False, start="latest", block=1.0)
        consumer_thread = threading.Thread(target=consumer.run)
        consumer_thread.start()
        time.sleep(0.5)
        for n in range(LATENCY_EVENTS):
            db.events.emit("latency", n % 10, "latency.probe", {"n": n})
            committed[n] = time.perf_counter()
            time.sleep(0.002)
        deadline = time.monotonic() + 30
        while len([n for n in committed if n in arrived]) < LATENCY_EVENTS and time.monotonic() < deadline:
            time.sleep(0.05)
        consumer.stop()
        consumer_thread.join()
        if relay and relay_thread:
            relay.stop()
            relay_thread.join()
    delays = sorted((arrived[n] - committed[n]) * 1000 for n in committed if n in arrived)
    p50, p99 = delays[len(delays) // 2], delays[int(len(delays) * 0.99)]
    print(
        f"commit to handler ({backend}): p50 {p50:.2f} ms, p99 {p99:.2f} ms over {len(delays)} events (goal p50 < 5 ms)"
    )


def main() -> None:
    with bench_server() as admin, bench_database(admin, DBNAME) as (url, settings):
        bench_fills(url, settings)
        redis = RedisServer().start()
        try:
            bench_relay(url, settings, redis)
            bench_latency(url, settings_for(settings, redis_url=redis.url), "redis")
        finally:
            redis.close()
        bench_latency(url, settings, "postgres")


if __name__ == "__main__":
    main()

"""Events against a real PostgreSQL and a real Redis (one ``redis-server`` per test): the outbox written with each
change, the relay, consumers with an inbox and dead letters, PostgreSQL streams without Redis, the cache, faults."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import psycopg
import pytest

import tradedb
from tests.conftest import TestDatabase, make_settings, run_cli
from tests.redis_server import RedisServer
from tradedb import EventsUnavailable, Overfill, UnknownGroup, UnknownStream, ValidationError
from tradedb.events import Event
from tradedb.events.envelope import dead_key, stream_key


@pytest.fixture
def fresh(fresh_db: TestDatabase) -> TestDatabase:
    """A database of the test's own: the outbox, streams and groups start empty."""
    return fresh_db


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.close()


def connect(db: TestDatabase, **overrides: Any) -> tradedb.Database:
    settings = make_settings(db.server_url, db.name, **overrides)
    return tradedb.connect(db.url, settings=settings)


def with_redis(db: TestDatabase, server: RedisServer, **overrides: Any) -> tradedb.Database:
    return connect(db, redis_url=server.url, **overrides)


def setup_market(db: TestDatabase) -> tuple[str, int]:
    account = f"ACC-{uuid.uuid4().hex[:8]}"
    with db.connect() as conn:
        conn.execute("INSERT INTO shared.exchanges (mic, name) VALUES ('XNAS', 'Nasdaq') ON CONFLICT DO NOTHING")
        row = conn.execute(
            "INSERT INTO shared.securities (symbol, exchange_mic, asset_type) VALUES (%s, 'XNAS', 'equity')"
            " RETURNING security_id",
            (f"S{uuid.uuid4().hex[:6].upper()}",),
        ).fetchone()
        conn.execute("INSERT INTO execution.accounts (account_id, name) VALUES (%s, %s)", (account, account))
        conn.commit()
    assert row is not None
    return account, int(str(row[0]))


def outbox(db: TestDatabase) -> list[dict[str, Any]]:
    with db.connect() as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute("SELECT * FROM shared.event_outbox ORDER BY event_id")
        return cur.fetchall()


def emit_many(database: tradedb.Database, n: int, *, aggregates: int = 50, per_tx: int = 100) -> None:
    for start in range(0, n, per_tx):
        with database.transaction() as conn:
            for i in range(start, min(n, start + per_tx)):
                database.events.emit("desk", i % aggregates + 1, "desk.test", {"i": i}, conn=conn)


def redis_events(server: RedisServer, stream: str = "desk") -> list[dict[str, str]]:
    entries: list[Any] = server.client().xrange(stream_key(stream))  # type: ignore[assignment]
    return [fields for _, fields in entries]


# --- the outbox ---------------------------------------------------------------------------------------------


def test_an_order_and_its_fill_write_their_events_in_their_transactions(fresh: TestDatabase) -> None:
    account, security = setup_market(fresh)
    with connect(fresh) as db:
        order = db.execution.submit_order(account_id=account, security_id=security, side="buy", quantity=10)
        db.execution.transition(order["order_id"], "submitted")
        db.execution.record_fill("x-1", order["order_id"], 4, "101.5", commission="0.25")
        before = outbox(fresh)
        with pytest.raises(Overfill):
            db.execution.record_fill("x-2", order["order_id"], 7, "101")
    assert outbox(fresh) == before, "a failed fill writes no event"
    order_events = [e for e in before if e["aggregate_type"] == "order"]
    assert [(e["event_type"], e["seq"]) for e in order_events] == [
        ("order.created", 1),
        ("order.submitted", 2),
        ("fill.recorded", 3),
    ]
    fill = order_events[2]["payload"]
    assert Decimal(fill["fill_quantity"]) == 4
    assert Decimal(fill["fill_price"]) == Decimal("101.5")
    assert fill["status"] == "partially_filled" and fill["from_status"] == "submitted"
    (position,) = [e for e in before if e["aggregate_type"] == "position"]
    assert position["aggregate_id"] == f"{account}:{security}" and position["seq"] == 1
    assert Decimal(position["payload"]["quantity"]) == 4
    assert Decimal(position["payload"]["avg_price"]) == Decimal("101.5")
    assert all(e["delivered_at"] is None for e in before)


def test_with_the_outbox_off_nothing_is_written(fresh: TestDatabase) -> None:
    account, security = setup_market(fresh)
    with connect(fresh, events_outbox=False) as db:
        order = db.execution.submit_order(account_id=account, security_id=security, side="buy", quantity=1)
        db.execution.record_fill("x-1", order["order_id"], 1, "10")
    assert outbox(fresh) == []


def test_a_market_data_batch_is_one_event(fresh: TestDatabase) -> None:
    t0 = datetime(2026, 11, 2, 14, 30, tzinfo=UTC)
    rows = [
        {"ts": t0 + timedelta(seconds=i), "symbol": sym, "bid": 10.0 + i, "ask": 10.5 + i, "bid_size": 1.0,
         "ask_size": 2.0}
        for i in range(50)
        for sym in ("EVA", "EVB")
    ]  # fmt: skip
    with connect(fresh) as db:
        db.market_data.write_quotes(rows, source="test", create_securities=True)
        ids = db.market_data.security_ids(["EVA", "EVB"])
    (event,) = outbox(fresh)
    assert (event["aggregate_type"], event["aggregate_id"], event["event_type"]) == (
        "market_data",
        "quotes",
        "market_data.batch_committed",
    )
    payload = event["payload"]
    assert payload["rows"] == 100 and payload["table"] == "quotes" and payload["source"] == "test"
    assert payload["security_ids"] == sorted(ids.values())
    assert datetime.fromisoformat(payload["first_ts"]) == t0
    assert datetime.fromisoformat(payload["last_ts"]) == t0 + timedelta(seconds=49)


def test_sequence_numbers_have_no_gaps_under_concurrency(fresh: TestDatabase) -> None:
    """Eight writers emit to the same five aggregates at once, some transactions roll back: each aggregate's
    committed events are numbered 1..n, and their ids follow their numbers."""
    with connect(fresh) as db:

        def writer(k: int) -> None:
            for i in range(40):
                try:
                    with db.transaction() as conn:
                        db.events.emit("desk", i % 5 + 1, "desk.test", {"writer": k, "i": i}, conn=conn)
                        if i % 7 == 0:
                            raise RuntimeError("roll back")
                except RuntimeError:
                    pass

        threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    events = outbox(fresh)
    assert len(events) == 8 * sum(1 for i in range(40) if i % 7)
    for aggregate in {e["aggregate_id"] for e in events}:
        mine = [e for e in events if e["aggregate_id"] == aggregate]  # in event_id order
        assert [e["seq"] for e in mine] == list(range(1, len(mine) + 1))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("desk", 1, "desk.test", {"x": float("nan")}), "not JSON"),
        (("desk", 1, "desk.test", {"x": object()}), "not JSON"),
        (("desk", 1, "desk.test", ["not", "an", "object"]), "mapping"),
        (("desk", 1, "desk.test", {"x": "y" * 70_000}), "bytes"),
        (("Order!", 1, "desk.test", {}), "stream"),
        (("order", 1, "order.forged", {}), "tradedb writes itself"),
        (("desk", "", "desk.test", {}), "aggregate_id"),
        (("desk", 1, "Bad Type", {}), "event type"),
    ],
)
def test_a_malformed_event_is_refused_and_nothing_is_written(
    fresh: TestDatabase, args: tuple[Any, ...], message: str
) -> None:
    with connect(fresh) as db, pytest.raises(ValidationError, match=message):
        db.events.emit(*args)
    assert outbox(fresh) == []


# --- the relay to Redis -------------------------------------------------------------------------------------


def test_the_relay_publishes_in_order_and_marks_delivered(fresh: TestDatabase, redis_server: RedisServer) -> None:
    with with_redis(fresh, redis_server) as db:
        emit_many(db, 2500, aggregates=7)
        stats = db.events.relay(batch=400).run(until_idle=True)
    assert stats.delivered == 2500
    entries = redis_events(redis_server)
    assert [int(f["event_id"]) for f in entries] == [e["event_id"] for e in outbox(fresh)]
    for aggregate in range(1, 8):
        seqs = [int(f["seq"]) for f in entries if f["aggregate_id"] == str(aggregate)]
        assert seqs == list(range(1, len(seqs) + 1))
    assert all(e["delivered_at"] is not None for e in outbox(fresh))


def test_two_relays_share_the_work_and_keep_each_aggregates_order(
    fresh: TestDatabase, redis_server: RedisServer
) -> None:
    with with_redis(fresh, redis_server) as db:
        emit_many(db, 6000, aggregates=300)
        relays = [db.events.relay(batch=50, poll=0.05) for _ in range(3)]
        threads = [threading.Thread(target=r.run, kwargs={"until_idle": True}) for r in relays]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert db.events.relay().run(until_idle=True).delivered == 0
    entries = redis_events(redis_server)
    assert sorted(int(f["event_id"]) for f in entries) == [e["event_id"] for e in outbox(fresh)]
    assert sum(r.stats.delivered for r in relays) == 6000
    assert sum(1 for r in relays if r.stats.delivered) >= 2, "the relays shared the claims"
    for aggregate in map(str, range(1, 301)):
        seqs = [int(f["seq"]) for f in entries if f["aggregate_id"] == aggregate]
        assert seqs == list(range(1, 21))


def test_redis_refusing_the_password_is_a_typed_error_without_the_password(fresh: TestDatabase) -> None:
    server = RedisServer(password="s3cret-pw").start()
    try:
        wrong = server.url.replace("s3cret-pw", "wrong-pw")
        with connect(fresh, redis_url=wrong) as db:
            db.events.emit("desk", 1, "desk.test", {})
            with pytest.raises(EventsUnavailable, match="refused the credentials") as caught:
                db.events.relay()
            assert "wrong-pw" not in caught.value.message and "***" in caught.value.message
        assert outbox(fresh)[0]["delivered_at"] is None, "nothing delivered, nothing lost"
        with connect(fresh, redis_url=server.url) as db:
            assert db.events.relay().run(until_idle=True).delivered == 1
    finally:
        server.close()


def test_rediss_tls_with_a_password_relays_and_consumes(fresh: TestDatabase) -> None:
    """rediss:// against a Redis that speaks only TLS (certificate checked against the test CA), password masked."""
    server = RedisServer(password="tls-s3cret", tls=True).start()
    try:
        assert server.url.startswith("rediss://")
        with connect(fresh, redis_url=server.url) as db:
            emit_many(db, 50)
            assert db.events.relay().run(until_idle=True).delivered == 50
            seen: list[int] = []
            db.events.consume("g", lambda e, c: seen.append(e.event_id), "desk", until_idle=True, block=0.1)
            status = db.events.status()
        assert seen == [e["event_id"] for e in outbox(fresh)]
        assert status["redis"].startswith("rediss://:***@localhost") and "tls-s3cret" not in str(status)
        plain = server.url.replace("rediss://", "redis://").split("?")[0]
        with connect(fresh, redis_url=plain) as db, pytest.raises(EventsUnavailable, match="cannot reach Redis"):
            db.events.relay()
    finally:
        server.close()


# --- consumers ----------------------------------------------------------------------------------------------


def make_sink(db: TestDatabase) -> None:
    with db.connect() as conn:
        conn.execute("CREATE TABLE public.sink (event_id bigint, aggregate_id text, seq bigint)")
        conn.commit()


def sink(db: TestDatabase) -> list[tuple[Any, ...]]:
    with db.connect() as conn:
        return conn.execute("SELECT event_id, aggregate_id, seq FROM public.sink ORDER BY event_id").fetchall()


def writing_handler(event: Event, conn: psycopg.Connection[Any] | None) -> None:
    assert conn is not None
    conn.execute("INSERT INTO public.sink VALUES (%s, %s, %s)", (event.event_id, event.aggregate_id, event.seq))


@pytest.mark.parametrize("backend", ["redis", "postgres"])
def test_an_inbox_handler_writes_each_event_once_though_it_is_delivered_twice(
    fresh: TestDatabase, redis_server: RedisServer, backend: str
) -> None:
    make_sink(fresh)
    with with_redis(fresh, redis_server, events_backend=backend) as db:
        emit_many(db, 300, aggregates=4)
        db.events.relay().run(until_idle=True)
        if backend == "redis":
            # Deliver everything a second time, as a relay killed before its commit would.
            with fresh.connect() as conn:
                conn.execute("UPDATE shared.event_outbox SET delivered_at = NULL")
                conn.commit()
            db.events.relay().run(until_idle=True)
            assert redis_server.client().xlen(stream_key("desk")) == 600
        stats = db.events.consume("risk", writing_handler, ["desk"], until_idle=True, block=0.2)
    assert stats.handled == 300
    assert stats.duplicates == (300 if backend == "redis" else 0)
    assert [r[0] for r in sink(fresh)] == [e["event_id"] for e in outbox(fresh)]


@pytest.mark.parametrize("backend", ["redis", "postgres"])
def test_a_handler_that_always_fails_on_one_event_dead_letters_it_and_the_rest_flow(
    fresh: TestDatabase, redis_server: RedisServer, backend: str
) -> None:
    make_sink(fresh)
    with with_redis(fresh, redis_server, events_backend=backend) as db:
        emit_many(db, 40, aggregates=2)
        poison = outbox(fresh)[17]["event_id"]
        calls: dict[int, int] = {}

        def handler(event: Event, conn: psycopg.Connection[Any] | None) -> None:
            calls[event.event_id] = calls.get(event.event_id, 0) + 1
            writing_handler(event, conn)
            if event.event_id == poison:
                raise KeyError("no such instrument")

        db.events.relay().run(until_idle=True)
        worker = db.events.consumer("analytics", handler, "desk", max_attempts=3, retry_after=0.2, block=0.1)
        deadline = time.monotonic() + 20
        while worker.stats.dead_letters == 0 and time.monotonic() < deadline:
            worker.run(until_idle=True)
            time.sleep(0.1)
        letters = db.events.dead_letters("analytics")
        status = db.events.status()
        with pytest.raises(UnknownGroup):
            db.events.dead_letters("nobody")
    assert calls[poison] == 3
    assert [r[0] for r in sink(fresh)] == [e["event_id"] for e in outbox(fresh) if e["event_id"] != poison]
    assert len(letters) == 1 and "no such instrument" in str(letters[0]["error"])
    assert int(letters[0]["event_id"]) == poison
    assert status["dead_letters"] == {"analytics": 1}


def test_a_malformed_stream_entry_is_dead_lettered(fresh: TestDatabase, redis_server: RedisServer) -> None:
    with with_redis(fresh, redis_server) as db:
        db.events.emit("desk", 1, "desk.test", {"ok": True})
        redis_server.client().xadd(stream_key("desk"), {"garbage": "1"})
        db.events.relay().run(until_idle=True)
        seen: list[int] = []
        stats = db.events.consume("g", lambda e, c: seen.append(e.event_id), "desk", until_idle=True, block=0.1)
    assert stats.handled == 1 and stats.dead_letters == 1 and len(seen) == 1
    (letter,) = cast(list[Any], redis_server.client().xrange(dead_key("g")))
    assert "not a tradedb event" in letter[1]["error"]


def test_a_dead_consumers_messages_are_claimed_by_another(fresh: TestDatabase, redis_server: RedisServer) -> None:
    with with_redis(fresh, redis_server) as db:
        emit_many(db, 20)
        db.events.relay().run(until_idle=True)
        # "gone" reads everything and dies before acknowledging any of it.
        client = redis_server.client()
        client.xgroup_create(stream_key("desk"), "g", id="0", mkstream=True)
        client.xreadgroup("g", "gone", {stream_key("desk"): ">"}, count=100)
        seen: list[int] = []
        worker = db.events.consumer("g", lambda e, c: seen.append(e.event_id), "desk", retry_after=0.3, block=0.1)
        time.sleep(0.4)
        worker.run(max_events=20)
    assert sorted(seen) == [e["event_id"] for e in outbox(fresh)]


def test_a_message_whose_consumers_keep_dying_is_dead_lettered_unhandled(
    fresh: TestDatabase, redis_server: RedisServer
) -> None:
    """A handler that kills its process raises nothing to count: the group's delivery count catches it."""
    with with_redis(fresh, redis_server) as db:
        emit_many(db, 3)
        db.events.relay().run(until_idle=True)
        client = redis_server.client()
        key = stream_key("desk")
        client.xgroup_create(key, "g", id="0", mkstream=True)
        entries = cast(list[Any], client.xreadgroup("g", "dies-1", {key: ">"}, count=1))
        poison = entries[0][1][0][0]
        for n in range(2, 5):  # three more consumers took it and died
            client.xclaim(key, "g", f"dies-{n}", 0, [poison])
        seen: list[int] = []
        worker = db.events.consumer("g", lambda e, c: seen.append(e.event_id), "desk", max_attempts=3, retry_after=0.2)
        time.sleep(0.3)
        worker.run(until_idle=True)
        letters = db.events.dead_letters("g")
    first = outbox(fresh)[0]["event_id"]
    assert first not in seen and len(seen) == 2
    assert len(letters) == 1 and int(letters[0]["event_id"]) == first and "consumers died" in letters[0]["error"]


def test_unknown_streams_and_bad_options_are_refused(fresh: TestDatabase, redis_server: RedisServer) -> None:
    with with_redis(fresh, redis_server) as db:
        with pytest.raises(UnknownStream, match="nosuch"):
            db.events.consume("g", writing_handler, ["nosuch"])
        with pytest.raises(ValidationError, match="group"):
            db.events.consume("bad group!", writing_handler)
        with pytest.raises(ValidationError, match="max_attempts"):
            db.events.consume("g", writing_handler, max_attempts=0)
        with pytest.raises(ValidationError, match="handler"):
            db.events.consume("g", "not callable")  # type: ignore[arg-type]
        db.events.emit("fx_rates", "EURUSD", "fx_rates.updated", {"rate": "1.08"})
        assert "fx_rates" in db.events.streams(), "a stream of your own is known once written"


def test_without_redis_the_postgres_streams_deliver_in_order(fresh: TestDatabase) -> None:
    """The embedded default: no Redis, no relay process; consumers number and read the outbox themselves."""
    with connect(fresh) as db:
        assert db.events.backend == "postgres"
        emit_many(db, 500, aggregates=5)
        seen: list[Event] = []
        stats = db.events.consume("risk", lambda e, c: seen.append(e), ["desk"], until_idle=True, block=0.1)
        again = db.events.consume("risk", lambda e, c: seen.append(e), ["desk"], until_idle=True, block=0.1)
        other: list[Event] = []
        db.events.consume("analytics", lambda e, c: other.append(e), ["desk"], until_idle=True, block=0.1)
        status = db.events.status()
    assert stats.handled == 500 and again.handled == 0
    assert [e.event_id for e in seen] == [e["event_id"] for e in outbox(fresh)]
    assert [int(e.position) for e in seen] == list(range(1, 501))
    assert [e.event_id for e in other] == [e.event_id for e in seen]
    assert status["undelivered"] == 0
    assert {(g["group"], g["lag"]) for g in status["groups"]} == {("risk", 0), ("analytics", 0)}


def test_a_postgres_consumer_wakes_on_notify(fresh: TestDatabase) -> None:
    with connect(fresh) as db:
        seen: list[float] = []
        db.events.emit("desk", 1, "desk.test", {})  # a stream of one's own is known once written to
        worker = db.events.consumer("g", lambda e, c: seen.append(time.monotonic()), "desk", block=30, start="latest")
        runner = threading.Thread(target=worker.run, kwargs={"max_events": 1})
        runner.start()
        time.sleep(0.5)
        sent = time.monotonic()
        db.events.emit("desk", 1, "desk.test", {})
        runner.join(timeout=10)
    assert seen and seen[0] - sent < 2.0, "woken by NOTIFY, not by the 30 s poll"


# --- the cache ----------------------------------------------------------------------------------------------


def quotes_at(t: datetime, bid: float) -> list[dict[str, Any]]:
    return [{"ts": t, "symbol": s, "bid": bid + i, "ask": bid + i + 0.5, "bid_size": 1.0, "ask_size": 1.0}
            for i, s in enumerate(("CQA", "CQB"))]  # fmt: skip


def test_the_cache_holds_committed_quotes_within_the_staleness_bound(
    fresh: TestDatabase, redis_server: RedisServer
) -> None:
    t0 = datetime(2026, 11, 2, 14, 30, tzinfo=UTC)
    with with_redis(fresh, redis_server, cache_staleness=2.0) as db:
        db.market_data.write_quotes(quotes_at(t0, 100.0), source="test", create_securities=True)
        db.events.relay().run(until_idle=True)
        direct = db.market_data.latest_quotes(["CQA", "CQB"])
        cached = db.market_data.latest_quotes(["CQA", "CQB"], cache=True)
        assert cached == direct
        ids = db.market_data.security_ids(["CQA"])
        entry = redis_server.client().hgetall(f"tradedb:quote:{ids['CQA']}")
        assert float(entry["bid"]) == 100.0 and time.time() - float(entry["as_of"]) < 2.0
        # Prove the read came from Redis: change the cached entry, the read shows it while it is fresh.
        redis_server.client().hset(f"tradedb:quote:{ids['CQA']}", "bid", "99.5")
        assert db.market_data.latest_quotes(["CQA"], cache=True)["CQA"]["bid"] == 99.5  # type: ignore[index]
        # Newer quotes committed, no relay: the cache is trusted only until its bound, then PostgreSQL answers.
        db.market_data.write_quotes(quotes_at(t0 + timedelta(minutes=1), 200.0), source="test")
        time.sleep(2.1)
        after = db.market_data.latest_quotes(["CQA", "CQB"], cache=True)
        assert after == db.market_data.latest_quotes(["CQA", "CQB"])
        assert after["CQA"]["bid"] == 200.0  # type: ignore[index]


def test_the_cache_never_holds_uncommitted_quotes(fresh: TestDatabase, redis_server: RedisServer) -> None:
    t0 = datetime(2026, 11, 2, 14, 30, tzinfo=UTC)
    with with_redis(fresh, redis_server, cache_staleness=30.0) as db:
        db.market_data.write_quotes(quotes_at(t0, 100.0), source="test", create_securities=True)
        ids = db.market_data.security_ids(["CQA", "CQB"])
        with fresh.connect() as open_tx:
            # A writer's transaction that has not committed: newer kept quote and coverage, invisible to others.
            open_tx.execute("UPDATE data_ingestion.last_quotes SET bid = 555, ts = ts + interval '1 hour'")
            open_tx.execute("UPDATE data_ingestion.coverage SET last_ts = last_ts + interval '1 hour'")
            db.events.relay().run(until_idle=True)
            open_tx.rollback()
        for security_id in ids.values():
            entry = redis_server.client().hgetall(f"tradedb:quote:{security_id}")
            assert float(entry["bid"]) in (100.0, 101.0)
        assert db.market_data.latest_quotes(["CQA", "CQB"], cache=True) == db.market_data.latest_quotes(["CQA", "CQB"])


def test_the_relay_caches_each_accounts_positions(fresh: TestDatabase, redis_server: RedisServer) -> None:
    account, security = setup_market(fresh)
    with with_redis(fresh, redis_server) as db:
        order = db.execution.submit_order(account_id=account, security_id=security, side="buy", quantity=10)
        db.execution.record_fill("x-1", order["order_id"], 6, "50")
        db.events.relay().run(until_idle=True)
        cache = db.events.cache()
        assert cache is not None
        cached = cache.positions(account)
    assert cached is not None and Decimal(cached[security]["quantity"]) == 6
    assert Decimal(cached[security]["avg_price"]) == 50


# --- faults -------------------------------------------------------------------------------------------------


def relay_process(db: TestDatabase, server: RedisServer) -> Any:
    import subprocess

    from tests.conftest import TRADEDB

    env = db.env(REDIS_URL=server.url)
    return subprocess.Popen(
        [str(TRADEDB), "events", "relay", "--batch", "500", "--poll", "0.2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.slow
def test_a_relay_killed_ten_times_loses_nothing(fresh: TestDatabase, redis_server: RedisServer) -> None:
    """100,000 events produced while the relay is SIGKILLed ten times: every event reaches Redis; the duplicates
    are at most one transaction's claims per kill (2 claims of 500)."""
    total, kills = 100_000, 10
    with with_redis(fresh, redis_server) as db:
        producer = threading.Thread(target=emit_many, args=(db, total), kwargs={"aggregates": 200, "per_tx": 500})
        producer.start()
        relay = relay_process(fresh, redis_server)
        rng = random.Random(7)
        for _ in range(kills):
            # Kill it while it works: once it has published since it started, at a random instant.
            start = redis_server.client().xlen(stream_key("desk"))
            while redis_server.client().xlen(stream_key("desk")) == start:
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.05))
            relay.kill()
            relay.wait()
            relay = relay_process(fresh, redis_server)
        producer.join()
        deadline = time.monotonic() + 120
        while db.events.status()["undelivered"] and time.monotonic() < deadline:
            time.sleep(0.2)
        relay.terminate()
        relay.wait(timeout=30)
    entries = redis_events(redis_server)
    ids = [int(f["event_id"]) for f in entries]
    duplicates = len(ids) - len(set(ids))
    print(f"\n{total} events, {kills} kills: {len(ids)} published, {duplicates} duplicates")
    assert set(ids) == {e["event_id"] for e in outbox(fresh)} and len(set(ids)) == total
    assert duplicates <= kills * 2 * 500
    # Per aggregate, first appearances keep the order of the sequence numbers.
    firsts: dict[str, list[int]] = {}
    seen: set[int] = set()
    for f in entries:
        if int(f["event_id"]) not in seen:
            seen.add(int(f["event_id"]))
            firsts.setdefault(f["aggregate_id"], []).append(int(f["seq"]))
    assert all(seqs == sorted(seqs) for seqs in firsts.values())


def test_redis_restarted_during_the_relay_loses_nothing(fresh: TestDatabase, redis_server: RedisServer) -> None:
    with with_redis(fresh, redis_server) as db:
        relay = db.events.relay(batch=100, poll=0.1)
        runner = threading.Thread(target=relay.run)
        runner.start()
        emit_many(db, 1000)
        redis_server.stop()
        emit_many(db, 1000)  # the outbox keeps them while Redis is away
        time.sleep(0.5)
        redis_server.start()
        emit_many(db, 1000)
        deadline = time.monotonic() + 60
        while db.events.status()["undelivered"] and time.monotonic() < deadline:
            time.sleep(0.1)
        relay.stop()
        runner.join()
    ids = {int(f["event_id"]) for f in redis_events(redis_server)}
    assert ids == {e["event_id"] for e in outbox(fresh)} and len(ids) == 3000
    assert relay.stats.failures > 0, "the relay saw the outage and resumed by itself"


# --- the CLI and the async API ------------------------------------------------------------------------------


def test_cli_relay_tail_status(fresh: TestDatabase, redis_server: RedisServer) -> None:
    env = fresh.env(REDIS_URL=redis_server.url.replace("redis://", "redis://:hunter2@"))
    with connect(fresh) as db:
        emit_many(db, 30)
    refused = run_cli("events", "status", env=env)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr and "hunter2" not in refused.stderr
    env = fresh.env(REDIS_URL=redis_server.url)
    relayed = run_cli("events", "relay", "--until-idle", env=env)
    assert relayed.returncode == 0, relayed.stderr
    assert "delivered 30 events" in relayed.stderr
    tail = run_cli("events", "tail", "--limit", "5", env=env)
    lines = [json.loads(line) for line in tail.stdout.splitlines()]
    assert [e["event_id"] for e in lines] == [e["event_id"] for e in outbox(fresh)][-5:]
    status = run_cli("events", "status", "--json", env=env)
    report = json.loads(status.stdout)
    assert report["undelivered"] == 0 and report["streams"] == [{"stream": "desk", "length": 30}]
    unknown = run_cli("events", "tail", "--stream", "nosuch", env=env)
    assert unknown.returncode != 0 and "unknown stream" in unknown.stderr and "Traceback" not in unknown.stderr


def test_the_async_api_relays_and_consumes(fresh: TestDatabase, redis_server: RedisServer) -> None:
    async def main() -> tuple[list[int], Any]:
        settings = make_settings(fresh.server_url, fresh.name, redis_url=redis_server.url)
        async with tradedb.connect_async(fresh.url, settings=settings) as db:
            for i in range(25):
                await db.events.emit("desk", i % 3 + 1, "desk.test", {"i": i})
            relay = await db.events.relay()
            await relay.run(until_idle=True)
            seen: list[int] = []

            async def handler(event: Event, conn: Any) -> None:
                await conn.execute("SELECT 1")
                seen.append(event.event_id)

            await db.events.consume("g", handler, "desk", until_idle=True, block=0.1)
            return seen, await db.events.status()

    seen, status = asyncio.run(main())
    assert seen == [e["event_id"] for e in outbox(fresh)]
    assert status["groups"][0]["group"] == "g" and status["groups"][0]["lag"] == 0


@pytest.mark.slow
def test_postgres_restarted_during_the_relay_loses_nothing(redis_server: RedisServer) -> None:
    """A server of its own, restarted while the relay runs and events keep coming."""
    from tests.servers import PgInstance
    from tradedb.ops import setup as provision

    instance = PgInstance(prefix="tradedb-events-").start()
    try:
        settings = make_settings(instance.url(), "trading_events", redis_url=redis_server.url)
        provision.setup(settings=settings, url=instance.url())
        url = instance.url("trading_events")
        with tradedb.connect(url, settings=settings) as db:
            relay = db.events.relay(batch=100, poll=0.1)
            runner = threading.Thread(target=relay.run)
            runner.start()
            emit_many(db, 1000)
            instance.restart()
            for _ in range(50):  # the pool recovers; the writer retries what the restart interrupted
                try:
                    emit_many(db, 1000)
                    break
                except tradedb.ConnectionError:
                    time.sleep(0.2)
            deadline = time.monotonic() + 60
            while db.events.status()["undelivered"] and time.monotonic() < deadline:
                time.sleep(0.1)
            relay.stop()
            runner.join()
            expected = {r["event_id"] for r in db.fetch_all("SELECT event_id FROM shared.event_outbox")}
        ids = {int(f["event_id"]) for f in redis_events(redis_server)}
        assert ids == expected and len(ids) >= 2000
    finally:
        instance.cleanup()


def test_maintenance_drops_delivered_events_past_retention_and_keeps_undelivered(fresh: TestDatabase) -> None:
    from tradedb.ops import maintenance

    later = datetime.now(UTC) + timedelta(days=10)  # today's outbox partition is past the 7-day retention then
    with connect(fresh) as db:
        emit_many(db, 10)
        db.fetch_value("SELECT shared.claim_inbox('g', 1)", readonly=False)
        kept = maintenance.maintain(settings=fresh.settings, url=fresh.server_url, ahead=0, now=later)
        assert [k for k in kept.kept if k.startswith("shared.event_outbox_p")], kept.kept
        assert not set(kept.kept) & set(kept.dropped)
        assert len(outbox(fresh)) == 10 and kept.inbox_trimmed == 1
        db.events.consume("g", lambda e, c: None, "desk", until_idle=True, block=0.1)
        dropped = maintenance.maintain(settings=fresh.settings, url=fresh.server_url, ahead=0, now=later)
    assert set(kept.kept) <= set(dropped.dropped), dropped.dropped
    assert outbox(fresh) == [] and dropped.kept == []

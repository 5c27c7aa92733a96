"""The events package's pure parts: the relay's RESP encoding, entry fields, names and payload checks."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.connection import Connection

from tradedb import UnknownStream, ValidationError
from tradedb.db.outbox_rules import new_event, payload_text
from tradedb.events._resp import XADD_BATCH, XADD_BATCH_SHA, command, xadd_batch
from tradedb.events.envelope import FIELDS, check_group, check_streams, from_redis, redis_fields

texts = st.text(min_size=0, max_size=40)


@given(st.lists(st.binary(max_size=30), max_size=20))
def test_command_encoding_equals_redis_pys(args: list[bytes]) -> None:
    packer: Any = cast(Any, Connection)()  # redis-py's own encoder (untyped)
    assert command([b"EVALSHA", *args]) == b"".join(packer.pack_command(b"EVALSHA", *args))


def row(event_id: int, payload: str = '{"a":1}') -> dict[str, object]:
    return {
        "event_id": event_id,
        "aggregate_id": "42",
        "seq": 7,
        "event_type": "order.created",
        "payload": payload,
        "created_at": datetime(2026, 11, 29, 6, 0, 1, 123456, tzinfo=UTC),
    }


def test_the_batch_command_is_evalsha_with_its_keys_and_fields_in_order() -> None:
    entries = [("tradedb:events:order", redis_fields(row(1))), ("tradedb:events:risk", redis_fields(row(2)))]
    entries.append(("tradedb:events:order", redis_fields(row(3))))
    expected = [b"EVALSHA", XADD_BATCH_SHA.encode(), b"2", b"tradedb:events:order", b"tradedb:events:risk", b"1000"]
    for index, (_, fields) in zip((b"1", b"2", b"1"), entries, strict=True):
        expected += [index, *(str(fields[name]).encode() for name in FIELDS)]
    assert xadd_batch(XADD_BATCH_SHA, 1000, entries) == command(expected)
    assert all(f"'{name}'" in XADD_BATCH for name in FIELDS)


def test_an_entry_reads_back_as_the_event() -> None:
    event = from_redis("tradedb:events:order", "1-0", redis_fields(row(9, '{"price":"1.50"}')))
    assert (event.event_id, event.stream, event.aggregate_id, event.seq, event.type) == (
        9,
        "order",
        "42",
        7,
        "order.created",
    )
    assert event.payload == {"price": "1.50"} and event.occurred_at == datetime(2026, 11, 29, 6, 0, 1, 123456, UTC)
    with pytest.raises(ValidationError, match="not a tradedb event"):
        from_redis("tradedb:events:order", "2-0", {"event_id": "x"})


def test_payloads_keep_money_exact_and_refuse_what_json_cannot_hold() -> None:
    text = payload_text({"price": Decimal("101.25"), "at": datetime(2026, 1, 2, tzinfo=UTC), "id": UUID(int=1)})
    assert text == '{"price":"101.25","at":"2026-01-02T00:00:00+00:00","id":"00000000-0000-0000-0000-000000000001"}'
    for bad in ({"x": float("inf")}, {"x": Decimal("NaN")}, {"x": b"bytes"}, {"x": object()}):
        with pytest.raises(ValidationError):
            payload_text(bad)


@given(st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True), st.integers(min_value=1))
def test_valid_names_make_events(stream: str, aggregate: int) -> None:
    event = new_event(stream, aggregate, "thing.happened", {"n": aggregate})
    assert event.aggregate_id == str(aggregate) and event.payload == f'{{"n":{aggregate}}}'


def test_streams_and_groups_are_checked() -> None:
    assert "order" in check_streams(None, [])
    assert check_streams("fx", ["fx"]) == ["fx"]
    with pytest.raises(UnknownStream, match="nosuch"):
        check_streams(["order", "nosuch"], [])
    with pytest.raises(ValidationError):
        check_streams([], [])
    with pytest.raises(ValidationError):
        check_group("has space")
    assert check_group("risk-engine.v2") == "risk-engine.v2"

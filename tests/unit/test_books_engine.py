"""The book engine and the replay draws, without a database: against the plain-Python reference book, on
generated event sequences (valid ones and ones that make no sense), and the replay properties."""

from __future__ import annotations

import itertools
import struct
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.reference_book import ReferenceBook, apply_rows
from tradedb.books import _engine as engine
from tradedb.books import _kernel as kernel
from tradedb.books import _replay as rp
from tradedb.columnar import binary_copy as binary
from tradedb.columnar.compile import HAVE_NUMBA
from tradedb.durations import parse_span
from tradedb.errors import BookIntegrityError, ValidationError
from tradedb.marketdata import check_range, check_time

T0 = datetime(2024, 5, 8, tzinfo=UTC)
KINDS = ["new", "new", "new", "cancel", "execute", "modify", "trade", "fill", "clear"]


@st.composite
def events(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Event sequences over few order ids and a small price grid, so cancels, modifies, duplicates, unknown
    orders, over-cancels and crossings all happen."""
    n = draw(st.integers(1, 60))
    rows = []
    for i in range(n):
        kind = draw(st.sampled_from(KINDS[:-1]) if draw(st.integers(0, 30)) else st.just("clear"))
        side = draw(st.sampled_from(["buy", "sell"]))
        base = 100.0 if side == "buy" else 101.0
        rows.append(
            {
                "ts": T0 + timedelta(microseconds=i),
                "event_type": kind,
                "order_ref": draw(st.sampled_from([f"o{j}" for j in range(8)])),
                "side": side,
                "price": base + draw(st.sampled_from([0.0, 0.25, 0.5])) * (1 if side == "sell" else -1)
                if draw(st.integers(0, 9))
                else base + (1.0 if side == "buy" else -1.0),  # now and then an order that crosses
                "size": float(draw(st.integers(1, 5))),
                "sequence": i,
            }
        )
    return rows


def table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(
        rows,
        schema=pa.schema(
            [
                ("ts", pa.timestamp("us", tz="UTC")),
                ("event_type", pa.string()),
                ("order_ref", pa.string()),
                ("side", pa.string()),
                ("price", pa.float64()),
                ("size", pa.float64()),
                ("sequence", pa.int64()),
            ]
        ),
    )


def reference_tops(rows: list[dict[str, Any]], policy: str, depth: int) -> list[Any]:
    book = ReferenceBook(policy)
    tops = []
    for row in rows:
        apply_rows(book, [row])
        tops.append((book.levels("buy", depth), book.levels("sell", depth)))
    return tops


def engine_tops(top: tuple[np.ndarray, np.ndarray, np.ndarray], n: int, depth: int) -> list[Any]:
    prices, sizes, counts = top
    out = []
    for i in range(n):
        sides = []
        for s in (0, 1):
            sides.append(
                [
                    (float(prices[i, s, d]), float(sizes[i, s, d]), int(counts[i, s, d]))
                    for d in range(depth)
                    if not np.isnan(prices[i, s, d])
                ]
            )
        out.append((sides[0], sides[1]))
    return out


@pytest.mark.parametrize("policy", ["quarantine", "log"])
@settings(max_examples=150, deadline=None)
@given(rows=events())
def test_the_book_after_every_event_equals_the_reference(policy: str, rows: list[dict[str, Any]]) -> None:
    built = engine.Engine(engine.check_policy(policy))
    top = built.feed(table(rows), depth=4)
    assert top is not None
    assert engine_tops(top, len(rows), 4) == reference_tops(rows, policy, 4)
    reference = ReferenceBook(policy)
    apply_rows(reference, rows)
    assert [((f.sequence or 0) + 1, f.check) for f in built.findings] == reference.findings
    bids, asks = built.levels(None, queues=True)
    for side, levels in (("buy", bids), ("sell", asks)):
        assert [(lv.price, lv.size, lv.orders) for lv in levels] == reference.levels(side)
        for lv in levels:
            assert [(o.order_ref, o.size) for o in lv.queue or ()] == reference.queue(side, lv.price)


@settings(max_examples=60, deadline=None)
@given(rows=events(), cut=st.integers(0, 60))
def test_a_snapshot_then_the_rest_equals_one_pass(rows: list[dict[str, Any]], cut: int) -> None:
    cut = min(cut, len(rows))
    whole = engine.Engine(kernel.LOG)
    whole.feed(table(rows))
    first = engine.Engine(kernel.LOG)
    first.feed(table(rows[:cut]))
    data, count = first.snapshot()
    resumed = engine.Engine(kernel.LOG, engine.read_snapshot(data))
    resumed.feed(table(rows[cut:]))
    assert count == sum(lv.orders for side in first.levels(None, False) for lv in side)
    assert resumed.levels(None, queues=True) == whole.levels(None, queues=True)


def test_the_kernel_without_numba_gives_the_same_book() -> None:
    """The pure-Python fallback (no numba installed) is the same function, uncompiled."""
    rng = np.random.default_rng(7)
    rows = [
        {
            "ts": T0 + timedelta(microseconds=i),
            "event_type": str(rng.choice(["new", "new", "cancel", "modify", "execute"])),
            "order_ref": f"o{rng.integers(0, 40)}",
            "side": str(rng.choice(["buy", "sell"])),
            "price": float(100 + rng.integers(-5, 5) * 0.5),
            "size": float(rng.integers(1, 9)),
            "sequence": i,
        }
        for i in range(500)
    ]
    compiled = engine.Engine(kernel.LOG)
    top = compiled.feed(table(rows), depth=3)
    if not HAVE_NUMBA:
        pytest.skip("numba is not installed: the kernel already runs as Python")
    original = kernel.run
    kernel.run = original.py_func  # type: ignore[attr-defined]
    try:
        plain = engine.Engine(kernel.LOG)
        plain_top = plain.feed(table(rows), depth=3)
    finally:
        kernel.run = original
    assert top is not None and plain_top is not None
    for a, b in zip(top, plain_top, strict=True):
        np.testing.assert_array_equal(a, b)
    assert plain.levels(None, True) == compiled.levels(None, True)


def test_a_modify_keeps_its_place_only_when_it_shrinks() -> None:
    def queue_after(size: float, price: float) -> list[str]:
        rows = [
            {"ts": T0, "event_type": "new", "order_ref": r, "side": "buy", "price": 10.0, "size": 5.0, "sequence": i}
            for i, r in enumerate(["a", "b", "c"])
        ]
        rows.append(
            {
                "ts": T0,
                "event_type": "modify",
                "order_ref": "a",
                "side": "buy",
                "price": price,
                "size": size,
                "sequence": 9,
            }
        )
        built = engine.Engine(kernel.REJECT)
        built.feed(table(rows))
        bids, _asks = built.levels(None, queues=True)
        return [o.order_ref for lv in bids for o in lv.queue or ()]

    assert queue_after(3.0, 10.0) == ["a", "b", "c"]  # smaller: keeps its place
    assert queue_after(6.0, 10.0) == ["b", "c", "a"]  # larger: to the back
    assert queue_after(5.0, 9.5) == ["b", "c", "a"]  # another price: a level of its own, behind


def test_reject_stops_at_the_first_event_that_makes_no_sense() -> None:
    rows = [
        {"ts": T0, "event_type": "new", "order_ref": "a", "side": "buy", "price": 10.0, "size": 2.0, "sequence": 1},
        {"ts": T0, "event_type": "cancel", "order_ref": "zz", "side": "buy", "price": 10.0, "size": 1.0, "sequence": 2},
    ]
    built = engine.Engine(engine.check_policy("reject"))
    with pytest.raises(BookIntegrityError, match=r"sequence 2\): cancel order zz refers to an order that is not in"):
        built.feed(table(rows))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: engine.check_depth(0), "depth 0"),
        (lambda: engine.check_depth(True), "depth True"),
        (lambda: engine.check_policy("drop"), "policy 'drop'"),
        (lambda: parse_span("5 parsecs", what="window"), "window '5 parsecs'"),
        (lambda: parse_span("0min", what="block"), "block '0min'"),
        (lambda: rp.check_seed("42"), "seed '42'"),
        (lambda: rp.check_seed(1.5), "seed 1.5"),
        (lambda: rp.check_seed(-1), "seed -1"),
        (lambda: rp.check_samples(0), "samples 0"),
        (lambda: rp.Blocks(T0, T0 + timedelta(minutes=10), timedelta(minutes=30)), "block 30min is longer than"),
        (lambda: check_time("2024-05-08T00:00:00", "at"), "has no time zone"),
        (lambda: check_range(T0, T0), "is not after start"),
    ],
)
def test_bad_arguments_are_named(call: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(")):
        call()


def test_spans_parse_in_both_notations() -> None:
    assert parse_span("5min", what="w") == parse_span("5m", what="w") == timedelta(minutes=5)
    assert parse_span("250ms", what="w") == timedelta(milliseconds=250)
    assert parse_span("1h", what="w") == timedelta(hours=1)


sorted_times = st.lists(st.integers(0, 10_000_000), min_size=0, max_size=300).map(sorted)


@settings(max_examples=200, deadline=None)
@given(times=sorted_times, width=st.integers(1, 2_000_000), seed=st.integers(0, 2**32), split=st.integers(0, 300))
def test_window_shuffles_keep_every_event_once_inside_its_window(
    times: list[int], width: int, seed: int, split: int
) -> None:
    ts = np.array(times, np.int64)
    keys = rp.window_keys(ts, width)
    order = rp.shuffle_windows(keys, seed)
    assert sorted(order.tolist()) == list(range(len(ts)))  # every event exactly once
    np.testing.assert_array_equal(keys[order], keys)  # nobody leaves its window
    np.testing.assert_array_equal(rp.shuffle_windows(keys, seed), order)  # same seed, same order
    # A window is shuffled the same way whatever else is read with it (batches cut at window edges).
    cut = int(np.searchsorted(keys, keys[min(split, len(keys) - 1)])) if len(keys) else 0
    parts = np.concatenate([rp.shuffle_windows(keys[:cut], seed), cut + rp.shuffle_windows(keys[cut:], seed)])
    np.testing.assert_array_equal(parts, order)


def test_another_seed_shuffles_differently() -> None:
    keys = np.zeros(50, np.int64)
    assert not np.array_equal(rp.shuffle_windows(keys, 1), rp.shuffle_windows(keys, 2))


@settings(max_examples=100, deadline=None)
@given(span=st.integers(1, 500), length=st.integers(1, 500), seed=st.integers(0, 1000))
def test_blocks_have_the_length_asked_but_the_last(span: int, length: int, seed: int) -> None:
    start, end = T0, T0 + timedelta(seconds=span)
    if length > span:
        with pytest.raises(ValidationError, match="longer than the series"):
            rp.Blocks(start, end, timedelta(seconds=length))
        return
    blocks = rp.Blocks(start, end, timedelta(seconds=length))
    assert blocks.count == -(-span // length)
    edges = [min(span, j * length) for j in range(blocks.count + 1)]
    lengths = np.diff(edges)
    assert set(lengths[:-1].tolist()) <= {length} and 0 < lengths[-1] <= length
    drawn = rp.draw_blocks(blocks.count, seed, 0)
    assert len(drawn) == blocks.count and drawn.min() >= 0 and drawn.max() < blocks.count
    np.testing.assert_array_equal(drawn, rp.draw_blocks(blocks.count, seed, 0))


def _copy_bytes(rows: list[tuple[int | None, str | None, float | None]]) -> bytes:
    """A binary COPY (timestamp, text, float8 columns) written by hand from PostgreSQL's documented format."""
    out = bytearray(b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0))
    for ts, text, value in rows:
        out += struct.pack(">h", 3)
        out += struct.pack(">i", -1) if ts is None else struct.pack(">iq", 8, ts)
        out += struct.pack(">i", -1) if text is None else struct.pack(">i", len(text.encode())) + text.encode()
        out += struct.pack(">i", -1) if value is None else struct.pack(">id", 8, value)
    return bytes(out + struct.pack(">h", -1))


@pytest.mark.parametrize("compiled", [True, False])
def test_binary_copy_decodes_exactly(compiled: bool) -> None:
    rows = [(-1, "", -0.5), (None, None, None), (0, "été ✓", 1e300), (2**40, "x" * 1000, float("inf"))]
    schema = pa.schema([("ts", pa.timestamp("us", tz="UTC")), ("t", pa.string()), ("v", pa.float64())])
    originals = (binary._scan, binary._fill, binary._int)
    if not compiled:
        if not HAVE_NUMBA:
            pytest.skip("numba is not installed: the compiled case already runs as Python")
        binary._scan, binary._fill, binary._int = (getattr(f, "py_func") for f in originals)  # noqa: B009
    try:
        table = binary.decode(_copy_bytes(rows), schema)
    finally:
        binary._scan, binary._fill, binary._int = originals
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    assert table.to_pylist() == [
        {"ts": epoch - timedelta(microseconds=1), "t": "", "v": -0.5},
        {"ts": None, "t": None, "v": None},
        {"ts": epoch, "t": "été ✓", "v": 1e300},
        {"ts": epoch + timedelta(microseconds=2**40), "t": "x" * 1000, "v": float("inf")},
    ]
    assert binary.decode(_copy_bytes([]), schema).num_rows == 0


@settings(max_examples=150, deadline=None)
@given(
    times=sorted_times,
    width=st.integers(1, 3_000_000),
    seed=st.integers(0, 2**32),
    cuts=st.lists(st.integers(0, 300), max_size=6),
)
def test_a_randomized_stream_loses_nothing_at_batch_or_window_edges(
    times: list[int], width: int, seed: int, cuts: list[int]
) -> None:
    """Batches cut anywhere (inside windows too): every event is played once, inside its window, and the
    output does not depend on where the batches were cut."""
    table = pa.table(
        {
            "ts": pa.array(np.array(times, np.int64), pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            "sequence": pa.array(np.arange(len(times)), pa.int64()),
        }
    )

    def play(edges: list[int]) -> pa.Table:
        shuffle = rp.WindowShuffle(width, seed)
        out = []
        bounds = [0, *sorted(min(c, len(times)) for c in edges), len(times)]
        for lo, hi in itertools.pairwise(bounds):
            played = shuffle.feed(table.slice(lo, hi - lo))
            if played is not None:
                out.append(played)
        rest = shuffle.finish()
        if rest is not None:
            out.append(rest)
        return pa.concat_tables(out) if out else table.append_column("replay_ts", table["ts"]).slice(0, 0)

    played = play(cuts)
    assert played.equals(play([]))  # the same bytes however the stream was batched
    assert sorted(played["sequence"].to_pylist()) == list(range(len(times)))  # every event exactly once
    original = played["ts"].cast(pa.int64()).to_numpy()
    clock = played["replay_ts"].cast(pa.int64()).to_numpy()
    np.testing.assert_array_equal(original // width, clock // width)  # never out of its window
    assert (np.diff(clock) >= 0).all()

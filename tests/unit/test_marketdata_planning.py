"""The windows a ``replace`` call may clear, judged by a reference model of plain sets of microseconds; the last quotes
of a batch, by a reference walk."""

from __future__ import annotations

import itertools
import json
import math
from datetime import UTC, datetime, timedelta

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from tradedb.marketdata import _planning as planning
from tradedb.marketdata._planning import ClearedWindows, merge_interval, subtract_intervals

windows = st.lists(
    st.tuples(st.integers(0, 60), st.integers(0, 12)).map(lambda w: (w[0], w[0] + w[1])), min_size=1, max_size=12
)


def points(intervals: list[tuple[int, int]]) -> set[int]:
    return {t for a, b in intervals for t in range(a, b + 1)}


@given(windows, st.tuples(st.integers(0, 70), st.integers(0, 20)))
def test_subtract_and_merge_match_sets(batch_windows: list[tuple[int, int]], window: tuple[int, int]) -> None:
    cleared: list[tuple[int, int]] = []
    for w in batch_windows:
        cleared = merge_interval(cleared, w)
    assert points(cleared) == points(batch_windows)
    assert cleared == sorted(cleared)
    assert all(b + 1 < a2 for (_, b), (a2, _) in itertools.pairwise(cleared))  # disjoint, not touching
    lo, hi = window[0], window[0] + window[1]
    parts = subtract_intervals((lo, hi), cleared)
    assert points(parts) == set(range(lo, hi + 1)) - points(cleared)
    assert all(a <= b for a, b in parts)


@given(st.lists(st.tuples(st.integers(1, 3), windows), min_size=1, max_size=8))
def test_a_batch_never_claims_what_an_earlier_batch_cleared(batches: list[tuple[int, list[tuple[int, int]]]]) -> None:
    tracker = ClearedWindows()
    seen: dict[int, set[int]] = {}
    for security, batch in batches:
        entries = [{"security_id": security, "timeframe": "", "first_us": a, "last_us": b} for a, b in batch]
        claimed = tracker.claim(entries)
        mine = {t for e in claimed for t in range(e["first_us"], e["last_us"] + 1)}
        before = seen.setdefault(security, set())
        assert not mine & before
        assert mine == points(batch) - before
        before |= points(batch)


@settings(deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=1, max_value=4),
            st.integers(min_value=0, max_value=5),
            st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True, width=64)),
        ),
        max_size=30,
    )
)
def test_last_quotes_are_each_securitys_latest_row_of_the_batch(rows: list[tuple[int, int, float | None]]) -> None:
    """The kept last quote of a batch appended as is: per security the row with the latest ts, of several at that
    instant the last in the batch (a reference walk over the rows)."""
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    table = pa.table(
        {
            "security_id": pa.array([r[0] for r in rows], pa.int64()),
            "ts": pa.array([t0 + timedelta(seconds=r[1]) for r in rows], pa.timestamp("us", tz="UTC")),
            "bid": pa.array([r[2] for r in rows], pa.float64()),
            "ask": pa.array([float(i) for i in range(len(rows))], pa.float64()),
        }
    )
    expected: dict[int, tuple[int, int]] = {}  # security -> (ts seconds, row index)
    for i, (security, seconds, _) in enumerate(rows):
        if security not in expected or seconds >= expected[security][0]:
            expected[security] = (seconds, i)
    got = {entry["security_id"]: entry for entry in planning.last_quotes(table)}
    assert set(got) == set(expected)
    for security, (seconds, i) in expected.items():
        entry = got[security]
        assert entry["ts_us"] == int((t0 + timedelta(seconds=seconds)).timestamp()) * 1_000_000
        assert entry["ask"] == float(i)  # the row itself
        bid = rows[i][2]
        assert entry["bid"] == (bid if bid is None or math.isfinite(bid) else str(bid))
        assert entry["contributor"] is None and entry["bid_size"] is None
    json.dumps(list(got.values()), allow_nan=False)  # valid JSON: no NaN or Infinity tokens

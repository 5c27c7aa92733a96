"""The windows a ``replace`` call may clear, judged by a reference model of plain sets of microseconds."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

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

"""``replace`` never deletes rows another batch of the same write just wrote, wherever batch boundaries fall.

Quotes from several contributors share a timestamp; a batch boundary inside such a run used to let the next
batch's replace window delete the previous batch's rows at that time (fewer rows stored than written).
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import TestDatabase
from tests.integration.facade import Feature
from tests.integration.market import T0, Market, count

_sources = itertools.count()


def runs_of_equal_times(run_lengths: list[int], symbols: int) -> pa.Table:
    """Quotes whose timestamps come in runs (several contributors quoting in the same minute)."""
    ts, names, bids = [], [], []
    for minute, length in enumerate(run_lengths):
        for k in range(length):
            ts.append(T0 + timedelta(minutes=minute))
            names.append(f"RPL{k % symbols}")
            bids.append(100.0 + minute + k / 100)
    bid = np.array(bids)
    return pa.table(
        {
            "ts": pa.array(ts, pa.timestamp("us", "UTC")),
            "symbol": names,
            "bid": bid,
            "ask": bid + 0.02,
            "bid_size": np.full(len(ts), 100.0),
            "ask_size": np.full(len(ts), 200.0),
        }
    )


def as_input(table: pa.Table, form: str, batch_rows: int) -> Any:
    """The same rows as an in-memory table, a stream (RecordBatchReader) or a list of row dicts."""
    if form == "stream":
        batches = table.to_batches(max_chunksize=max(1, batch_rows // 2 + 1))
        return pa.RecordBatchReader.from_batches(table.schema, batches)
    if form == "rows":
        return table.to_pylist()
    return table


@pytest.fixture(scope="module")
def seeded(db: TestDatabase) -> TestDatabase:
    market = Market("sync", db)
    try:
        market.write_quotes(runs_of_equal_times([4], 4), source="rpl-seed", create_securities=True)
    finally:
        market.close()
    return db


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    run_lengths=st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=25),
    symbols=st.integers(min_value=1, max_value=3),
    batch_rows=st.integers(min_value=1, max_value=40),
    form=st.sampled_from(["table", "stream", "rows"]),
    shuffled=st.booleans(),
)
def test_replace_keeps_every_row_whatever_the_batches(
    md: Feature,
    seeded: TestDatabase,
    run_lengths: list[int],
    symbols: int,
    batch_rows: int,
    form: str,
    shuffled: bool,
) -> None:
    source = f"rpl-{md.kind}-{next(_sources)}"
    table = runs_of_equal_times(run_lengths, symbols)
    if shuffled:  # unsorted input: batches' windows overlap anywhere, not only at a shared timestamp
        table = table.take(pa.array(np.random.default_rng(len(run_lengths)).permutation(table.num_rows)))
    n = table.num_rows
    first = md.write_quotes(as_input(table, form, batch_rows), source=source, batch_rows=batch_rows)
    assert first.written == n
    again = md.write_quotes(
        as_input(table, form, batch_rows), source=source, on_conflict="replace", batch_rows=batch_rows
    )
    assert (again.written, again.replaced) == (n, n)
    assert count(seeded, "quotes", "source = %s", (source,)) == n
    changed = table.set_column(2, "bid", pa.array(np.full(n, 7.0)))
    third = md.write_quotes(
        as_input(changed, form, batch_rows), source=source, on_conflict="replace", batch_rows=batch_rows
    )
    assert (third.written, third.replaced) == (n, n)
    assert count(seeded, "quotes", "source = %s AND bid = 7.0", (source,)) == n
    assert count(seeded, "quotes", "source = %s", (source,)) == n
    assert sum(c["row_count"] for c in md.coverage(source=source)) == n


def test_replace_across_a_shared_timestamp_at_a_batch_boundary(md: Feature, seeded: TestDatabase) -> None:
    """The reported case: a run of equal timestamps cut by the batch boundary (3 + 3 rows at 00:01, batches of 5)."""
    source = f"rpl-edge-{md.kind}"
    table = runs_of_equal_times([2, 6, 2], 3)
    md.write_quotes(table, source=source)
    stream = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=5))
    result = md.write_quotes(stream, source=source, on_conflict="replace", batch_rows=5)
    assert (result.written, result.replaced) == (10, 10)
    assert count(seeded, "quotes", "source = %s", (source,)) == 10


def test_replace_rewrites_only_the_windows_that_changed(md: Feature, seeded: TestDatabase) -> None:
    """A file ingested again with one symbol's quotes corrected: that symbol's window is replaced, the others are
    left as stored (the same rows, not deleted and inserted again), and the table holds exactly the new file."""
    source = f"rpl-diff-{md.kind}"
    table = runs_of_equal_times([3, 3, 3, 3], 3)  # RPL0, RPL1, RPL2 at each of 4 minutes
    md.write_quotes(table, source=source)
    before = physical_rows(seeded, source)
    symbols = table.column("symbol").to_pylist()
    corrected = table.set_column(
        2,
        "bid",
        pa.array([7.0 if s == "RPL1" else b for s, b in zip(symbols, table.column("bid").to_pylist(), strict=True)]),
    )
    result = md.write_quotes(corrected, source=source, on_conflict="replace")
    assert (result.written, result.replaced) == (12, 12)
    after = physical_rows(seeded, source)
    with seeded.connect() as conn:
        stored = conn.execute(
            "SELECT s.symbol, q.ts, q.bid FROM data_ingestion.quotes q JOIN shared.securities s USING (security_id)"
            " WHERE q.source = %s ORDER BY 1, 2",
            (source,),
        ).fetchall()
    # The physical rows of RPL0 and RPL2 are the ones stored before; RPL1's are new.
    kept = {k for k, symbol in before.items() if symbol != "RPL1"}
    assert kept <= set(after)
    assert not {k for k, symbol in before.items() if symbol == "RPL1"} & set(after)
    expected = sorted(
        (s, t, b)
        for s, t, b in zip(symbols, table.column("ts").to_pylist(), corrected.column("bid").to_pylist(), strict=True)
    )
    assert stored == expected
    assert count(seeded, "quotes", "source = %s AND bid = 7.0", (source,)) == 4
    assert sum(c["row_count"] for c in md.coverage(source=source)) == 12


def physical_rows(db: TestDatabase, source: str) -> dict[str, str]:
    """Where each stored quote of ``source`` physically is (ctid and partition), with its symbol."""
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT q.ctid::text || q.tableoid::text, s.symbol FROM data_ingestion.quotes q"
            " JOIN shared.securities s USING (security_id) WHERE q.source = %s",
            (source,),
        ).fetchall()
    return {str(key): str(symbol) for key, symbol in rows}

"""Historical order replays for backtests: ``db.replay`` of the sync Database.

Three ways to play the stored ``order_book_events`` of some securities over [start, end), each a stream of Arrow
record batches (ts, symbol, source, event_type, order_ref, side, price, size, sequence, then replay columns):

- ``chronological``: the events in time order (ties: security, source, sequence).
- ``randomized``: the events of each clock-aligned window (``window="5min"``) shuffled, seeded; every event is
  played exactly once and never leaves its window. ``replay_ts`` is the clock of the replay: the window's times in
  order, so a consumer still sees time move forward.
- ``bootstrap``: ``samples`` resampled series, seeded. ``method="iid"`` draws events with replacement (as many as
  the series has); ``method="block"`` cuts [start, end) into blocks of ``block`` and draws that many blocks with
  replacement, laid end to end (``replay_ts`` = the slot's start + the event's offset in its block). Edge rule:
  when the span is not a multiple of the block, the last block is shorter (a slot holding it has a quiet tail).
  A block longer than the series is a ValidationError. The bootstrap holds the range's events in memory.

The same seed gives byte-identical batches; a window or sample is drawn from ``default_rng([seed, key])``, so it
does not depend on how the range is batched.
"""

# WARNING: generated from replay_async.py by tools/async_to_sync.py; edit the async source and run
# `python tools/async_to_sync.py`. A unit test fails when this file is stale.

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa

from tradedb.books import _engine as engine
from tradedb.books import _replay as rp
from tradedb.books import _sql as q
from tradedb.columnar.reader import copy_arrow
from tradedb.durations import parse_span
from tradedb.errors import NotFoundError, ValidationError
from tradedb.marketdata import check_range

if TYPE_CHECKING:
    from tradedb.db.connections import Connections
    from tradedb.marketdata.api import MarketData

_US = timedelta(microseconds=1)


class Replay:
    """The replay API of one Database (``db.replay``)."""

    def __init__(self, db: Connections, market_data: MarketData) -> None:
        self._db = db
        self._md = market_data

    def chronological(
        self,
        symbols: Sequence[str],
        start: Any,
        end: Any,
        *,
        source: str | None = None,
        exchange: str | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """The events of ``symbols`` in [start, end) in time order."""
        for batch in self._stream(symbols, start, end, source, exchange):
            yield batch

    def randomized(
        self,
        symbols: Sequence[str],
        start: Any,
        end: Any,
        *,
        window: str = "5min",
        seed: int,
        source: str | None = None,
        exchange: str | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """The events of ``symbols`` in [start, end), shuffled within clock-aligned windows of ``window``."""
        shuffle = rp.WindowShuffle(parse_span(window, what="window") // _US, rp.check_seed(seed))
        for batch in self._stream(symbols, start, end, source, exchange):
            played = shuffle.feed(pa.Table.from_batches([batch]))
            if played is not None:
                yield played.to_batches()[0]
        rest = shuffle.finish()
        if rest is not None:
            yield rest.to_batches()[0]

    def bootstrap(
        self,
        symbols: Sequence[str],
        start: Any,
        end: Any,
        *,
        method: Literal["iid", "block"] = "block",
        block: str = "30min",
        samples: int = 1,
        seed: int,
        source: str | None = None,
        exchange: str | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """``samples`` bootstrap resamples of the events of ``symbols`` in [start, end), one batch per sample."""
        if method not in ("iid", "block"):
            raise ValidationError(f"method {method!r}: expected iid or block")
        seed = rp.check_seed(seed)
        count = rp.check_samples(samples)
        lo, hi = check_range(start, end)
        blocks = rp.Blocks(lo, hi, parse_span(block, what="block")) if method == "block" else None
        batches = [b for b in self._stream(symbols, lo, hi, source, exchange)]
        series = pa.Table.from_batches(batches).combine_chunks()
        ts = rp.micros(series)
        if blocks is not None:  # the same for every sample: each event's block, and where each block starts
            start_us, length = engine.micros(lo), blocks.length // _US
            of = blocks.of(ts, start_us)
            starts = np.searchsorted(of, np.arange(blocks.count + 1))
            offset = ts - (start_us + of * length)  # each event's time inside its block
        for sample in range(count):
            if blocks is None:
                drawn = series.take(pa.array(rp.draw_events(series.num_rows, seed, sample)))
                clock = ts  # slot i plays at the i-th time of the series
                slot = np.arange(series.num_rows, dtype=np.int64)
            else:
                chosen = rp.draw_blocks(blocks.count, seed, sample)
                parts = [np.arange(starts[b], starts[b + 1]) for b in chosen.tolist()]
                take = np.concatenate(parts) if parts else np.empty(0, np.int64)
                slot = np.repeat(np.arange(len(chosen)), [len(p) for p in parts]).astype(np.int64)
                clock = start_us + slot * length + offset[take]
                drawn = series.take(pa.array(take))
            out = drawn.append_column("replay_ts", pa.array(clock, pa.int64()).cast(pa.timestamp("us", tz="UTC")))
            out = out.append_column("sample", pa.array(np.full(out.num_rows, sample, np.int32)))
            out = out.append_column("slot", pa.array(slot))
            yield out.combine_chunks().to_batches()[0] if out.num_rows else pa.RecordBatch.from_pylist([], out.schema)

    def _stream(
        self, symbols: Sequence[str], start: Any, end: Any, source: str | None, exchange: str | None
    ) -> Iterator[pa.RecordBatch]:
        lo, hi = check_range(start, end)
        names = _check_symbols(symbols)
        ids = self._md.security_ids(names, exchange=exchange)
        order = np.array(sorted(ids.values()), np.int64)
        by_id = {v: k for k, v in ids.items()}
        dictionary = pa.array([by_id[int(i)] for i in order], pa.string())
        rows = 0
        for raw in copy_arrow(self._db, q.replay_events(order.tolist(), lo, hi, source), q.schema(q.REPLAY_COLUMNS)):
            rows += raw.num_rows
            index = np.searchsorted(order, raw["security_id"].to_numpy()).astype(np.int32)
            symbol = pa.DictionaryArray.from_arrays(pa.array(index), dictionary)
            table = raw.drop_columns(["security_id"]).add_column(1, "symbol", symbol)
            for batch in table.to_batches():
                yield batch
        if not rows:
            where = f" from source {source!r}" if source is not None else ""
            raise NotFoundError(
                f"no order book events for {', '.join(names)}{where} in [{lo.isoformat()}, {hi.isoformat()})"
            )


def _check_symbols(symbols: Sequence[str]) -> list[str]:
    if isinstance(symbols, str) or not symbols or not all(isinstance(s, str) and s for s in symbols):
        raise ValidationError("symbols: expected a non-empty list of symbols")
    return list(dict.fromkeys(symbols))

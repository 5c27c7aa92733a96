"""Replay orders without I/O: window shuffles and bootstrap draws, seeded and independent of batch boundaries.

Randomness comes from ``numpy.random.default_rng([seed, key])`` where the key names the window (its index since
the epoch) or the bootstrap sample, so a window is shuffled the same way whichever range or batch it is read in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa

from tradedb.errors import ValidationError

#: Window keys are offset so keys before 1970 stay non-negative (SeedSequence takes non-negative entropy).
_KEY_OFFSET = 1 << 62


def check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValidationError(f"seed {seed!r}: expected a non-negative whole number")
    return seed


def check_samples(samples: object) -> int:
    if isinstance(samples, bool) or not isinstance(samples, int) or samples <= 0:
        raise ValidationError(f"samples {samples!r}: expected a whole number, at least 1")
    return samples


def window_keys(ts_us: np.ndarray, window_us: int) -> np.ndarray:
    """The window (index since the epoch) of each time, in microseconds."""
    return np.asarray(np.floor_divide(ts_us, window_us))


def shuffle_windows(keys: np.ndarray, seed: int) -> np.ndarray:
    """A permutation of positions that moves every event only inside its window (``keys`` sorted ascending):
    position i of the result holds the event to play i-th."""
    order = np.arange(len(keys))
    if not len(keys):
        return order
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    ends = np.r_[starts[1:], len(keys)]
    for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
        rng = np.random.default_rng([seed, int(keys[lo]) + _KEY_OFFSET])
        order[lo:hi] = lo + rng.permutation(hi - lo)
    return order


class WindowShuffle:
    """Shuffle a chronological stream of tables window by window: a window is played only once it is complete
    (an event of a later window arrived, or the stream ended), so windows cut by batch edges lose nothing."""

    def __init__(self, window_us: int, seed: int) -> None:
        self.window_us = window_us
        self.seed = seed
        self.held: pa.Table | None = None

    def feed(self, table: pa.Table) -> pa.Table | None:
        """Take the next table of the stream; return the complete windows shuffled (None when none is)."""
        if self.held is not None:
            table = pa.concat_tables([self.held, table])
        keys = window_keys(micros(table), self.window_us)
        if not len(keys):
            self.held = table
            return None
        cut = int(np.searchsorted(keys, keys[-1], side="left"))  # the last window may go on: hold it back
        self.held = table.slice(cut)
        return self._shuffled(table.slice(0, cut), keys[:cut]) if cut else None

    def finish(self) -> pa.Table | None:
        """The last window, shuffled (None when nothing is held)."""
        held, self.held = self.held, None
        if held is None or not held.num_rows:
            return None
        return self._shuffled(held, window_keys(micros(held), self.window_us))

    def _shuffled(self, table: pa.Table, keys: np.ndarray) -> pa.Table:
        order = shuffle_windows(keys, self.seed)
        return table.take(pa.array(order)).append_column("replay_ts", table["ts"]).combine_chunks()


def micros(table: pa.Table) -> np.ndarray:
    """The ``ts`` column of ``table`` in microseconds since the epoch."""
    return np.asarray(table["ts"].cast(pa.int64()).to_numpy(zero_copy_only=False))


@dataclass(frozen=True)
class Blocks:
    """The series [start, end) cut into blocks of ``length``; the last block is shorter when the span is not a
    multiple of the length (the edge rule)."""

    start: datetime
    end: datetime
    length: timedelta

    def __post_init__(self) -> None:
        if self.length > self.end - self.start:
            raise ValidationError(
                f"block {_span(self.length)} is longer than the series ({_span(self.end - self.start)} from "
                f"{self.start.isoformat()} to {self.end.isoformat()})"
            )

    @property
    def count(self) -> int:
        return math.ceil((self.end - self.start) / self.length)

    def of(self, ts_us: np.ndarray, start_us: int) -> np.ndarray:
        """The block of each time (microseconds)."""
        return np.asarray(np.floor_divide(ts_us - start_us, int(self.length / timedelta(microseconds=1))))


def draw_blocks(count: int, seed: int, sample: int) -> np.ndarray:
    """``count`` block indices drawn uniformly with replacement for one sample."""
    return np.random.default_rng([seed, sample]).integers(0, count, count)


def draw_events(count: int, seed: int, sample: int) -> np.ndarray:
    """``count`` event positions drawn uniformly with replacement for one sample (iid bootstrap)."""
    return np.random.default_rng([seed, sample]).integers(0, count, count)


def _span(value: timedelta) -> str:
    seconds = value.total_seconds()
    for unit, size in (("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds}s"

"""Replay orders without I/O: window shuffles and bootstrap draws, seeded and independent of batch boundaries.

Randomness comes from ``numpy.random.default_rng([seed, key])`` where the key names the window (its index since
the epoch) or the bootstrap sample, so a window is shuffled the same way whichever range or batch it is read in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

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

"""The book engine: apply coded events to array state, one pass, compiled by numba when it is installed.

Everything here works on integers and floats only (the caller codes order refs, sides and prices into dense
indices), so the loop compiles to machine code. Without numba the same functions run as Python (the results are
the same; a unit test runs both), about a hundred times slower.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numpy as np
import numpy.typing as npt

F = TypeVar("F", bound=Callable[..., Any])

try:
    from numba import njit as _njit

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - numba is a dependency of the books extra and of dev
    HAVE_NUMBA = False


def compiled(fn: F) -> F:
    """Compile ``fn`` with numba (cached on disk) when numba is there; else return it as it is."""
    if not HAVE_NUMBA:
        return fn
    return cast(F, _njit(cache=True, nogil=True)(fn))


# Event codes (see schema.data_ingestion.BOOK_EVENT_TYPES for the names).
NOOP, NEW, CANCEL, EXECUTE, MODIFY, CLEAR = 0, 1, 2, 3, 4, 5
# Finding codes, 0 for none.
UNKNOWN_ORDER, NEGATIVE_SIZE, CROSSED_BOOK, DUPLICATE_ORDER, MISSING_VALUE = 1, 2, 3, 4, 5
# Policies.
REJECT, QUARANTINE, LOG = 0, 1, 2
BID, ASK = 0, 1
#: Sizes within this much of zero are zero (sizes are floats: 0.3 - 0.1 - 0.2 is not 0).
EPS = 1e-9
Array = npt.NDArray[Any]


class State:
    """The book: per order (dense index) whether it rests, its side, level, size, queue rank and since when;
    per side and level the size and order count; the best level of each side; the next queue rank."""

    def __init__(self, orders: int, levels: int) -> None:
        self.alive = np.zeros(orders, np.bool_)
        self.side = np.zeros(orders, np.int8)
        self.level = np.zeros(orders, np.int32)
        self.size = np.zeros(orders, np.float64)
        self.rank = np.zeros(orders, np.int64)
        self.since = np.zeros(orders, np.int64)
        self.level_size = np.zeros((2, levels), np.float64)
        self.level_count = np.zeros((2, levels), np.int32)
        # best[BID] = -1 and best[ASK] = levels when a side is empty; next_rank in best[2].
        self.best = np.array([-1, levels, 0], np.int64)

    def arrays(self) -> tuple[Array, Array, Array, Array, Array, Array, Array, Array, Array]:
        return (
            self.alive,
            self.side,
            self.level,
            self.size,
            self.rank,
            self.since,
            self.level_size,
            self.level_count,
            self.best,
        )


@compiled
def _add(
    o: int,
    side: int,
    lvl: int,
    size: float,
    ts: int,
    alive: Array,
    o_side: Array,
    o_level: Array,
    o_size: Array,
    rank: Array,
    since: Array,
    level_size: Array,
    level_count: Array,
    best: Array,
) -> None:
    alive[o] = True
    o_side[o] = side
    o_level[o] = lvl
    o_size[o] = size
    rank[o] = best[2]
    best[2] += 1
    since[o] = ts
    level_size[side, lvl] += size
    level_count[side, lvl] += 1
    if side == 0 and lvl > best[0]:
        best[0] = lvl
    if side == 1 and lvl < best[1]:
        best[1] = lvl


@compiled
def _remove(
    o: int,
    alive: Array,
    o_side: Array,
    o_level: Array,
    o_size: Array,
    level_size: Array,
    level_count: Array,
    best: Array,
) -> None:
    side = o_side[o]
    lvl = o_level[o]
    alive[o] = False
    level_count[side, lvl] -= 1
    if level_count[side, lvl] == 0:
        level_size[side, lvl] = 0.0
        levels = level_count.shape[1]
        if side == 0 and lvl == best[0]:
            j = lvl - 1
            while j >= 0 and level_count[0, j] == 0:
                j -= 1
            best[0] = j
        elif side == 1 and lvl == best[1]:
            j = lvl + 1
            while j < levels and level_count[1, j] == 0:
                j += 1
            best[1] = j
    else:
        level_size[side, lvl] -= o_size[o]
    o_size[o] = 0.0


@compiled
def _crosses(
    side: int,
    lvl: int,
    best: Array,
    levels: int,
) -> bool:
    if side == 0:
        return bool(best[1] < levels and lvl >= best[1])
    return bool(best[0] >= 0 and lvl <= best[0])


@compiled
def run(
    kind: Array,
    side: Array,
    level: Array,
    size: Array,
    order: Array,
    ts: Array,
    policy: int,
    alive: Array,
    o_side: Array,
    o_level: Array,
    o_size: Array,
    rank: Array,
    since: Array,
    level_size: Array,
    level_count: Array,
    best: Array,
    findings: Array,
    depth: int,
    out_level: Array,
    out_size: Array,
    out_count: Array,
) -> int:
    """Apply events in order; write a finding code per event; with ``depth`` > 0, write the top ``depth`` levels
    of both sides after every event into ``out_*`` (level -1 where a side has fewer levels). Return the number of
    events applied: under REJECT, the index of the first event with a finding (its code is written)."""
    levels = level_count.shape[1]
    n: int = kind.shape[0]
    for i in range(n):
        k = kind[i]
        o = order[i]
        finding = 0
        if k == NEW or k == MODIFY:
            s = side[i]
            lvl = level[i]
            q = size[i]
            if o < 0 or lvl < 0 or np.isnan(q) or (k == NEW and s < 0):
                finding = MISSING_VALUE
            elif k == MODIFY and not alive[o]:
                finding = UNKNOWN_ORDER
                if s < 0:
                    finding = MISSING_VALUE
                elif policy == LOG:  # as the venue means it: a modify of an order not seen is an add
                    _add(
                        o, s, lvl, q, ts[i], alive, o_side, o_level, o_size, rank, since, level_size, level_count, best
                    )
            else:
                if k == MODIFY:
                    s = o_side[o]
                if k == NEW and alive[o]:
                    finding = DUPLICATE_ORDER
                    if policy == LOG:
                        _remove(o, alive, o_side, o_level, o_size, level_size, level_count, best)
                crossing = (k == NEW or lvl != o_level[o]) and _crosses(s, lvl, best, levels)
                if crossing and finding == 0:
                    finding = CROSSED_BOOK
                if finding == 0 or policy == LOG:
                    if k == NEW or not alive[o]:
                        _add(
                            o,
                            s,
                            lvl,
                            q,
                            ts[i],
                            alive,
                            o_side,
                            o_level,
                            o_size,
                            rank,
                            since,
                            level_size,
                            level_count,
                            best,
                        )
                    elif q <= EPS:
                        _remove(o, alive, o_side, o_level, o_size, level_size, level_count, best)
                    elif lvl != o_level[o] or q > o_size[o] + EPS:
                        # A new price or a larger size loses the order's place in the queue.
                        _remove(o, alive, o_side, o_level, o_size, level_size, level_count, best)
                        _add(
                            o,
                            s,
                            lvl,
                            q,
                            ts[i],
                            alive,
                            o_side,
                            o_level,
                            o_size,
                            rank,
                            since,
                            level_size,
                            level_count,
                            best,
                        )
                    else:
                        level_size[s, lvl] += q - o_size[o]
                        o_size[o] = q
        elif k == CANCEL or k == EXECUTE:
            q = size[i]
            if o < 0 or not alive[o]:
                finding = UNKNOWN_ORDER
            elif np.isnan(q) or abs(q - o_size[o]) <= EPS * max(1.0, q):
                _remove(o, alive, o_side, o_level, o_size, level_size, level_count, best)
            elif q > o_size[o]:
                finding = NEGATIVE_SIZE
                if policy == LOG:
                    _remove(o, alive, o_side, o_level, o_size, level_size, level_count, best)
            else:
                o_size[o] -= q
                level_size[o_side[o], o_level[o]] -= q
        elif k == CLEAR:
            alive[:] = False
            o_size[:] = 0.0
            level_size[:, :] = 0.0
            level_count[:, :] = 0
            best[0] = -1
            best[1] = levels
        findings[i] = finding
        if finding != 0 and policy == REJECT:
            return i
        if depth > 0:
            j = best[0]
            d = 0
            while d < depth:
                while j >= 0 and level_count[0, j] == 0:
                    j -= 1
                if j < 0:
                    out_level[i, 0, d] = -1
                else:
                    out_level[i, 0, d] = j
                    out_size[i, 0, d] = level_size[0, j]
                    out_count[i, 0, d] = level_count[0, j]
                    j -= 1
                d += 1
            j = best[1]
            d = 0
            while d < depth:
                while j < levels and level_count[1, j] == 0:
                    j += 1
                if j >= levels:
                    out_level[i, 1, d] = -1
                else:
                    out_level[i, 1, d] = j
                    out_size[i, 1, d] = level_size[1, j]
                    out_count[i, 1, d] = level_count[1, j]
                    j += 1
                d += 1
    return n

"""The book engine: apply coded events to array state, one pass, compiled by numba when it is installed.

Everything here works on integers and floats only (the caller codes order refs, sides and prices into dense
indices), so the loop compiles to machine code. Without numba the same functions run as Python (the results are
the same; a unit test runs both), about a hundred times slower.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from tradedb.columnar.compile import compiled

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

    def arrays(self) -> StateArrays:
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


#: The state as the compiled functions take it (one tuple: numba passes it as a struct of arrays).
StateArrays = tuple[Array, Array, Array, Array, Array, Array, Array, Array, Array]


@compiled
def _add(st: StateArrays, o: int, side: int, lvl: int, size: float, ts: int) -> None:
    alive, o_side, o_level, o_size, rank, since, level_size, level_count, best = st
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
def _remove(st: StateArrays, o: int) -> None:
    alive, o_side, o_level, o_size, _rank, _since, level_size, level_count, best = st
    side = o_side[o]
    lvl = o_level[o]
    alive[o] = False
    level_count[side, lvl] -= 1
    if level_count[side, lvl] == 0:
        level_size[side, lvl] = 0.0
        if lvl == best[side]:
            best[side] = _next_level(level_count, side, lvl)
    else:
        level_size[side, lvl] -= o_size[o]
    o_size[o] = 0.0


@compiled
def _next_level(level_count: Array, side: int, j: int) -> int:
    """The first level holding orders after ``j``, going away from the best (-1 or the level count: none)."""
    step = -1 if side == 0 else 1
    j += step
    while 0 <= j < level_count.shape[1] and level_count[side, j] == 0:
        j += step
    return j


@compiled
def _crosses(side: int, lvl: int, best: Array, levels: int) -> bool:
    if side == 0:
        return bool(best[1] < levels and lvl >= best[1])
    return bool(best[0] >= 0 and lvl <= best[0])


@compiled
def _top(st: StateArrays, side: int, i: int, out_level: Array, out_size: Array, out_count: Array) -> None:
    """Write the top levels of one side after event ``i`` (level -1 past the last level holding orders)."""
    level_size, level_count, best = st[6], st[7], st[8]
    j = best[side]
    if not 0 <= j < level_count.shape[1] or level_count[side, j] == 0:
        j = _next_level(level_count, side, j)
    for d in range(out_level.shape[2]):
        if not 0 <= j < level_count.shape[1]:
            out_level[i, side, d] = -1
            continue
        out_level[i, side, d] = j
        out_size[i, side, d] = level_size[side, j]
        out_count[i, side, d] = level_count[side, j]
        j = _next_level(level_count, side, j)


@compiled
def run(
    kind: Array,
    side: Array,
    level: Array,
    size: Array,
    order: Array,
    ts: Array,
    policy: int,
    st: StateArrays,
    findings: Array,
    out_level: Array,
    out_size: Array,
    out_count: Array,
) -> int:
    """Apply events in order; write a finding code per event; when ``out_level`` has room for levels (its last
    dimension), write the top levels of both sides after every event into ``out_*`` (level -1 where a side has
    fewer). Return the number of events applied: under REJECT, the index of the first event with a finding (its
    code is written)."""
    alive, o_side, o_level, o_size = st[0], st[1], st[2], st[3]
    level_size, level_count, best = st[6], st[7], st[8]
    levels = level_count.shape[1]
    n: int = kind.shape[0]
    emit = out_level.shape[0] > 0 and out_level.shape[2] > 0
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
                    _add(st, o, s, lvl, q, ts[i])
            else:
                if k == MODIFY:
                    s = o_side[o]
                if k == NEW and alive[o]:
                    finding = DUPLICATE_ORDER
                    if policy == LOG:
                        _remove(st, o)
                crossing = (k == NEW or lvl != o_level[o]) and _crosses(s, lvl, best, levels)
                if crossing and finding == 0:
                    finding = CROSSED_BOOK
                if finding == 0 or policy == LOG:
                    if k == NEW or not alive[o]:
                        _add(st, o, s, lvl, q, ts[i])
                    elif q <= EPS:
                        _remove(st, o)
                    elif lvl != o_level[o] or q > o_size[o] + EPS:
                        # A new price or a larger size loses the order's place in the queue.
                        _remove(st, o)
                        _add(st, o, s, lvl, q, ts[i])
                    else:
                        level_size[s, lvl] += q - o_size[o]
                        o_size[o] = q
        elif k == CANCEL or k == EXECUTE:
            q = size[i]
            if o < 0 or not alive[o]:
                finding = UNKNOWN_ORDER
            elif np.isnan(q) or abs(q - o_size[o]) <= EPS * max(1.0, q):
                _remove(st, o)
            elif q > o_size[o]:
                finding = NEGATIVE_SIZE
                if policy == LOG:
                    _remove(st, o)
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
        if emit:
            _top(st, 0, i, out_level, out_size, out_count)
            _top(st, 1, i, out_level, out_size, out_count)
    return n

"""Parameter optimizations: ``db.optimizations`` of the sync Database.

An optimization is named per strategy (an Optuna study's name, say); starting it again returns the stored one, so
a crashed search resumes where it was. Each evaluated parameter set is an iteration (parameters, score, metrics,
status, duration, and the backtest run when one was recorded); recording an iteration twice keeps the first.
"""

# WARNING: generated from optimizations_async.py by tools/async_to_sync.py; edit the async source and run
# `python tools/async_to_sync.py`. A unit test fails when this file is stale.

from __future__ import annotations

import builtins
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from tradedb.errors import NotFoundError, ValidationError
from tradedb.strategies import _sql as q
from tradedb.strategies import params as p
from tradedb.strategies.api import Strategies, check_id, check_name

if TYPE_CHECKING:
    from tradedb.db.connections import Connections

METHODS = ("grid", "random", "bayesian", "genetic", "walk_forward")
DIRECTIONS = ("maximize", "minimize")
STATUSES = ("completed", "failed", "pruned")
FINAL = ("completed", "failed", "cancelled")


class Optimizations:
    """The optimizations API of one Database (``db.optimizations``)."""

    def __init__(self, db: Connections, strategies: Strategies) -> None:
        self._db = db
        self._strategies = strategies

    def start(
        self,
        strategy: int | str,
        name: str,
        *,
        objective: str = "sharpe_ratio",
        direction: str = "maximize",
        method: str = "bayesian",
        space: Mapping[str, Any] | None = None,
        version: str | None = None,
    ) -> dict[str, Any]:
        """Create the optimization ``name`` of ``strategy``, or return it when it exists (a resumed search)."""
        name = check_name(name, "optimization name")
        objective = check_name(objective, "objective")
        if direction not in DIRECTIONS:
            raise ValidationError(f"direction must be maximize or minimize, got {direction!r}")
        if method not in METHODS:
            raise ValidationError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        found = self._strategies.get(strategy, version=version)
        row = {
            "strategy_id": found.strategy_id,
            "name": name,
            "method": method,
            "objective": objective,
            "direction": direction,
            "parameter_space": Jsonb(dict(space or {})),
        }
        with self._db.transaction() as conn, conn.cursor(row_factory=dict_row) as cursor:
            cursor.execute(q.INSERT_OPTIMIZATION, row)
            created = cursor.fetchone()
            if created is None:
                cursor.execute(q.OPTIMIZATION_BY_NAME, (found.strategy_id, name))
                created = cursor.fetchone()
        assert created is not None
        if created["objective"] != objective or created["direction"] != direction:
            raise ValidationError(
                f"optimization {name} of {found.label} exists with objective {created['objective']} "
                f"({created['direction']}); give the same or another name"
            )
        return created

    def get(self, optimization_id: int) -> dict[str, Any]:
        row = self._db.fetch_one(q.OPTIMIZATION, (check_id(optimization_id, "optimization_id"),), readonly=False)
        if row is None:
            raise NotFoundError(f"optimization {optimization_id} does not exist")
        return row

    def record_iteration(
        self,
        optimization_id: int,
        iteration: int,
        parameters: Mapping[str, Any],
        *,
        score: float | None = None,
        metrics: Mapping[str, Any] | None = None,
        status: str = "completed",
        duration_seconds: float | None = None,
        run_id: int | None = None,
    ) -> bool:
        """Record one evaluated parameter set; False when that iteration was already recorded (kept as it was).
        Parameters are validated against the strategy (a typed error names every bad one)."""
        run = self.get(optimization_id)
        if isinstance(iteration, bool) or not isinstance(iteration, int) or iteration < 0:
            raise ValidationError(f"iteration must be a non-negative integer, got {iteration!r}")
        if status not in STATUSES:
            raise ValidationError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        if score is not None and (
            isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score)
        ):
            raise ValidationError(f"score must be a finite number or None, got {score!r}")
        if status == "completed" and score is None:
            raise ValidationError("a completed iteration needs its score")
        strategy = self._strategies.get(run["strategy_id"])
        checked = strategy.validate(parameters)
        checked.raise_for_errors(f"{strategy.label}, iteration {iteration}")
        row = {
            "optimization_id": optimization_id,
            "iteration": iteration,
            "parameters": Jsonb(p.json_values(strategy.params, checked.values())),
            "score": None if score is None else float(score),
            "metrics": None if metrics is None else Jsonb(dict(metrics)),
            "status": status,
            "duration_seconds": duration_seconds,
            "backtest_run_id": run_id,
        }
        with self._db.connection() as conn:
            cursor = conn.execute(q.UPSERT_ITERATION, row)
            return cursor.rowcount == 1

    def iterations(
        self, optimization_id: int, *, status: str | None = None, limit: int = 10_000
    ) -> builtins.list[dict[str, Any]]:
        """Iterations in order of their number."""
        self.get(optimization_id)
        query = sql.SQL(q.ITERATIONS).format(order=sql.SQL("iteration"))
        return self._db.fetch_all(
            query, {"optimization_id": optimization_id, "status": status, "limit": limit}, readonly=False
        )

    def best(self, optimization_id: int, n: int = 10) -> builtins.list[dict[str, Any]]:
        """The ``n`` completed iterations with the best score (highest or lowest, as the optimization says)."""
        run = self.get(optimization_id)
        if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
            raise ValidationError(f"n must be a positive integer, got {n!r}")
        order = sql.SQL("score DESC" if run["direction"] == "maximize" else "score ASC")
        return self._db.fetch_all(
            sql.SQL(q.ITERATIONS).format(order=order),
            {"optimization_id": optimization_id, "status": "completed", "limit": n},
            readonly=False,
        )

    def finish(self, optimization_id: int, status: str = "completed") -> dict[str, Any]:
        """Close the optimization with its best score and parameters."""
        if status not in FINAL:
            raise ValidationError(f"status must be one of {', '.join(FINAL)}, got {status!r}")
        run = self.get(optimization_id)
        order = sql.SQL("score DESC" if run["direction"] == "maximize" else "score ASC")
        params = {"optimization_id": optimization_id, "status": status}
        with self._db.transaction() as conn, conn.cursor(row_factory=dict_row) as cursor:
            cursor.execute(sql.SQL(q.FINISH_OPTIMIZATION).format(order=order), params)
            row = cursor.fetchone()
            if row is None:  # no completed iteration: nothing is best
                cursor.execute(q.SET_OPTIMIZATION_STATUS, params)
                row = cursor.fetchone()
        assert row is not None
        return row

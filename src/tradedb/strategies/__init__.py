"""Strategies, their typed parameters and instances; backtests, their metrics, comparisons and optimizations.

``db.strategies`` registers strategies and validates parameters (:mod:`.params`), ``db.backtests`` records runs
at COPY speed and computes their metrics (:mod:`.metrics`), ``report`` writes a tear sheet (:mod:`.report`).
"""

from tradedb.strategies.params import Param, ParamCheck, Validation

__all__ = ["Param", "ParamCheck", "Validation"]

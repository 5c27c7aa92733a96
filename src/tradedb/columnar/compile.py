"""Compile hot loops with numba when it is installed; without it they run as plain Python (same results)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

F = TypeVar("F", bound=Callable[..., Any])

try:
    from numba import njit as _njit

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - numba is a dependency of tradedb; a source checkout may lack it
    HAVE_NUMBA = False


def compiled(fn: F) -> F:
    """Compile ``fn`` with numba (cached on disk) when numba is there; else return it as it is."""
    if not HAVE_NUMBA:
        return fn
    return cast(F, _njit(cache=True, nogil=True)(fn))


__all__ = ["HAVE_NUMBA", "compiled"]

"""Modules the CLI loads when a command first uses them, not when ``tradedb`` starts.

Every command module is imported to build the command tree, so an import at the top of one is paid by every
command, ``--help`` included: the archive's compiled kernels, Alembic, the market-data stack. Imported with
``lazy(...)`` under ``if not TYPE_CHECKING`` (the checker sees the plain import), a module is executed on its first
attribute access.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy(name: str) -> ModuleType:
    """Return module ``name``, executed on first attribute access (at once when it is already imported)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"no module named {name!r}", name=name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:  # as the import system does: the package's attribute is the module
        setattr(sys.modules[parent], child, module)
    loader.exec_module(module)
    return module

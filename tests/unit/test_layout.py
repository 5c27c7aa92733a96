"""The layout's promises that import-linter cannot see: what `import tradedb` loads, and no import cycles."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import grimp

import tradedb.cli


def test_import_tradedb_loads_neither_pyarrow_nor_numpy() -> None:
    probe = (
        "import sys, tradedb; db = tradedb.connect('postgresql://u@localhost/x'); "
        "print(sorted(m for m in ('pyarrow', 'numpy', 'pandas', 'polars') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
    first_use = subprocess.run(
        [sys.executable, "-c", probe.replace("print(", "db.market_data; print(")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "'pyarrow'" in first_use.stdout  # the market data loads them when it is first used


HEAVY = ("sqlalchemy", "alembic", "numba", "pyarrow", "numpy", "pandas", "polars")


def test_the_cli_starts_without_the_heavy_libraries() -> None:
    """Every command module is imported to build the command tree: `tradedb --help` or `tradedb health` must not
    pay for SQLAlchemy's models, Alembic, the compiled kernels or Arrow (they load when a command uses them)."""
    probe = (
        "import sys, importlib.util as u, tradedb.cli; "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r} "
        "and not isinstance(getattr(sys.modules[m].__spec__, 'loader', None), u.LazyLoader)))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
    # A command that needs them still finds them.
    used = subprocess.run(
        [
            sys.executable,
            "-c",
            probe.replace("tradedb.cli;", "tradedb.cli; tradedb.cli.migrations.migrate_module.script_location;"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "'alembic'" in used.stdout


def test_what_the_cli_uses_of_a_lazy_module_is_there() -> None:
    """mypy reads the TYPE_CHECKING imports, where ``package.submodule`` passes although a package does not hold a
    submodule nobody imported: check each ``name.attribute`` of a ``name = lazy("module")`` against the module."""
    missing = []
    for path in sorted((Path(tradedb.cli.__file__).parent).glob("*.py")):
        tree = ast.parse(path.read_text())
        lazies = {
            node.targets[0].id: str(node.value.args[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name)
            and node.value.func.id == "lazy"
            and isinstance(node.value.args[0], ast.Constant)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in lazies:
                module = importlib.import_module(lazies[node.value.id])
                if not hasattr(module, node.attr):
                    missing.append(f"{path.name}: {lazies[node.value.id]}.{node.attr}")
    assert missing == []


def test_no_module_of_tradedb_imports_itself_back() -> None:
    graph = grimp.build_graph("tradedb")
    cycles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            if imported != module and graph.chain_exists(importer=imported, imported=module):
                cycles.append(f"{module} <-> {imported}")
    assert cycles == []

"""Generate src/tradedb/database.py (sync) from src/tradedb/database_async.py (the one source).

Usage: python tools/async_to_sync.py [--check]
With --check, exit 1 when the committed twin differs from what would be generated (a unit test runs this).
The transformation is textual and deliberately small: the async source is written so that dropping
``async``/``await`` and renaming the async types gives the sync code.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "tradedb"
#: (async source, sync twin, the twin's docstring)
PAIRS = [
    (
        "database_async.py",
        "database.py",
        "The sync Database: pooled connections, transactions, retries, service scoping and read replicas.",
    ),
    (
        "execution_async.py",
        "execution.py",
        "Orders, fills and positions that stay exact: ``db.execution`` of a sync Database.",
    ),
    (
        "marketdata_async.py",
        "marketdata.py",
        "Market data at COPY speed: ``db.market_data`` of a sync Database.",
    ),
]

HEADER = (
    "# WARNING: generated from {source} by tools/async_to_sync.py; edit the async source and run\n"
    "# `python tools/async_to_sync.py`. A unit test fails when this file is stale.\n"
)

# (pattern, replacement), applied in order.
REPLACEMENTS: list[tuple[str, str]] = [
    (r"\bAsyncConnectionPool\b", "ConnectionPool"),
    (r"\bAsyncConnection\b", "Connection"),
    (r"\bAsyncIterator\b", "Iterator"),
    (r"\bAsyncDatabase\b", "Database"),
    (r"\bAsyncExecution\b", "Execution"),
    (r"\bAsyncCursor\b", "Cursor"),
    (r"\bexecution_async\b", "execution"),
    (r"\bAsyncMarketData\b", "MarketData"),
    (r"\bAsyncInFlight\b", "InFlight"),
    (r"\bmarketdata_async\b", "marketdata"),
    (r"\bconnect_async\b", "connect"),
    (r"\basynccontextmanager\b", "contextmanager"),
    (r"\basyncio\.sleep\b", "time.sleep"),
    (r"\basyncio\.Lock\b", "threading.Lock"),
    (r"^import asyncio$", "import threading\nimport time"),
    (r"await asyncio\.wrap_future\(([^()]*)\)", r"\1.result()"),
    (r"\basync with\b", "with"),
    (r"\basync for\b", "for"),
    (r"\basync def\b", "def"),
    (r"\bawait ", ""),
    (r"Awaitable\[T\]", "T"),
    (r"Awaitable\[None\]", "None"),
    (r", Awaitable, ", ", "),
    (r", Awaitable,", ","),
    (r"__aenter__", "__enter__"),
    (r"__aexit__", "__exit__"),
    (r"\bdatabase_async\b", "database"),
    (r"The async Database", "The sync Database"),
]


def _ruff(args: list[str], text: str, target: Path) -> str:
    ruff = Path(sys.executable).parent / "ruff"
    result = subprocess.run(
        [str(ruff), *args, "--stdin-filename", str(target)],
        input=text,
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if result.returncode not in (0, 1) or not result.stdout:
        raise SystemExit(f"ruff failed: {result.stderr}")
    return result.stdout


def generate(source: str, target: str, docstring: str) -> str:
    """Return the text of the sync twin of ``source``."""
    text = (PACKAGE / source).read_text()
    for pattern, replacement in REPLACEMENTS:
        text = re.sub(pattern, replacement, text, flags=re.MULTILINE)
    docstring_end = text.index('"""', 3) + 3
    head = f'"""{docstring}\n\nThe twin of ``{source}``, which holds the one source of this logic.\n"""'
    text = head + "\n\n" + HEADER.format(source=source) + text[docstring_end:]
    text = _ruff(["check", "--fix", "--select", "I,F401", "--exit-zero", "-"], text, PACKAGE / target)
    return _ruff(["format", "-"], text, PACKAGE / target)


def main() -> int:
    stale = []
    for source, target, docstring in PAIRS:
        text = generate(source, target, docstring)
        path = PACKAGE / target
        if "--check" in sys.argv:
            if not path.exists() or path.read_text() != text:
                stale.append(target)
            continue
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print(f"stale: {', '.join(stale)}: run `python tools/async_to_sync.py`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

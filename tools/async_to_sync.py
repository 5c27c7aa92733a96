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
SOURCE = ROOT / "src" / "tradedb" / "database_async.py"
TARGET = ROOT / "src" / "tradedb" / "database.py"

HEADER = (
    "# WARNING: generated from database_async.py by tools/async_to_sync.py; edit the async source and run\n"
    "# `python tools/async_to_sync.py`. A unit test fails when this file is stale.\n"
)

# (pattern, replacement), applied in order.
REPLACEMENTS: list[tuple[str, str]] = [
    (r"\bAsyncConnectionPool\b", "ConnectionPool"),
    (r"\bAsyncConnection\b", "Connection"),
    (r"\bAsyncIterator\b", "Iterator"),
    (r"\bAsyncDatabase\b", "Database"),
    (r"\bconnect_async\b", "connect"),
    (r"\basynccontextmanager\b", "contextmanager"),
    (r"\basyncio\.sleep\b", "time.sleep"),
    (r"\basyncio\.Lock\b", "threading.Lock"),
    (r"^import asyncio$", "import threading\nimport time"),
    (r"\basync with\b", "with"),
    (r"\basync for\b", "for"),
    (r"\basync def\b", "def"),
    (r"\bawait ", ""),
    (r"Awaitable\[T\]", "T"),
    (r", Awaitable,", ","),
    (r"__aenter__", "__enter__"),
    (r"__aexit__", "__exit__"),
    (r"\bdatabase_async\b", "database"),
    (r"The async Database", "The sync Database"),
]

SYNC_DOCSTRING = (
    '"""The sync Database: pooled connections, transactions, retries, service scoping and read replicas.\n\n'
    "The twin of ``database_async.py``, which holds the one source of this logic.\n"
    '"""'
)


def _ruff(args: list[str], text: str) -> str:
    ruff = Path(sys.executable).parent / "ruff"
    result = subprocess.run(
        [str(ruff), *args, "--stdin-filename", str(TARGET)],
        input=text,
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if result.returncode not in (0, 1) or not result.stdout:
        raise SystemExit(f"ruff failed: {result.stderr}")
    return result.stdout


def generate() -> str:
    """Return the text of the sync twin."""
    text = SOURCE.read_text()
    for pattern, replacement in REPLACEMENTS:
        text = re.sub(pattern, replacement, text, flags=re.MULTILINE)
    docstring_end = text.index('"""', 3) + 3
    text = SYNC_DOCSTRING + "\n\n" + HEADER + text[docstring_end:]
    text = _ruff(["check", "--fix", "--select", "I,F401", "--exit-zero", "-"], text)
    return _ruff(["format", "-"], text)


def main() -> int:
    text = generate()
    if "--check" in sys.argv:
        if not TARGET.exists() or TARGET.read_text() != text:
            print(f"{TARGET.relative_to(ROOT)} is stale: run `python tools/async_to_sync.py`", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

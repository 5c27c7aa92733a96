"""Generate the sync twin of every ``*_async.py`` module of tradedb (``x_async.py`` -> ``x.py``).

Usage: python tools/async_to_sync.py [--check]
With --check, exit 1 when a committed twin differs from what would be generated (a unit test runs this).
The transformation is textual and deliberately small: an async source is written so that dropping
``async``/``await`` and dropping the ``Async`` prefix of its types gives the sync code. The twin keeps the
source's docstring (with "sync" for "async"); comment lines starting ``# source-only:`` stay in the source.
Its formatting comes from the ruff pinned in pyproject.toml (``dev`` extra), so the check does not depend on
whichever ruff happens to be installed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "tradedb"

HEADER = (
    "# WARNING: generated from {source} by tools/async_to_sync.py; edit the async source and run\n"
    "# `python tools/async_to_sync.py`. A unit test fails when this file is stale.\n"
)

# (pattern, replacement), applied in order.
REPLACEMENTS: list[tuple[str, str]] = [
    (r"\bAsync([A-Z]\w*)", r"\1"),  # AsyncConnectionPool, AsyncIterator, AsyncDatabase, AsyncInFlight, ...
    (r"\b(\w+)_async\b", r"\1"),  # modules (api_async, connections_async) and connect_async
    (r"\basynccontextmanager\b", "contextmanager"),
    (r"\bredis\.asyncio\b", "redis"),  # redis-py's async client has the sync client's API
    (r"\basyncio\.sleep\b", "time.sleep"),
    (r"\basyncio\.Lock\b", "threading.Lock"),
    (r"^import asyncio$", "import threading\nimport time"),
    (r"await asyncio\.wrap_future\(([^()]*)\)", r"\1.result()"),
    (r"await asyncio\.to_thread\(([\w.]+), ", r"\1("),  # blocking I/O: a thread in async code, a call in sync
    (r"\basync with\b", "with"),
    (r"\basync for\b", "for"),
    (r"\basync def\b", "def"),
    (r"\bawait ", ""),
    (r"Awaitable\[T\]", "T"),
    (r"Awaitable\[None\]", "None"),
    (r"Awaitable\[object\]", "object"),
    (r"Awaitable\[(\w+) \| None\]", r"\1 | None"),
    (r", Awaitable, ", ", "),
    (r", Awaitable,", ","),
    (r"\.aclose\(\)", ".close()"),  # redis-py's async client closes with aclose()
    (r"__aenter__", "__enter__"),
    (r"__aexit__", "__exit__"),
    (r"^# source-only:.*\n", ""),
    (r"\bAsync\b", "Sync"),
    (r"\basync\b", "sync"),
]


def sources() -> list[Path]:
    """Every async source of the package (found, not listed, so a new one cannot be forgotten)."""
    return sorted(PACKAGE.rglob("*_async.py"))


def twin_of(source: Path) -> Path:
    return source.with_name(source.name.removesuffix("_async.py") + ".py")


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


def generate(source: Path) -> str:
    """Return the text of the sync twin of ``source``."""
    text = source.read_text()
    docstring_end = text.index('"""', 3) + 3
    docstring, body = text[:docstring_end], text[docstring_end:]
    for pattern, replacement in REPLACEMENTS:
        body = re.sub(pattern, replacement, body, flags=re.MULTILINE)
        if not pattern.startswith(r"\b(\w+)_async"):
            docstring = re.sub(pattern, replacement, docstring, flags=re.MULTILINE)
    text = docstring + "\n\n" + HEADER.format(source=source.name) + body
    target = twin_of(source)
    text = _ruff(["check", "--fix", "--select", "I,F401", "--exit-zero", "-"], text, target)
    return _ruff(["format", "-"], text, target)


def main() -> int:
    stale = []
    for source in sources():
        text = generate(source)
        path = twin_of(source)
        if "--check" in sys.argv:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path.relative_to(ROOT)))
            continue
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print(f"stale: {', '.join(stale)}: run `python tools/async_to_sync.py`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

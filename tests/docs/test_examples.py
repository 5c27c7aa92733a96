"""Every code block of the docs and the README runs as written, against a fresh database per page.

A page's blocks run in order, as a reader would type them: Python blocks in one namespace (in this process),
``sh`` blocks in bash with the installed ``tradedb`` first on PATH. A block is not run only when the line before
it says why (``<!-- no-run: the reason -->``); a ``text`` block after ``<!-- output -->`` is what the block
before it prints (``...`` matches anything, as in doctest). Blocks of other languages (``text``, ``yaml``, ...)
are data. Each page runs in a folder of its own beside a ``shared`` link to the real data, so paths such as
``../shared/data/...`` work as they do from a checkout.
"""

from __future__ import annotations

import doctest
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, SHARED_DATA, TestDatabase, admin, cloned, drop_database

DOCS = REPO / "docs"
PAGES = [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]
RUNNABLE = {"python", "sh"}
DATA = {"text", "yaml", "json", "ini", "toml", "dotenv", "sql", "dockerfile"}
NO_RUN = re.compile(r"^<!-- no-run: (?P<why>.+) -->$")
OUTPUT = "<!-- output -->"
FENCE = re.compile(r"^(?P<indent> *)```(?P<info>.*)$")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    language: str
    code: str
    no_run: str | None  # the reason it is not run
    expected: str | None = None  # the output block that follows it

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of a page, each with its marker and the expected output that follows it."""
    found: list[Block] = []
    lines = page.read_text().splitlines()
    index, before = 0, ""
    while index < len(lines):
        match = FENCE.match(lines[index])
        if not match:
            if lines[index].strip():
                before = lines[index].strip()
            index += 1
            continue
        indent, start = len(match["indent"]), index
        body: list[str] = []
        index += 1
        while index < len(lines) and lines[index].strip() != "```":
            body.append(lines[index][indent:])
            index += 1
        language = match["info"].strip().split(" ")[0].split("{")[0]
        code = "\n".join(body) + "\n"
        no_run = NO_RUN.match(before)
        block = Block(page, start + 1, language, code, no_run["why"] if no_run else None)
        if before == OUTPUT and found:
            found[-1] = Block(**{**found[-1].__dict__, "expected": code})
        else:
            found.append(block)
        before = ""
        index += 1
    return found


def test_the_runner_reads_markers_and_outputs(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- no-run: a synopsis -->\n```sh\ntradedb x [--y]\n```\n\n"
        "```python\nprint(1)\n```\n\n<!-- output -->\n```text\n1\n```\n\n"
        "- a list item:\n\n  ```text\n  data\n  ```\n"
    )
    found = blocks(page)
    assert [(b.language, b.no_run, b.expected, b.code) for b in found] == [
        ("sh", "a synopsis", None, "tradedb x [--y]\n"),
        ("python", None, "1\n", "print(1)\n"),
        ("text", None, None, "data\n"),
    ]
    assert _matches("a ...\n", "a b c\n") and not _matches("a\n", "b\n")


def test_every_block_is_labelled() -> None:
    """A fence without a language, or with one the runner does not know, is neither run nor marked data."""
    unlabelled = [b.where for page in PAGES for b in blocks(page) if b.language not in RUNNABLE | DATA]
    assert unlabelled == [], f"label these blocks with one of {sorted(RUNNABLE | DATA)}: {unlabelled}"


def test_output_blocks_follow_a_block_that_runs() -> None:
    misplaced = [b.where for page in PAGES for b in blocks(page) if b.expected and b.language not in RUNNABLE]
    assert misplaced == []


def _databases(server_url: str) -> set[str]:
    with admin(server_url) as conn:
        return {str(name) for (name,) in conn.execute("SELECT datname FROM pg_database").fetchall()}


@pytest.fixture
def page_db(server_url: str, template_db: str) -> Iterator[TestDatabase]:
    """A fresh database for a page; databases its examples create (a restore drill's) are dropped after it."""
    for database in cloned(server_url, template_db):
        before = _databases(server_url)
        yield database
        for name in _databases(server_url) - before:
            drop_database(server_url, name)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A folder to run a page in, with ``../shared`` pointing at the real data's parent (absent: nothing)."""
    (tmp_path / "checkout").mkdir()
    if SHARED_DATA.is_dir():
        (tmp_path / "shared").symlink_to(SHARED_DATA.parent)
    return tmp_path / "checkout"


def _matches(expected: str, printed: str) -> bool:
    checker = doctest.OutputChecker()
    return checker.check_output(expected, printed, doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)


def _runnable_pages() -> list[Path]:
    return [page for page in PAGES if any(b.language in RUNNABLE and not b.no_run for b in blocks(page))]


@pytest.mark.parametrize("page", _runnable_pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_the_examples_of_a_page_run(
    page: Path,
    page_db: TestDatabase,
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if "../shared/" in page.read_text() and not SHARED_DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"real data not found at {SHARED_DATA}: CI runs the docs' examples on it")
        pytest.skip(f"real data not found at {SHARED_DATA}")
    env = page_db.env(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        TRADEDB_LOG_SPILL_DIR=str(workdir / "log-spill"),
    )
    for name in ("DATABASE_URL", "TRADEDB_ROLE_PREFIX", "PREFECT_DB_NAME", "PREFECT_DB_PASSWORD"):
        monkeypatch.setenv(name, env[name])
    monkeypatch.setenv("TRADEDB_LOG_SPILL_DIR", env["TRADEDB_LOG_SPILL_DIR"])
    for name in ("REDIS_URL", "TRADEDB_REDIS_URL", "TRADEDB_DATABASE_URL", "POSTGRES_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(workdir)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    environment = dict(os.environ)  # an example may set variables (os.environ[...] = ...): they end with the page
    root, handlers = logging.getLogger(), list(logging.getLogger().handlers)
    levels = {name: logging.getLogger(name).level for name in ("tradedb", "tradedb.performance")}
    try:
        for block in blocks(page):
            if block.language not in RUNNABLE or block.no_run:
                continue
            if block.language == "python":
                capsys.readouterr()
                exec(compile(block.code, block.where, "exec"), namespace)
                printed = capsys.readouterr().out
            else:
                done = subprocess.run(
                    ["bash", "-euo", "pipefail", "-c", block.code],
                    env=env,
                    cwd=workdir,
                    capture_output=True,
                    text=True,
                    timeout=600,
                    check=False,
                )
                assert done.returncode == 0, f"{block.where} exited {done.returncode}:\n{done.stdout}{done.stderr}"
                printed = done.stdout
            if block.expected is not None:
                assert _matches(block.expected, printed), (
                    f"{block.where} printed:\n{printed}\nthe page shows:\n{block.expected}"
                )
    finally:
        os.environ.clear()
        os.environ.update(environment)
        for handler in set(root.handlers) - set(handlers):
            root.removeHandler(handler)
            handler.close()
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def test_the_readmes_links_point_at_files_that_exist() -> None:
    """The docs' links are checked by `make docs` (strict); the README is not part of the site, so here."""
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", (REPO / "README.md").read_text())
    local = [t for t in targets if "://" not in t]
    assert len(local) >= 10
    assert [t for t in local if not (REPO / t).is_file()] == []

"""The README's quick start on a fresh clone: `make demo`, then `make test` (its unit layer, to bound the time)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, SHARED_DATA, cli_env, shared_tmpdir

pytestmark = [pytest.mark.slow, pytest.mark.embedded]


@pytest.fixture
def clone() -> Iterator[Path]:
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    root = shared_tmpdir("tradedb-clone-")
    target = root / "tradedb"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(target)], check=True, timeout=120)
    yield target
    shutil.rmtree(root, ignore_errors=True)


def test_quick_start_on_a_fresh_clone(clone: Path) -> None:
    home = clone.parent / "home"
    home.mkdir()
    home.chmod(0o755)
    env = cli_env(TRADEDB_HOME=str(home), PIP_DISABLE_PIP_VERSION_CHECK="1", TRADEDB_SHARED_DATA=str(SHARED_DATA))
    env.pop("VIRTUAL_ENV", None)
    try:
        demo = subprocess.run(
            ["make", "demo"], cwd=clone, env=env, capture_output=True, text=True, timeout=1200, check=False
        )
        assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
        assert "bars loaded" in demo.stdout
        assert (clone / ".venv" / "bin" / "tradedb").exists()
        test = subprocess.run(
            ["make", "test", "PYTEST_ARGS=tests/unit -q -p no:cacheprovider"],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert test.returncode == 0, test.stdout[-3000:] + test.stderr[-3000:]
        assert " passed" in test.stdout
    finally:
        subprocess.run(
            [str(clone / ".venv" / "bin" / "tradedb"), "db", "stop"],
            env=env,
            capture_output=True,
            check=False,
            timeout=120,
        )
    assert os.path.exists(home / "pgdata" / "PG_VERSION")

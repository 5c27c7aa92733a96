"""Revisions are frozen text: their SQL never depends on the clock, the settings or today's models, and a database
migrated by an earlier release upgrades to the new head and verifies."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine

from tests.conftest import REPO, ROLE_PREFIX, TestDatabase, cli_env, drop_database, make_settings, run_cli
from tradedb.ops import migrate
from tradedb.schema import partitioned_tables

#: The last release before revisions were frozen (0001 baked partitions around "now" into its SQL).
RELEASE = "aeba82c"


def offline_sql_at(moment: datetime, tick: timedelta) -> str:
    settings = make_settings("postgresql://u@localhost:5432/x", "frozen", tick_partition_interval=tick)
    with time_machine.travel(moment, tick=False):
        return migrate.offline_sql(settings=settings)


def test_offline_sql_is_the_same_whatever_the_date_and_the_settings() -> None:
    early = offline_sql_at(datetime(2001, 2, 3, 4, 5, tzinfo=UTC), timedelta(minutes=1))
    late = offline_sql_at(datetime(2049, 11, 30, 23, 59, tzinfo=UTC), timedelta(days=7))
    assert early == late
    assert "CREATE TABLE execution.orders" in early
    assert 'PARTITION OF "data_ingestion"."quotes" DEFAULT' in early
    assert "FOR VALUES FROM" not in early  # no partition of a date: those are created at run time
    for table in partitioned_tables():  # the frozen list still names every partitioned table of the models
        assert f'"{table.schema}"."{table.name}_default" PARTITION OF "{table.schema}"."{table.name}" DEFAULT' in early


@pytest.fixture
def release_source() -> Iterator[Path]:
    """The package as released at RELEASE, from this repository's history."""
    found = subprocess.run(
        ["git", "-C", str(REPO), "cat-file", "-e", f"{RELEASE}^{{commit}}"], capture_output=True, check=False
    )
    if shutil.which("git") is None or found.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"release {RELEASE} is not in this clone's history: CI needs the full history")
        pytest.skip(f"release {RELEASE} is not in this clone's history")
    folder = Path(tempfile.mkdtemp(prefix="tradedb-release-"))
    archive = folder / "release.tar"
    subprocess.run(["git", "-C", str(REPO), "archive", "-o", str(archive), RELEASE, "src"], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    yield folder / "src"
    shutil.rmtree(folder, ignore_errors=True)


def test_a_database_of_the_last_release_upgrades_and_verifies(server_url: str, release_source: Path) -> None:
    name = f"tdbt_release_{os.getpid()}"
    db = TestDatabase(name, server_url, make_settings(server_url, name))
    old_env = {
        **cli_env(
            DATABASE_URL=db.url,
            TRADING_DB_NAME=name,
            PREFECT_DB_NAME=db.settings.prefect_db_name,
            TRADEDB_ROLE_PREFIX=ROLE_PREFIX,
        ),
        "PYTHONPATH": str(release_source),
    }
    try:
        old = subprocess.run(
            [sys.executable, "-c", "import tradedb.cli as c; c.main()", "setup"],
            env=old_env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert old.returncode == 0, old.stderr
        assert "migrated 0001, 0002, 0003, 0004" in old.stdout
        for command in (("migrate", "upgrade"), ("verify",), ("migrate", "check")):
            result = run_cli(*command, env=db.env())
            assert result.returncode == 0, (command, result.stdout, result.stderr)
        assert migrate.status(settings=db.settings, url=db.url).pending == ()
    finally:
        drop_database(server_url, name)
        drop_database(server_url, db.settings.prefect_db_name)

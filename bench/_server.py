"""The server a benchmark runs against: TRADEDB_BENCH_DATABASE_URL, else TRADEDB_TEST_DATABASE_URL, else an
embedded server started for the run."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

from tradedb.db.embedded import EmbeddedServer
from tradedb.ops import setup as provision
from tradedb.settings import Settings, normalize_url, with_dbname


@contextlib.contextmanager
def bench_server() -> Iterator[str]:
    """Yield an admin URL (database ``postgres``)."""
    url = os.environ.get("TRADEDB_BENCH_DATABASE_URL") or os.environ.get("TRADEDB_TEST_DATABASE_URL")
    if url:
        yield normalize_url(url, variable="TRADEDB_BENCH_DATABASE_URL")
        return
    home = Path(tempfile.mkdtemp(prefix="tradedb-bench-", dir="/tmp"))
    home.chmod(0o755)
    server = EmbeddedServer(Settings(_env_file=None, home=home))
    server.start()
    try:
        yield server.url("postgres")
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


@contextlib.contextmanager
def bench_database(admin_url: str, name: str, **overrides: Any) -> Iterator[tuple[str, Settings]]:
    """A trading database ``name`` set up from nothing by ``tradedb setup``, dropped afterwards: its URL and
    settings (``overrides``: other settings)."""
    settings = Settings(_env_file=None, trading_db_name=name, role_prefix="tdbbench_", **overrides)

    def drop() -> None:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    drop()
    provision.setup(settings=settings, url=admin_url)
    try:
        yield with_dbname(admin_url, name), settings
    finally:
        drop()

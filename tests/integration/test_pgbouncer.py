"""PgBouncer in transaction mode in front of PostgreSQL: no prepared statements, no leaked session state,
migrations through the direct URL."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from pydantic import SecretStr

import tradedb
from tests.conftest import ROLE_PREFIX, TestDatabase, run_cli, shared_tmpdir
from tests.servers import free_port, run_as_user
from tradedb.ops import migrate

PGBOUNCER = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if os.path.exists("/usr/sbin/pgbouncer") else None)
pytestmark = pytest.mark.skipif(PGBOUNCER is None, reason="pgbouncer is not installed (tools/system-deps.sh)")


class Bouncer:
    def __init__(self, server: str) -> None:
        params = psycopg.conninfo.conninfo_to_dict(server)
        self.folder = shared_tmpdir("tradedb-pgbouncer-")
        self.port = free_port()
        target = " ".join(f"{k}={params[k]}" for k in ("host", "port", "user", "password") if params.get(k))
        config = self.folder / "pgbouncer.ini"
        config.write_text(
            f"[databases]\n* = {target}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {self.port}\n"
            "auth_type = any\npool_mode = transaction\nmax_client_conn = 200\ndefault_pool_size = 4\n"
            f"unix_socket_dir =\nlogfile = {self.folder / 'pgbouncer.log'}\npidfile = {self.folder / 'pgbouncer.pid'}\n"
        )
        user = run_as_user()
        if user is not None:
            for path in (self.folder, config):
                os.chown(path, user.pw_uid, user.pw_gid)
        args = [str(PGBOUNCER), "-d", *(["-u", user.pw_name] if user else []), str(config)]
        subprocess.run(args, check=True, capture_output=True, text=True, timeout=30)
        deadline = time.monotonic() + 10
        while True:
            try:
                with psycopg.connect(f"postgresql://x@127.0.0.1:{self.port}/postgres", connect_timeout=2):
                    break
            except psycopg.OperationalError:
                assert time.monotonic() < deadline, (self.folder / "pgbouncer.log").read_text()
                time.sleep(0.1)

    def url(self, dbname: str) -> str:
        return f"postgresql://bouncer@127.0.0.1:{self.port}/{dbname}"

    def stop(self) -> None:
        pid_file = self.folder / "pgbouncer.pid"
        if pid_file.exists():
            subprocess.run(["kill", pid_file.read_text().strip()], check=False)
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="module")
def bouncer(db: TestDatabase) -> Iterator[Bouncer]:
    instance = Bouncer(db.server_url)
    yield instance
    instance.stop()


def hammer(db: tradedb.Database, threads: int, per_thread: int) -> list[BaseException]:
    """Run threads x per_thread transactions, each repeating the same parametrized queries."""
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        for i in range(per_thread):
            try:
                value = db.fetch_value("SELECT %s::int + %s::int", (worker, i), readonly=False)
                assert value == worker + i
            except Exception as exc:
                errors.append(exc)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(threads)))
    return errors


def test_a_thousand_transactions_from_eight_threads(db: TestDatabase, bouncer: Bouncer) -> None:
    settings = db.settings.model_copy(update={"pgbouncer": True})
    with tradedb.connect(bouncer.url(db.name), settings=settings, max_size=8, min_size=0) as pooled:
        errors = hammer(pooled, threads=8, per_thread=125)
        assert errors == []
        assert pooled.stats()["primary"]["requests_num"] >= 1000


def test_without_the_pgbouncer_flag_prepared_statements_break(db: TestDatabase, bouncer: Bouncer) -> None:
    # The control experiment: the same load with prepared statements on fails behind transaction pooling,
    # which is what the flag is for.
    with tradedb.connect(bouncer.url(db.name), settings=db.settings, max_size=8, min_size=0) as pooled:
        errors = hammer(pooled, threads=8, per_thread=60)
    assert errors, "expected prepared-statement errors without DATABASE_PGBOUNCER"


def test_service_role_is_per_transaction_and_never_leaks(db: TestDatabase, bouncer: Bouncer) -> None:
    settings = db.settings.model_copy(update={"pgbouncer": True})
    url = bouncer.url(db.name)
    with (
        tradedb.connect(url, settings=settings, service="data_ingestion", max_size=4) as scoped,
        tradedb.connect(url, settings=settings, max_size=4) as plain,
    ):
        for _ in range(20):
            assert scoped.fetch_value("SELECT current_user", readonly=False) == f"{ROLE_PREFIX}data_ingestion"
            assert plain.fetch_value("SELECT current_user", readonly=False) != f"{ROLE_PREFIX}data_ingestion"
        with pytest.raises(tradedb.PermissionDenied):
            scoped.execute("INSERT INTO execution.accounts (account_id, name) VALUES ('A1', 'x')")


def test_migrations_go_through_the_direct_url(empty_db: TestDatabase, bouncer: Bouncer) -> None:
    settings = empty_db.settings.model_copy(
        update={
            "pgbouncer": True,
            "database_url": SecretStr(bouncer.url(empty_db.name)),
            "direct_database_url": SecretStr(empty_db.url),
        }
    )
    state = migrate.upgrade(settings=settings)
    assert state.current == (migrate.history()[-1].revision,)
    env = empty_db.env(
        DATABASE_URL=bouncer.url(empty_db.name), DIRECT_DATABASE_URL=empty_db.url, DATABASE_PGBOUNCER="true"
    )
    result = run_cli("migrate", "check", env=env)
    assert result.returncode == 0, result.stderr

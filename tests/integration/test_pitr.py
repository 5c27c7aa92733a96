"""Point-in-time recovery with pgBackRest on an embedded server the test starts: a restore to a moment holds
exactly the fills committed before it, and verifies."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

import tradedb
from tests.conftest import PG15_BINDIR, cli_env, run_cli, shared_tmpdir
from tradedb import BackupError, ValidationError
from tradedb.db.embedded import EmbeddedServer
from tradedb.ops import pitr
from tradedb.settings import Settings

prefect = pytest.importorskip("prefect", reason="the scheduled pgBackRest backups are a Prefect flow")
from prefect.testing.utilities import prefect_test_harness  # noqa: E402

from tradedb.ops import flows  # noqa: E402

pytestmark = [pytest.mark.embedded, pytest.mark.slow]


#: Debian's pgBackRest (2.45) supports PostgreSQL up to 15, not the embedded wheel's 18: the server under test runs on
#: the machine's PostgreSQL 15 binaries.


@pytest.fixture(scope="module")
def pgbackrest() -> None:
    if shutil.which("pgbackrest") is None:
        pytest.skip("pgBackRest is not installed (tools/system-deps.sh installs Debian's pgbackrest)")


@pytest.fixture
def homes(pgbackrest: None) -> Iterator[tuple[Path, Path]]:
    """The source server's home and the folder to restore into (short paths: the socket lives in the first)."""
    source, restored = shared_tmpdir("tdb-pitr-"), shared_tmpdir("tdb-pitr-restored-")
    restored.rmdir()
    yield source, restored
    for home in (source, restored):
        run_cli("db", "stop", env=cli_env(TRADEDB_HOME=str(home)))
        shutil.rmtree(home, ignore_errors=True)


def record_fills(url: str, account: str, prefix: str, n: int) -> None:
    with tradedb.connect(url) as db:
        security = db.securities.get("PITR")["security_id"]
        for i in range(n):
            order = db.execution.submit_order(
                account_id=account,
                security_id=security,
                side="buy",
                quantity="1",
                order_type="limit",
                limit_price="10",
                client_order_id=uuid.uuid4(),
            )
            db.execution.transition(order["order_id"], "submitted", expected_version=order["version"])
            db.execution.record_fill(f"{prefix}-{i}", order["order_id"], "1", "10")


def test_a_restore_to_a_moment_holds_exactly_what_was_committed_before_it(
    homes: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    if not (PG15_BINDIR / "postgres").exists():
        pytest.skip("PostgreSQL 15's server binaries are not installed (Debian's pgBackRest supports up to 15)")
    source, restored = homes
    env = cli_env(TRADEDB_HOME=str(source), TRADEDB_ROLE_PREFIX="tdbt_pitr_", TRADEDB_PG_BINDIR=str(PG15_BINDIR))
    settings = Settings(_env_file=None, home=source, role_prefix="tdbt_pitr_", pg_bindir=PG15_BINDIR)
    assert run_cli("setup", env=env).returncode == 0
    with pytest.raises(BackupError, match="not set up"):
        pitr.backup("full", settings=settings)
    done = run_cli("pitr", "setup", env=env)
    assert done.returncode == 0, done.stderr
    assert "WAL archiving on" in done.stdout
    done = run_cli("pitr", "backup", "--type", "full", env=env)
    assert done.returncode == 0, done.stderr
    url = EmbeddedServer(settings).url()
    with tradedb.connect(url) as db:
        db.accounts.create("P1", "PITR book")
        db.risk.set_limit("P1", "max_position_notional", 1_000_000)
        db.securities.add("PITR", exchange="XNAS")
    record_fills(url, "P1", "before", 25)
    time.sleep(1.0)
    moment = datetime.now(UTC)
    time.sleep(1.0)
    record_fills(url, "P1", "after", 15)
    # The Prefect flow's incremental backup, as its schedule runs it (with the environment of the CLI); it also
    # archives the WAL up to its end.
    for key, value in env.items():
        if key.startswith("TRADEDB_"):
            monkeypatch.setenv(key, value)
    with prefect_test_harness(server_startup_timeout=60):
        taken = flows.pitr_backup_flow("incr")
    assert taken["type"] == "incr"
    listed = pitr.info(settings=settings)
    assert [b["type"] for b in listed] == ["full", "incr"]

    # Bad input first: nothing is restored.
    for to, into, message in [
        (datetime.now(UTC) + timedelta(hours=1), restored, "in the future"),
        (listed[0]["started_at"] - timedelta(hours=1), restored, "before the end of the first backup"),
        (moment, source, "is not empty"),
    ]:
        with pytest.raises(ValidationError, match=message):
            pitr.restore(to, into, settings=settings)
    assert not restored.exists()
    naive = run_cli("pitr", "restore", "--to", "2026-01-01T00:00:00", "--into", str(restored), env=env)
    assert naive.returncode == 8 and "time zone" in naive.stderr

    done = run_cli("pitr", "restore", "--to", moment.isoformat(), "--into", str(restored), env=env)
    assert done.returncode == 0, done.stderr
    run_cli("db", "stop", env=env)  # the restored server must not need the source
    restored_env = cli_env(
        TRADEDB_HOME=str(restored), TRADEDB_ROLE_PREFIX="tdbt_pitr_", TRADEDB_PG_BINDIR=str(PG15_BINDIR)
    )
    started = run_cli("db", "start", env=restored_env)
    assert started.returncode == 0, started.stderr
    restored_url = EmbeddedServer(Settings(_env_file=None, home=restored)).url()
    deadline = time.monotonic() + 120
    with psycopg.connect(restored_url, autocommit=True) as conn:
        while conn.execute("SELECT pg_is_in_recovery()").fetchone() != (False,):  # replays, then promotes
            assert time.monotonic() < deadline, "the restored server did not finish recovery"
            time.sleep(0.2)
        fills = conn.execute("SELECT execution_id FROM execution.fills ORDER BY fill_id").fetchall()
    assert [f[0] for f in fills] == [f"before-{i}" for i in range(25)]
    verified = run_cli("verify", "--json", env={**restored_env, "DATABASE_URL": restored_url})
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout) == {"ok": True, "problems": []}


def test_pitr_for_a_server_of_your_own_says_what_to_apply(pgbackrest: None) -> None:
    env = cli_env(DATABASE_URL="postgresql://admin@db.internal:5432/trading_system")
    done = run_cli("pitr", "setup", env=env)
    assert done.returncode == 0, done.stderr
    assert "ALTER SYSTEM SET archive_mode = 'on';" in done.stdout
    assert "archive-push %p" in done.stdout and "[tradedb]" in done.stdout


def test_without_pgbackrest_the_error_says_how_to_install_it(tmp_path: Path) -> None:
    env = cli_env(TRADEDB_HOME=str(tmp_path / "home"), PATH="/nonexistent")
    done = run_cli("pitr", "setup", env=env)
    assert done.returncode == 7
    assert "pgBackRest is not installed" in done.stderr and "Traceback" not in done.stderr


def test_a_server_the_installed_pgbackrest_does_not_support_is_refused_and_left_as_it_was(pgbackrest: None) -> None:
    """Debian's pgBackRest 2.45 predates PostgreSQL 16: on the embedded 18, setup names both versions and leaves
    archiving off and no configuration behind."""
    installed = subprocess.run(["pgbackrest", "version"], capture_output=True, text=True, check=True).stdout.strip()
    home = shared_tmpdir("tdb-pitr-new-")
    env = cli_env(TRADEDB_HOME=str(home))
    try:
        assert run_cli("db", "start", env=env).returncode == 0
        server = EmbeddedServer(Settings(_env_file=None, home=home))
        if installed != "pgBackRest 2.45" or int((server.data_dir / "PG_VERSION").read_text()) <= 15:
            pytest.skip(f"{installed} with this server is not the unsupported pair this test is about")
        done = run_cli("pitr", "setup", env=env)
        assert done.returncode == 7
        assert "pgBackRest 2.45 does not support PostgreSQL 18" in done.stderr
        assert not server.pitr_config.exists()
        with psycopg.connect(server.url("postgres")) as conn:
            assert conn.execute("SHOW archive_mode").fetchone() == ("off",)
    finally:
        run_cli("db", "stop", env=env)
        shutil.rmtree(home, ignore_errors=True)

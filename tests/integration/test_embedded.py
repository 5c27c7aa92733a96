"""The embedded server: start, stop, status, URLs, stale pid files, version checks, the root case."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.conftest import cli_env, run_cli, shared_tmpdir
from tradedb import EmbeddedServerError
from tradedb.db.embedded import EmbeddedServer
from tradedb.settings import Settings

pytestmark = pytest.mark.embedded


@pytest.fixture(scope="module")
def home() -> Iterator[Path]:
    path = shared_tmpdir("tradedb-embedded-")
    yield path
    EmbeddedServer(Settings(_env_file=None, home=path)).stop()
    shutil.rmtree(path, ignore_errors=True)


def server(home: Path, **overrides: object) -> EmbeddedServer:
    return EmbeddedServer(Settings(_env_file=None, home=home, **overrides))  # type: ignore[arg-type]


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_lifecycle(home: Path) -> None:
    embedded = server(home)
    assert embedded.status().state == "not-initialized"
    status = embedded.start()
    assert status.state == "running" and status.port and status.pid
    with psycopg.connect(embedded.url("postgres")) as conn:
        assert conn.execute("SELECT current_setting('listen_addresses')").fetchone() == ("127.0.0.1",)
    assert embedded.start().pid == status.pid  # already running: nothing happens
    assert "***" in embedded.url(show_password=False)
    assert embedded.stop().state == "stopped"
    assert embedded.stop().state == "stopped"


def test_password_is_required(home: Path) -> None:
    embedded = server(home)
    embedded.start()
    port = embedded.status().port
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(f"postgresql://tradedb:wrong@127.0.0.1:{port}/postgres")


def test_stale_pid_is_detected_and_cleaned(home: Path) -> None:
    embedded = server(home)
    embedded.stop()
    pid_file = embedded.data_dir / "postmaster.pid"
    pid_file.write_text(f"{dead_pid()}\n{embedded.data_dir}\n")
    if os.geteuid() == 0:
        shutil.chown(pid_file, "postgres")
    assert embedded.status().state == "stale-pid"
    result = run_cli("db", "status", env=cli_env(TRADEDB_HOME=str(home)))
    assert result.returncode == 1 and "stale-pid" in result.stdout
    assert embedded.start().state == "running"


def test_data_folder_of_another_major_version_is_refused(home: Path) -> None:
    embedded = server(home)
    embedded.stop()
    version_file = embedded.data_dir / "PG_VERSION"
    real = version_file.read_text()
    try:
        version_file.write_text("14\n")
        with pytest.raises(EmbeddedServerError, match="PostgreSQL 14 but the binaries"):
            embedded.start()
    finally:
        version_file.write_text(real)
    assert embedded.start().state == "running"


def test_bad_bindir_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EmbeddedServerError, match="TRADEDB_PG_BINDIR"):
        server(tmp_path, pg_bindir=tmp_path).bindir()


@pytest.mark.skipif(os.geteuid() != 0, reason="the run-as user matters only as root")
def test_root_without_a_server_user_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EmbeddedServerError, match="refuses to run as root"):
        server(tmp_path, embedded_user="no_such_user_here").start()


def test_cli_start_status_url_stop(home: Path) -> None:
    env = cli_env(TRADEDB_HOME=str(home))
    started = run_cli("db", "start", env=env)
    assert started.returncode == 0, started.stderr
    password = (home / "password").read_text().strip()
    assert "postgresql://tradedb:***@127.0.0.1:" in started.stdout
    assert password not in started.stdout + started.stderr
    status = run_cli("db", "status", "--json", env=env)
    assert status.returncode == 0
    assert json.loads(status.stdout)["state"] == "running"
    shown = run_cli("db", "url", "--show-password", env=env)
    assert password in shown.stdout
    stopped = run_cli("db", "stop", env=env)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout


def test_commands_use_the_embedded_server_when_no_url_is_set(home: Path) -> None:
    env = cli_env(TRADEDB_HOME=str(home))
    run_cli("db", "stop", env=env)
    result = run_cli("health", "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert "using the embedded PostgreSQL server" in result.stderr
    assert json.loads(result.stdout)["server_version_num"] >= 150000


def test_wrong_password_is_one_clear_line(home: Path) -> None:
    embedded = server(home)
    embedded.start()
    url = f"postgresql://tradedb:not-the-password@127.0.0.1:{embedded.status().port}/postgres"
    result = run_cli("migrate", "status", env=cli_env(DATABASE_URL=url))
    assert result.returncode == 3
    assert "authentication failed for user 'tradedb'" in result.stderr
    assert "not-the-password" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    verbose = run_cli("--verbose", "migrate", "status", env=cli_env(DATABASE_URL=url))
    assert "Traceback" in verbose.stderr
    assert "not-the-password" not in verbose.stderr + verbose.stdout

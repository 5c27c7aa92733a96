"""tradedb health: version, latency, extensions, sizes; a clear failure when unreachable."""

from __future__ import annotations

import json
import time

import psycopg

from tests.conftest import TestDatabase, cli_env, run_cli
from tests.servers import free_port
from tradedb.ops.health import OPTIONAL_EXTENSIONS, health


def test_health_reports_the_server(db: TestDatabase) -> None:
    report = health(settings=db.settings, url=db.server_url)
    assert report.server_version_num >= 150000
    assert report.latency_ms > 0
    assert db.name in report.database_sizes
    password = str(psycopg.conninfo.conninfo_to_dict(db.server_url).get("password") or "")
    if password:
        assert password not in report.url
        assert "***" in report.url
    assert set(report.extensions_available) <= set(OPTIONAL_EXTENSIONS)
    assert "plpgsql" in report.extensions_installed
    result = run_cli("health", "--json", env=db.env())
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["server_version_num"] == report.server_version_num
    assert data["database_sizes"][db.name] > 0


def test_health_fails_fast_when_unreachable() -> None:
    env = cli_env(DATABASE_URL=f"postgresql://u:hunter2@127.0.0.1:{free_port()}/x", DATABASE_CONNECTION_TIMEOUT="3")
    started = time.monotonic()
    result = run_cli("health", env=env)
    assert result.returncode == 3
    assert time.monotonic() - started < 15
    assert "cannot connect" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_health_wait_gives_up_after_the_bound() -> None:
    env = cli_env(DATABASE_URL=f"postgresql://u@127.0.0.1:{free_port()}/x", DATABASE_CONNECTION_TIMEOUT="2")
    started = time.monotonic()
    result = run_cli("health", "--wait", "2", env=env)
    assert result.returncode == 3
    assert 1.5 < time.monotonic() - started < 20

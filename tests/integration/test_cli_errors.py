"""Bad input on the CLI: one line saying what to do, a non-zero exit, no traceback, no password."""

from __future__ import annotations

import pytest

from tests.conftest import TestDatabase, cli_env, run_cli
from tests.servers import free_port


def assert_one_clean_line(stderr: str, *secrets: str) -> None:
    assert "Traceback" not in stderr
    assert stderr.strip().startswith("error:"), stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    for secret in secrets:
        assert secret not in stderr


def test_unreachable_host() -> None:
    env = cli_env(
        DATABASE_URL=f"postgresql://u:sekrit@127.0.0.1:{free_port()}/trading_system",
        DATABASE_CONNECTION_TIMEOUT="3",
    )
    result = run_cli("migrate", "status", env=env)
    assert result.returncode == 3
    assert_one_clean_line(result.stderr, "sekrit")
    assert "cannot connect to PostgreSQL at 127.0.0.1" in result.stderr


def test_missing_database(db: TestDatabase) -> None:
    env = db.env(DATABASE_URL=db.url.replace(db.name, "tdbt_does_not_exist"))
    result = run_cli("migrate", "status", env=env)
    assert result.returncode == 3
    assert_one_clean_line(result.stderr)
    assert "does not exist" in result.stderr and "tradedb setup" in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("DATABASE_URL", "mysql://u:sekrit@h/db", "DATABASE_URL must start with postgresql://"),
        ("DATABASE_URL", "postgresql://u:sekrit@h:99999/db", "DATABASE_URL is not a valid PostgreSQL URL"),
        ("TRADEDB_PROFILE", "turbo", "TRADEDB_PROFILE"),
        ("DATABASE_POOL_MAX_SIZE", "many", "DATABASE_POOL_MAX_SIZE"),
    ],
)
def test_bad_configuration(variable: str, value: str, expected: str) -> None:
    env = cli_env(**{variable: value})
    if variable != "DATABASE_URL":
        env["DATABASE_URL"] = "postgresql://u:sekrit@127.0.0.1:1/x"
    result = run_cli("migrate", "status", env=env)
    assert result.returncode == 2, result.stderr
    assert_one_clean_line(result.stderr, "sekrit")
    assert expected in result.stderr


def test_downgrade_to_an_unknown_revision(db: TestDatabase) -> None:
    result = run_cli("migrate", "downgrade", "abcdef12", env=db.env())
    assert result.returncode == 5
    assert_one_clean_line(result.stderr)
    assert "abcdef12" in result.stderr


def test_usage_errors_are_not_tracebacks() -> None:
    result = run_cli("migrate", "downgrade", env=cli_env())
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "Missing argument" in result.stderr


def test_help_names_the_environment_variables() -> None:
    result = run_cli("--help", env=cli_env())
    assert result.returncode == 0
    assert "DATABASE_URL" in result.stdout and "TRADEDB_HOME" in result.stdout


def test_cluster_commands_on_a_server_without_citus(db: TestDatabase) -> None:
    for args in (("cluster", "rebalance"), ("cluster", "add-worker", "127.0.0.1:5999")):
        result = run_cli(*args, env=db.env())
        assert result.returncode == 2, result.stderr
        assert_one_clean_line(result.stderr)
        assert "not on a Citus coordinator" in result.stderr
    result = run_cli("cluster", "add-worker", "no-port-here", env=db.env())
    assert result.returncode == 8
    assert_one_clean_line(result.stderr)
    assert "HOST:PORT" in result.stderr

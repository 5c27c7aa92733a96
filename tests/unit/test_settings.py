"""Settings: profiles, validation naming the variable, URLs, .env files."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from tradedb import ConfigError
from tradedb.settings import load_settings, normalize_url, url_dbname, with_dbname


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith(
            ("TRADEDB_", "DATABASE_", "POSTGRES_", "TRADING_DB_", "PREFECT_DB_", "REDIS_", "TIMESCALEDB_")
        ):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env


@pytest.mark.parametrize(
    ("profile", "pool", "timeout", "idle", "interval"),
    [
        ("development", 10, 30.0, 600.0, timedelta(hours=1)),
        ("production", 100, 10.0, 300.0, timedelta(minutes=15)),
        ("high-frequency", 500, 5.0, 120.0, timedelta(minutes=1)),
    ],
)
def test_profile_sets_defaults(
    monkeypatch: pytest.MonkeyPatch, profile: str, pool: int, timeout: float, idle: float, interval: timedelta
) -> None:
    monkeypatch.setenv("TRADEDB_PROFILE", profile)
    settings = load_settings()
    assert (settings.pool_max_size, settings.connection_timeout, settings.idle_timeout) == (
        pool,
        timeout,
        idle,
    )
    assert settings.tick_partition_interval == interval


def test_explicit_value_beats_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEDB_PROFILE", "production")
    monkeypatch.setenv("DATABASE_POOL_MAX_SIZE", "7")
    monkeypatch.setenv("DATABASE_POOL_MIN_SIZE", "2")
    settings = load_settings()
    assert settings.pool_max_size == 7
    assert settings.connection_timeout == 10.0


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATABASE_POOL_MAX_SIZE", "lots"),
        ("DATABASE_POOL_MAX_SIZE", "0"),
        ("DATABASE_CONNECTION_TIMEOUT", "-1"),
        ("TRADEDB_PROFILE", "turbo"),
        ("DATABASE_TLS_MODE", "sometimes"),
        ("TRADING_DB_NAME", "bad name;drop"),
        ("POSTGRES_PORT", "70000"),
    ],
)
def test_invalid_value_names_the_variable(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert variable in info.value.message
    assert info.value.exit_code == 2


def test_pool_min_above_max_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_POOL_MIN_SIZE", "20")
    monkeypatch.setenv("DATABASE_POOL_MAX_SIZE", "5")
    with pytest.raises(ConfigError, match="DATABASE_POOL_MIN_SIZE"):
        load_settings()


def test_tradedb_database_url_wins_over_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://a@h1/db1")
    monkeypatch.setenv("TRADEDB_DATABASE_URL", "postgresql://b@h2/db2")
    assert load_settings().configured_url() == "postgresql://b@h2/db2"


def test_sqlalchemy_style_url_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://u:p@h:5433/x")
    assert load_settings().configured_url() == "postgresql://u:p@h:5433/x"


@pytest.mark.parametrize("url", ["mysql://u:hunter2@h/db", "not a url hunter2", "postgresql://u:hunter2@h:99999/db"])
def test_malformed_url_is_a_config_error_without_the_password(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    with pytest.raises(ConfigError) as info:
        load_settings().configured_url()
    assert "DATABASE_URL" in info.value.message
    assert "hunter2" not in info.value.message


def test_postgres_variables_build_a_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTGRES_HOST", "db.internal")
    monkeypatch.setenv("POSTGRES_PORT", "6543")
    monkeypatch.setenv("POSTGRES_USER", "trader")
    monkeypatch.setenv("POSTGRES_PASSWORD", "p@ss:w/rd")
    monkeypatch.setenv("TRADING_DB_NAME", "trading_test")
    url = load_settings().configured_url()
    assert url == "postgresql://trader:p%40ss%3Aw%2Frd@db.internal:6543/trading_test"
    assert url_dbname(url) == "trading_test"


def test_no_url_means_embedded() -> None:
    assert load_settings().configured_url() is None


def test_env_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DATABASE_URL=postgresql://envfile@h/d\nTRADEDB_PROFILE=production\n")
    settings = load_settings()
    assert settings.configured_url() == "postgresql://envfile@h/d"
    assert settings.pool_max_size == 100


def test_tls_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_TLS_MODE", "verify-full")
    monkeypatch.setenv("DATABASE_TLS_ROOT_CERT", "/etc/ca.pem")
    options = load_settings().connection_options()
    assert options["sslmode"] == "verify-full"
    assert options["sslrootcert"] == "/etc/ca.pem"


def test_settings_repr_hides_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:hunter2@h/db")
    monkeypatch.setenv("POSTGRES_PASSWORD", "hunter3")
    text = repr(load_settings()) + str(load_settings())
    assert "hunter2" not in text
    assert "hunter3" not in text


def test_with_dbname_keeps_url_form() -> None:
    assert with_dbname("postgresql://u:p@h:5/a?sslmode=require", "b") == "postgresql://u:p@h:5/b?sslmode=require"
    assert normalize_url(" postgres://h/x ", variable="X") == "postgresql://h/x"


def test_ordinary_variables_do_not_leak_into_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    # Field names such as `home` and `profile` must not be read from HOME or PROFILE.
    monkeypatch.setenv("HOME", "/somewhere")
    monkeypatch.setenv("PROFILE", "production")
    monkeypatch.setenv("home", "/elsewhere")
    settings = load_settings()
    assert settings.home is None
    assert settings.profile == "development"


def test_the_database_in_the_url_is_the_trading_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:pw@db.example:5432/mydb")
    settings = load_settings()
    assert settings.trading_db_name == "mydb"
    assert url_dbname(settings.configured_url() or "") == "mydb"
    monkeypatch.setenv("TRADING_DB_NAME", "mydb")
    assert load_settings().trading_db_name == "mydb"  # the same name twice is no conflict
    monkeypatch.setenv("TRADING_DB_NAME", "trading_system")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "DATABASE_URL" in info.value.message and "TRADING_DB_NAME" in info.value.message
    assert "'mydb'" in info.value.message and "pw" not in info.value.message


def test_a_url_without_a_database_is_completed_by_trading_db_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db.example:5432")
    assert url_dbname(load_settings().configured_url() or "") == "trading_system"
    monkeypatch.setenv("TRADING_DB_NAME", "desk")
    assert url_dbname(load_settings().configured_url() or "") == "desk"


@pytest.mark.parametrize(
    ("variables", "mode"),
    [
        ({"DATABASE_TLS_ENABLED": "true"}, "require"),
        ({"DATABASE_TLS_ENABLED": "true", "DATABASE_TLS_CA_PATH": "/etc/ca.pem"}, "verify-full"),
        ({"DATABASE_TLS_ENABLED": "true", "DATABASE_TLS_MODE": "verify-ca"}, "verify-ca"),
        ({"DATABASE_TLS_ENABLED": "false"}, "disable"),
    ],
)
def test_the_seeds_tls_variables_are_honoured(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], mode: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db.example/x")
    monkeypatch.setenv("DATABASE_TLS_CERT_PATH", "/etc/client.pem")
    monkeypatch.setenv("DATABASE_TLS_KEY_PATH", "/etc/client.key")
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    options = load_settings().connection_options()
    assert options["sslmode"] == mode
    assert (options["sslcert"], options["sslkey"]) == ("/etc/client.pem", "/etc/client.key")
    if "DATABASE_TLS_CA_PATH" in variables:
        assert options["sslrootcert"] == "/etc/ca.pem"


def test_tls_asked_for_never_falls_back_to_plain_text(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DATABASE_TLS_ENABLED=true\nDATABASE_TLS_MODE=prefer\n")
    with pytest.raises(ConfigError, match="DATABASE_TLS_ENABLED=true but DATABASE_TLS_MODE=prefer"):
        load_settings()


def test_the_seeds_user_prefect_and_redis_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTGRES_HOST", "db.example")
    monkeypatch.setenv("TRADING_DB_USER", "trader")
    monkeypatch.setenv("TRADING_DB_PASSWORD", "s3cret")
    monkeypatch.setenv("PREFECT_DB_USER", "orchestrator")
    monkeypatch.setenv("REDIS_HOST", "cache.example")
    monkeypatch.setenv("REDIS_PORT", "6380")
    settings = load_settings()
    assert settings.configured_url() == "postgresql://trader:s3cret@db.example:5432/trading_system"
    assert settings.prefect_role() == "orchestrator"
    assert settings.redis_address() == "redis://cache.example:6380/0"
    monkeypatch.setenv("REDIS_URL", "rediss://:pw@cache.example:6380/1")
    assert load_settings().redis_address() == "rediss://:pw@cache.example:6380/1"
    monkeypatch.setenv("REDIS_URL", "http://cache.example")
    with pytest.raises(ConfigError, match="REDIS_URL must start with"):
        load_settings().redis_address()


def test_timescaledb_variables_are_refused_by_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TIMESCALEDB_COMPRESSION=true\n")
    with pytest.raises(ConfigError, match="TIMESCALEDB_COMPRESSION: not read by tradedb"):
        load_settings()

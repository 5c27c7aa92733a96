"""Connection logic without I/O: pool options, roles, backoff, replica choice, and the sync twin's freshness."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import REPO
from tradedb import ConfigError, ValidationError
from tradedb.db import pooling as base
from tradedb.settings import Settings


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_sync_twin_is_generated_from_the_async_source() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / "async_to_sync.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_pool_options_follow_settings_and_overrides() -> None:
    options = base.pool_options(settings(profile="production"), "postgresql://h/db", name="p")
    assert (options.min_size, options.max_size, options.timeout) == (10, 100, 10.0)
    options = base.pool_options(settings(), "postgresql://h/db", name="p", max_size=3, min_size=0, timeout=0.5)
    assert (options.min_size, options.max_size, options.timeout) == (0, 3, 0.5)


@pytest.mark.parametrize(
    "overrides", [{"max_size": 0}, {"min_size": 4, "max_size": 2}, {"timeout": 0}, {"max_idle": -1}]
)
def test_bad_pool_options_are_rejected(overrides: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        base.pool_options(settings(), "postgresql://h/db", name="p", **overrides)  # type: ignore[arg-type]


def test_pgbouncer_disables_prepared_statements() -> None:
    assert base.connection_kwargs(settings(pgbouncer=True))["prepare_threshold"] is None
    assert "prepare_threshold" not in base.connection_kwargs(settings())


def test_service_roles() -> None:
    assert base.service_role(settings(), "execution") == "tradedb_execution"
    assert base.service_role(settings(service="analytics", role_prefix="x_"), None) == "x_analytics"
    assert base.service_role(settings(), None) is None
    with pytest.raises(ConfigError):
        base.service_role(settings(), "nope")
    assert base.set_role_sql("a b", local=True).as_string(None) == 'SET LOCAL ROLE "a b"'
    assert [s.as_string(None) for s in base.reset_session_sql(None)] == ["RESET ALL", "RESET ROLE"]


@given(st.integers(min_value=1, max_value=30), st.integers(min_value=0, max_value=2**32))
def test_backoff_is_bounded_and_grows(attempt: int, seed: int) -> None:
    delay = base.backoff_delay(attempt, base=0.05, cap=2.0, rng=random.Random(seed))
    assert 0 <= delay <= min(2.0, 0.05 * 2 ** (attempt - 1))


def test_replica_tracker_round_robin_and_cooldown() -> None:
    tracker = base.ReplicaTracker(count=3, retry_interval=5.0)
    assert tracker.candidates(now=0) == [0, 1, 2]
    assert tracker.candidates(now=0) == [1, 2, 0]
    tracker.mark_down(2, now=10)
    assert tracker.candidates(now=11) == [0, 1]
    assert 2 not in tracker.candidates(now=14.9)
    assert sorted(tracker.candidates(now=15.1)) == [0, 1, 2]  # back after the cooldown
    tracker.mark_down(0, now=20)
    tracker.mark_up(0)
    assert 0 in tracker.candidates(now=20)
    assert base.ReplicaTracker(count=0, retry_interval=1).candidates() == []


def test_replica_urls_and_direct_url() -> None:
    conf = settings(replica_urls="postgresql://a/x, postgresql+psycopg://b/x", database_url="postgresql://p/x")
    assert conf.replica_url_list() == ["postgresql://a/x", "postgresql://b/x"]
    assert conf.direct_url() == "postgresql://p/x"
    assert settings(database_url="postgresql://p/x", direct_database_url="postgresql://d/x").direct_url() == (
        "postgresql://d/x"
    )


def test_scope_is_set_locally_quoted_and_passed_on_to_citus_workers() -> None:
    plain = base.scope_sql("A-1", "o'brien").as_string(None)
    assert plain == "SET LOCAL tradedb.account = 'A-1'; SET LOCAL tradedb.app_user = 'o''brien'"
    on_citus = base.scope_sql("A-1", "o'brien", citus=True).as_string(None)
    assert on_citus == "SET LOCAL citus.propagate_set_commands = 'local'; " + plain

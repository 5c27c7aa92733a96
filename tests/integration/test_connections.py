"""Database and AsyncDatabase against the test server: one parametrized suite for both."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import ROLE_PREFIX, TestDatabase
from tests.integration.facade import Api
from tests.servers import free_port
from tradedb import (
    ConfigError,
    ConnectionLost,
    PermissionDenied,
    PoolTimeout,
    RetriesExhausted,
    TradeDBError,
    ValidationError,
)


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def api(kind: str, db: TestDatabase) -> Iterator[Api]:
    handle = Api(kind, db.url, db.settings)
    yield handle
    handle.close()


@pytest.fixture(autouse=True)
def scratch_table(db: TestDatabase) -> None:
    with db.connect(autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS public.attempts")
        conn.execute("CREATE TABLE public.attempts (attempt int, note text)")
        conn.execute("GRANT ALL ON public.attempts TO PUBLIC")


def rows(db: TestDatabase) -> list[tuple[object, ...]]:
    with db.connect() as conn:
        return conn.execute("SELECT attempt, note FROM public.attempts ORDER BY attempt").fetchall()


def test_helpers(api: Api) -> None:
    assert api.fetch_value("SELECT 41 + 1") == 42
    assert api.fetch_all("SELECT 1 AS a, 'x' AS b") == [{"a": 1, "b": "x"}]
    assert api.execute("INSERT INTO public.attempts VALUES (1, 'a'), (2, 'b')") == 2
    assert api.fetch_value("SELECT count(*) FROM public.attempts") == 2
    assert api.stats()["primary"]["requests_num"] >= 4


def test_transaction_rolls_back_on_error(api: Api, db: TestDatabase) -> None:
    with pytest.raises(ValidationError):
        api.in_transaction([("INSERT INTO public.attempts VALUES (1, 'kept?')", None), ("SELECT 1/0", None)])
    assert rows(db) == []


def test_readonly_transaction_refuses_writes(api: Api) -> None:
    with pytest.raises(TradeDBError, match="read-only transaction") as info:
        api.in_transaction([("INSERT INTO public.attempts VALUES (1, 'x')", None)], readonly=True)
    assert info.value.sqlstate == "25006"  # read_only_sql_transaction


def terminate_on_first_attempt(attempt: int) -> tuple[str, None]:
    return ("SELECT pg_terminate_backend(pg_backend_pid())" if attempt == 1 else "SELECT 1", None)


def test_terminated_backend_inside_run_transaction_is_retried_once(api: Api, db: TestDatabase) -> None:
    results, attempts = api.run_transaction(
        [
            lambda attempt: ("INSERT INTO public.attempts VALUES (%s, 'run') RETURNING attempt", (attempt,)),
            terminate_on_first_attempt,
        ]
    )
    assert attempts == 2
    assert results == [2, 1]
    assert rows(db) == [(2, "run")]  # the first attempt's insert died with its connection


def test_terminated_backend_outside_run_transaction_is_a_typed_error(api: Api, db: TestDatabase) -> None:
    with pytest.raises(ConnectionLost) as info:
        api.in_transaction([("INSERT INTO public.attempts VALUES (1, 'once')", None), terminate_on_first_attempt])
    assert info.value.sqlstate == "57P01"
    assert rows(db) == []
    assert api.fetch_value("SELECT 1") == 1  # the dead connection was not handed out again


@pytest.mark.parametrize("sqlstate", ["40001", "40P01"])
def test_serialization_failures_and_deadlocks_are_retried_then_reported(api: Api, sqlstate: str) -> None:
    fail = f"DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = '{sqlstate}'; END $$"
    results, attempts = api.run_transaction(
        [lambda attempt: (fail if attempt < 3 else "SELECT 'done'", None)], retries=3
    )
    assert (results, attempts) == (["done"], 3)
    with pytest.raises(RetriesExhausted) as info:
        api.run_transaction([(fail, None)], retries=2)
    assert info.value.attempts == 3
    assert info.value.sqlstate == sqlstate
    assert "gave up after 3 attempt(s)" in info.value.message


def test_non_transient_errors_are_not_retried(api: Api) -> None:
    with pytest.raises(ValidationError):
        api.run_transaction([("SELECT 1/0", None)], retries=5)


def test_pool_exhaustion_is_a_typed_timeout(kind: str, db: TestDatabase) -> None:
    small = Api(kind, db.url, db.settings, max_size=1, min_size=0, timeout=0.5)
    try:
        with pytest.raises(PoolTimeout, match=r"max_size 1\) within 0.5 s"):
            small.hold_one_and_checkout_another()
        assert small.fetch_value("SELECT 1") == 1
    finally:
        small.close()


def test_service_scoping(kind: str, db: TestDatabase) -> None:
    scoped = Api(kind, db.url, db.settings, service="data_ingestion", max_size=1, min_size=0)
    try:
        assert scoped.fetch_value("SELECT current_user") == f"{ROLE_PREFIX}data_ingestion"
        with pytest.raises(PermissionDenied) as info:
            scoped.execute("INSERT INTO execution.accounts (account_id, name) VALUES ('A1', 'x')")
        assert info.value.sqlstate == "42501"
        # Whatever a borrower does to its session, the next borrower gets the service role back.
        assert scoped.in_transaction([("RESET ROLE", None), ("SELECT current_user", None)])[1] != (
            f"{ROLE_PREFIX}data_ingestion"
        )
        assert scoped.fetch_value("SELECT current_user") == f"{ROLE_PREFIX}data_ingestion"
        assert scoped.fetch_value("SELECT current_setting('application_name')") == "tradedb"
    finally:
        scoped.close()


def test_unknown_service_and_bad_pool_sizes_are_rejected(kind: str, db: TestDatabase) -> None:
    with pytest.raises(ConfigError, match="unknown service 'trading'"):
        Api(kind, db.url, db.settings, service="trading")
    with pytest.raises(ValidationError, match="min_size"):
        Api(kind, db.url, db.settings, min_size=5, max_size=2)


def test_no_password_in_errors(kind: str, db: TestDatabase) -> None:
    bad = Api(kind, f"postgresql://trader:hunter2@127.0.0.1:{free_port()}/x", db.settings, timeout=1.0, min_size=0)
    try:
        with pytest.raises(PoolTimeout) as info:
            bad.fetch_value("SELECT 1")
        assert "hunter2" not in str(info.value)
    finally:
        bad.close()

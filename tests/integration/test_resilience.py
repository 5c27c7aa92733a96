"""Dedicated servers: restart under a pool, TLS with a test CA, a real streaming replica."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.facade import Api
from tests.servers import PgInstance, make_ca_and_server_cert, system_bindir
from tradedb import ConnectionError as TradeDBConnectionError
from tradedb import PoolTimeout
from tradedb.ops import health as health_module
from tradedb.settings import Settings

pytestmark = pytest.mark.embedded


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, connection_timeout=5, **values)  # type: ignore[arg-type]


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def instance() -> Iterator[PgInstance]:
    server = PgInstance().start()
    yield server
    server.cleanup()


def test_restart_under_a_pool_recovers_without_handing_out_dead_connections(kind: str, instance: PgInstance) -> None:
    api = Api(kind, instance.url(), settings(), min_size=2, max_size=4, timeout=20)
    try:
        for _ in range(4):
            assert api.fetch_value("SELECT 1") == 1
        before = api.fetch_value("SELECT pg_postmaster_start_time()")
        instance.restart()
        started = time.monotonic()
        after = api.fetch_value("SELECT pg_postmaster_start_time()")  # must not fail on a dead connection
        recovery = time.monotonic() - started
        assert after > before
        assert recovery < 5.0, f"recovery took {recovery:.2f} s"
        print(f"\n[{kind}] first transaction after restart: {recovery * 1000:.0f} ms")
        for _ in range(8):
            assert api.fetch_value("SELECT 1") == 1
    finally:
        api.close()


def test_server_down_is_a_typed_timeout_then_recovers(kind: str, instance: PgInstance) -> None:
    api = Api(kind, instance.url(), settings(), min_size=0, max_size=2, timeout=1.0)
    try:
        assert api.fetch_value("SELECT 1") == 1
        instance.stop()
        with pytest.raises(PoolTimeout):
            api.fetch_value("SELECT 1")
        instance.start()
        deadline = time.monotonic() + 15
        while True:
            try:
                assert api.fetch_value("SELECT 1") == 1
                break
            except PoolTimeout:
                assert time.monotonic() < deadline, "pool never reconnected"
    finally:
        instance.start()
        api.close()


# --- TLS ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_instance() -> Iterator[tuple[PgInstance, Path]]:
    bindir = system_bindir()
    if bindir is None:
        pytest.skip("TLS needs a PostgreSQL built with OpenSSL (the embedded build has none); none installed")
    server = PgInstance(bindir=bindir, prefix="tradedb-tls-").start()
    server.stop()
    ca, cert, key = make_ca_and_server_cert(server.home)
    for path in (cert, key):
        server.give(path)
    server.configure(ssl="on", ssl_cert_file=str(cert), ssl_key_file=str(key))
    server.start()
    yield server, ca
    server.cleanup()


def test_tls_verify_full(kind: str, tls_instance: tuple[PgInstance, Path]) -> None:
    server, ca = tls_instance
    tls = settings(tls_mode="verify-full", tls_root_cert=ca)
    api = Api(kind, server.url(host="localhost"), tls)
    try:
        assert api.fetch_value("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") is True
    finally:
        api.close()
    report = health_module.health(settings=tls, url=server.url(host="localhost"))
    assert report.tls is not None
    assert report.tls.startswith("TLS")


def test_tls_wrong_host_name_fails_clearly(kind: str, tls_instance: tuple[PgInstance, Path]) -> None:
    server, ca = tls_instance
    tls = settings(tls_mode="verify-full", tls_root_cert=ca)
    with pytest.raises(
        TradeDBConnectionError, match=r'certificate for "localhost".* does not match host name "127\.0\.0\.1"'
    ):
        health_module.health(settings=tls, url=server.url(host="127.0.0.1"))
    api = Api(kind, server.url(host="127.0.0.1"), tls, timeout=1.5, min_size=0)
    try:
        with pytest.raises(PoolTimeout):
            api.fetch_value("SELECT 1")
    finally:
        api.close()


# --- replicas ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def primary_and_replica() -> Iterator[tuple[PgInstance, PgInstance]]:
    primary = PgInstance(prefix="tradedb-primary-").start()
    replica = primary.basebackup_replica()
    yield primary, replica
    replica.cleanup()
    primary.cleanup()


def test_reads_go_to_the_replica_and_fall_back(kind: str, primary_and_replica: tuple[PgInstance, PgInstance]) -> None:
    primary, replica = primary_and_replica
    replica.start()
    conf = settings(replica_timeout=1.0, replica_retry_interval=30)
    api = Api(kind, primary.url(), conf, replica_urls=[replica.url()])
    try:
        assert api.fetch_value("SELECT pg_is_in_recovery()") is True
        assert api.fetch_value("SELECT pg_is_in_recovery()", readonly=False) is False
        assert api.in_transaction([("SELECT pg_is_in_recovery()", None)], readonly=True) == [True]
        assert api.in_transaction([("SELECT pg_is_in_recovery()", None)]) == [False]
        table = f"replicated_{kind}"
        api.execute(f"CREATE TABLE {table} (x int)")
        api.execute(f"INSERT INTO {table} VALUES (1)")
        deadline = time.monotonic() + 10
        while (
            not api.fetch_value(f"SELECT to_regclass('{table}') IS NOT NULL")
            or api.fetch_value(f"SELECT count(*) FROM {table}") != 1
        ):
            assert time.monotonic() < deadline, "the write never reached the replica"
            time.sleep(0.1)
        report = health_module.health(
            settings=conf.model_copy(update={"replica_urls": None}), url=primary.url(), replica_urls=[replica.url()]
        )
        assert report.replicas[0]["in_recovery"] is True
        assert report.replicas[0]["lag_bytes"] is not None

        replica.stop()
        started = time.monotonic()
        assert api.fetch_value("SELECT pg_is_in_recovery()") is False  # fell back to the primary
        assert time.monotonic() - started < 5
        assert api.fetch_value("SELECT pg_is_in_recovery()") is False  # and skips the replica for a while
    finally:
        api.close()
        replica.start()

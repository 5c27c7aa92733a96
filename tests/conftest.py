"""Shared fixtures: a real PostgreSQL server, a migrated template, and a database clone per test module.

The server is ``TRADEDB_TEST_DATABASE_URL`` when set (CI: the machine's PostgreSQL), else an embedded server
the session starts and stops itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tradedb.db.embedded import EmbeddedServer
from tradedb.ops import setup as provision
from tradedb.settings import Settings, normalize_url, with_dbname

REPO = Path(__file__).resolve().parents[1]
#: Real market and reference data: ../shared/data beside the checkout, or TRADEDB_SHARED_DATA (a clone elsewhere).
SHARED_DATA = Path(os.environ.get("TRADEDB_SHARED_DATA") or REPO.parent / "shared" / "data")
#: Roles made by tests carry their own prefix, so a real tradedb install on the same server is untouched.
ROLE_PREFIX = "tdbt_"
DB_PREFIX = "tdbt_"
#: The password setup gives the test prefect login (PREFECT_DB_PASSWORD).
PREFECT_PASSWORD = "tdbt-prefect-pw"
TRADEDB = Path(sys.executable).parent / "tradedb"


def make_settings(url: str, dbname: str, prefect_db: str | None = None, **overrides: object) -> Settings:
    """Return settings for a test database, independent of the caller's environment and .env."""
    values: dict[str, object] = {
        "database_url": with_dbname(url, dbname),
        "trading_db_name": dbname,
        "prefect_db_name": prefect_db or f"{dbname}_prefect",
        "role_prefix": ROLE_PREFIX,
        "migration_lock_wait": 60.0,
        "prefect_db_password": PREFECT_PASSWORD,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def shared_tmpdir(prefix: str) -> Path:
    """Make a temp folder the unprivileged server user can traverse (pytest's own are 0700 under root)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


def admin(url: str) -> psycopg.Connection[tuple[object, ...]]:
    """Return an autocommit connection to the server's maintenance database."""
    return psycopg.connect(with_dbname(url, "postgres"), autocommit=True)


#: `make test-citus`: the admin URLs of the session cluster's workers. A database of the cluster is cloned and
#: dropped on every node (a clone of each node's template is a consistent copy of the cluster's database).
CLUSTER_WORKERS: list[str] = []


def create_database(url: str, name: str, template: str | None = None) -> None:
    """Create database ``name`` (owned by the test owner role, so migrations run as it)."""
    statement = sql.SQL("CREATE DATABASE {} OWNER {}").format(
        sql.Identifier(name), sql.Identifier(f"{ROLE_PREFIX}owner")
    )
    if template:
        statement = sql.SQL("{} TEMPLATE {}").format(statement, sql.Identifier(template))
    for node in [url, *(CLUSTER_WORKERS if template else [])]:
        with admin(node) as conn:
            if node in CLUSTER_WORKERS:
                conn.execute("SET citus.enable_ddl_propagation = off")  # a worker refuses database DDL otherwise
            if template and CLUSTER_WORKERS:
                # Citus keeps sessions open on its databases (its maintenance daemon, connections between nodes):
                # the template takes none any more, and those it has are closed, so it can be copied.
                conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(template)))
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = %s AND pid <> pg_backend_pid()",
                    (template,),
                )
            conn.execute(statement)


def drop_database(url: str, name: str) -> None:
    """Drop database ``name`` if it exists, disconnecting its sessions."""
    for node in [url, *CLUSTER_WORKERS]:
        with admin(node) as conn:
            if node in CLUSTER_WORKERS:
                conn.execute("SET citus.enable_ddl_propagation = off")
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def cli_env(**extra: str) -> dict[str, str]:
    """Return an environment for CLI subprocesses: the caller's, minus every tradedb/database variable."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TRADEDB_", "DATABASE_", "POSTGRES_", "PG", "TRADING_DB_", "PREFECT_DB_", "TIMESCALEDB_"))
    }
    env.update(extra)
    return env


def run_cli(
    *args: str, env: dict[str, str], timeout: float = 300, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``tradedb`` command."""
    return subprocess.run(
        [str(TRADEDB), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(cwd or tempfile.gettempdir()),
        check=False,
    )


def docs_example(page: str) -> str:
    """The first Python code block of ``docs/<page>``, to run as written (tests/docs runs every block)."""
    text = (REPO / "docs" / page).read_text()
    code = text[text.index("```python\n") + len("```python\n") :]
    return code[: code.index("```")]


@dataclass(frozen=True)
class TestDatabase:
    """A database of the test server, with settings and CLI environment pointing at it."""

    __test__ = False  # not a test class

    name: str
    server_url: str = field(repr=False)  # holds the embedded server's password
    settings: Settings = field(repr=False)

    @property
    def url(self) -> str:
        return with_dbname(self.server_url, self.name)

    def env(self, **extra: str) -> dict[str, str]:
        values = {
            "DATABASE_URL": self.url,
            "PREFECT_DB_NAME": self.settings.prefect_db_name,
            "PREFECT_DB_PASSWORD": PREFECT_PASSWORD,
            "TRADEDB_ROLE_PREFIX": ROLE_PREFIX,
        }
        return cli_env(**{**values, **extra})

    def connect(self, **kwargs: object) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.url, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real market and reference data (../shared/data): skipped where it is absent, a failure in CI."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"real market data not found at {SHARED_DATA}: CI runs the real-data tests")
        pytest.skip(f"real market data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def embedded_home() -> Iterator[Path]:
    """A folder for the session's embedded server."""
    home = shared_tmpdir("tradedb-test-home-")
    yield home
    shutil.rmtree(home, ignore_errors=True)


#: `make test-timescale`: the session's server is PostgreSQL 15 with TimescaleDB preloaded, and the template's
#: market-data tables are hypertables, so the market-data suite runs on them unchanged.
TIMESCALE = os.environ.get("TRADEDB_TEST_TIMESCALE") == "1"
#: `make test-citus`: the session's server is the coordinator of a Citus cluster (two workers), so the market-data,
#: execution, risk, order-book and analytics suites run unchanged against it (market data and execution distributed).
CITUS = os.environ.get("TRADEDB_TEST_CITUS") == "1"
PG15_BINDIR = Path("/usr/lib/postgresql/15/bin")


@pytest.fixture(scope="session")
def citus_cluster() -> Iterator[Any]:
    """A coordinator and two workers of the session's own (`make test-citus`)."""
    from tests.servers import CitusCluster

    cluster = CitusCluster(PG15_BINDIR).start()
    CLUSTER_WORKERS[:] = [w.url() for w in cluster.workers]
    yield cluster
    CLUSTER_WORKERS.clear()
    cluster.cleanup()


@pytest.fixture(scope="session")
def embedded_server(embedded_home: Path) -> Iterator[EmbeddedServer]:
    """An embedded PostgreSQL server of the session's own (scram auth, a generated password)."""
    server = EmbeddedServer(Settings(_env_file=None, home=embedded_home, pg_bindir=PG15_BINDIR if TIMESCALE else None))
    server.start()
    if TIMESCALE:
        from tradedb.ops.maintenance import TIMESCALEDB_SERVER_SETTINGS

        server.configure(TIMESCALEDB_SERVER_SETTINGS)
        server.stop()
        server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def server_url(request: pytest.FixtureRequest) -> str:
    """The admin URL of the test server."""
    configured = None if TIMESCALE or CITUS else os.environ.get("TRADEDB_TEST_DATABASE_URL")
    if CITUS:
        url = str(request.getfixturevalue("citus_cluster").coordinator.url())
    elif configured:
        url = normalize_url(configured, variable="TRADEDB_TEST_DATABASE_URL")
    else:
        server: EmbeddedServer = request.getfixturevalue("embedded_server")
        url = server.url("postgres")
    with admin(url) as conn:
        leftovers = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (DB_PREFIX + "%",))
        for (name,) in leftovers.fetchall():
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(str(name))))
    return url


@pytest.fixture(scope="session")
def template_db(server_url: str) -> Iterator[str]:
    """A database set up once by ``tradedb setup``; each test module gets a clone of it."""
    name = f"{DB_PREFIX}tpl_{uuid.uuid4().hex[:8]}"
    provision.setup(settings=make_settings(server_url, name), url=server_url)
    if TIMESCALE:
        from tradedb.ops import maintenance

        maintenance.convert_to_hypertables(settings=make_settings(server_url, name), url=server_url)
    yield name
    drop_database(server_url, name)
    drop_database(server_url, f"{name}_prefect")


def cloned(server_url: str, template_db: str) -> Iterator[TestDatabase]:
    """A set-up database cloned from the template, dropped afterwards."""
    name = f"{DB_PREFIX}{uuid.uuid4().hex[:12]}"
    create_database(server_url, name, template=template_db)
    yield TestDatabase(name, server_url, make_settings(server_url, name, prefect_db=f"{template_db}_prefect"))
    drop_database(server_url, name)


@pytest.fixture(scope="module")
def db(server_url: str, template_db: str) -> Iterator[TestDatabase]:
    """A set-up database of the module's own, cloned from the template."""
    yield from cloned(server_url, template_db)


@pytest.fixture
def fresh_db(server_url: str, template_db: str) -> Iterator[TestDatabase]:
    """A set-up database of the test's own (for tests that count everything in a table)."""
    yield from cloned(server_url, template_db)


@pytest.fixture
def empty_db(server_url: str, template_db: str) -> Iterator[TestDatabase]:
    """An empty database (no schemas of ours), for migrations from scratch."""
    name = f"{DB_PREFIX}{uuid.uuid4().hex[:12]}"
    create_database(server_url, name)
    yield TestDatabase(name, server_url, make_settings(server_url, name, prefect_db=f"{template_db}_prefect"))
    drop_database(server_url, name)

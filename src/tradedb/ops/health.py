"""``tradedb health``: is the server there, how fast, what it offers."""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tradedb.database import Database
from tradedb.db import direct as _connect
from tradedb.db.embedded import server_url
from tradedb.db.pooling import REPLICATION_LAG_SQL
from tradedb.errors import ConnectionError, TradeDBError, ValidationError
from tradedb.masking import mask_url
from tradedb.ops import citus, migrate
from tradedb.settings import Settings, load_settings, with_dbname

#: Extensions tradedb can use when present; never assumed.
OPTIONAL_EXTENSIONS = (
    "timescaledb",
    "pg_partman",
    "pg_cron",
    "pgtap",
    "postgis",
    "pg_stat_statements",
    "pgcrypto",
)


@dataclass
class HealthReport:
    """What ``tradedb health`` reports."""

    url: str
    server_version: str
    server_version_num: int
    latency_ms: float
    in_recovery: bool
    tls: str | None = None
    pool: dict[str, Any] = field(default_factory=dict)
    replicas: list[dict[str, Any]] = field(default_factory=list)
    extensions_available: dict[str, str] = field(default_factory=dict)
    extensions_installed: dict[str, str] = field(default_factory=dict)
    database_sizes: dict[str, int] = field(default_factory=dict)
    #: On a Citus coordinator: each node of the trading database (host:port, role, active, shards it holds).
    cluster_nodes: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """Return the report as a plain dict (for JSON)."""
        return asdict(self)


def wait_until_ready(settings: Settings, url: str, seconds: float) -> float:
    """Retry connecting until the server accepts connections; return the seconds waited."""
    if seconds < 0:
        raise ValidationError("--wait takes a number of seconds >= 0")
    started = time.monotonic()
    delay = 0.2
    while True:
        try:
            with _connect.maintenance_connect(url, settings):
                return time.monotonic() - started
        except ConnectionError:
            if time.monotonic() - started + delay > seconds:
                raise
            time.sleep(delay)
            delay = min(delay * 1.5, 2.0)


_TLS_SQL = "SELECT version, cipher FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl"


def _replica_report(settings: Settings, url: str) -> dict[str, Any]:
    report: dict[str, Any] = {
        "url": mask_url(url),
        "reachable": False,
        "in_recovery": None,
        "lag_seconds": None,
        "lag_bytes": None,
        "error": None,
    }
    try:
        with _connect.connect(url, settings, autocommit=True) as conn:
            row = conn.execute(REPLICATION_LAG_SQL).fetchone()
    except ConnectionError as exc:
        report["error"] = exc.message
        return report
    assert row is not None
    report.update(reachable=True, in_recovery=bool(row[0]), lag_seconds=row[1], lag_bytes=row[2])
    return report


def _pool_probe(settings: Settings, url: str) -> tuple[float, dict[str, Any]]:
    """Run SELECT 1 five times through a tradedb pool: median latency (ms) and the pool's statistics."""
    samples = []
    with Database(url, settings=settings, min_size=0, max_size=1, name="tradedb-health") as db:
        for _ in range(5):
            started = time.perf_counter()
            db.fetch_value("SELECT 1", readonly=False)
            samples.append((time.perf_counter() - started) * 1000)
        stats = db.stats().get("primary", {})
    configured = {
        "min_size": settings.pool_min_size,
        "max_size": settings.pool_max_size,
        "timeout_s": settings.checkout_timeout(),
        "max_lifetime_s": settings.max_lifetime,
        "max_idle_s": settings.idle_timeout,
        "pgbouncer": settings.pgbouncer,
    }
    return statistics.median(samples), {**configured, "probe": stats}


def health(
    *,
    settings: Settings | None = None,
    url: str | None = None,
    wait: float = 0.0,
    replica_urls: list[str] | None = None,
) -> HealthReport:
    """Connect within the connect timeout; report version, latency, TLS, pool, replicas, extensions, sizes."""
    settings = settings or load_settings()
    target = url or server_url(settings)
    if wait:
        wait_until_ready(settings, target, wait)
    with _connect.maintenance_connect(target, settings) as conn:
        tls_row = conn.execute(_TLS_SQL).fetchone()
        probe_url = with_dbname(target, str(conn.info.dbname))
        version_row = conn.execute(
            "SELECT current_setting('server_version'), current_setting('server_version_num')::int, pg_is_in_recovery()"
        ).fetchone()
        assert version_row is not None
        available = {
            str(r[0]): str(r[1])
            for r in conn.execute(
                "SELECT name, default_version FROM pg_available_extensions WHERE name = ANY(%s) ORDER BY name",
                (list(OPTIONAL_EXTENSIONS),),
            )
        }
        sizes = {
            str(r[0]): int(r[1])
            for r in conn.execute(
                "SELECT datname, pg_database_size(datname) FROM pg_database WHERE datname = ANY(%s) ORDER BY 1",
                ([settings.trading_db_name, settings.prefect_db_name],),
            )
        }
    latency_ms, pool = _pool_probe(settings, probe_url)
    replicas = [
        _replica_report(settings, r) for r in (settings.replica_url_list() if replica_urls is None else replica_urls)
    ]
    installed: dict[str, str] = {}
    cluster_nodes: list[dict[str, Any]] = []
    if settings.trading_db_name in sizes:
        with _connect.connect(target, settings, dbname=settings.trading_db_name, autocommit=True) as conn:
            installed = {
                str(r[0]): str(r[1]) for r in conn.execute("SELECT extname, extversion FROM pg_extension ORDER BY 1")
            }
            if "citus" in installed:
                cluster_nodes = citus.shard_counts(conn)
    return HealthReport(
        url=mask_url(target),
        server_version=str(version_row[0]),
        server_version_num=int(version_row[1]),
        latency_ms=round(latency_ms, 3),
        tls=f"{tls_row[0]} ({tls_row[1]})" if tls_row else None,
        pool=pool,
        replicas=replicas,
        in_recovery=bool(version_row[2]),
        extensions_available=available,
        extensions_installed=installed,
        database_sizes=sizes,
        cluster_nodes=cluster_nodes,
    )


@dataclass
class Probe:
    """What a probe found: ``ok`` and one line per check (``tradedb health --ready/--live``, ``/readyz``)."""

    ok: bool
    checks: dict[str, str]

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def summary(self) -> str:
        return "; ".join(f"{name}: {detail}" for name, detail in self.checks.items())


def readiness(*, settings: Settings | None = None, url: str | None = None, db: Database | None = None) -> Probe:
    """Ready to serve: a pooled connection answers, and the database is migrated to this tradedb's head.

    ``db`` checks through that Database's pool (a service's own); else a one-connection pool is opened.
    """
    settings = settings or (db.settings if db is not None else load_settings())
    checks: dict[str, str] = {}
    ok = True
    try:
        if db is not None:
            db.fetch_value("SELECT 1", readonly=False)
        else:
            target = url or server_url(settings)
            with Database(target, settings=settings, min_size=0, max_size=1, name="tradedb-ready") as probe:
                probe.fetch_value("SELECT 1", readonly=False)
        checks["pool"] = "ok"
    except TradeDBError as exc:
        return Probe(False, {"pool": exc.message})
    try:
        state = migrate.status(settings=settings, url=db.options.conninfo if db is not None else url)
    except TradeDBError as exc:
        return Probe(False, {**checks, "migrations": exc.message})
    if state.pending:
        ok = False
        checks["migrations"] = f"at {', '.join(state.current) or 'nothing'}; pending {', '.join(state.pending)}"
    else:
        checks["migrations"] = f"at head {', '.join(state.heads)}"
    return Probe(ok, checks)


def liveness(*, heartbeat: Path | None = None, max_age: float = 60.0) -> Probe:
    """Alive: the configuration loads and, with ``heartbeat``, the worker touched that file within ``max_age`` s.

    Deliberately not the database: a restart does not bring a database back, so an unreachable database makes a
    process unready, never dead.
    """
    if max_age <= 0:
        raise ValidationError("--max-age takes a number of seconds > 0")
    load_settings()
    if heartbeat is None:
        return Probe(True, {"process": "ok"})
    try:
        age = time.time() - heartbeat.stat().st_mtime
    except FileNotFoundError:
        return Probe(False, {"heartbeat": f"{heartbeat} does not exist (has the worker started?)"})
    if age > max_age:
        return Probe(False, {"heartbeat": f"{heartbeat} last touched {age:.0f} s ago (more than {max_age:g} s)"})
    return Probe(True, {"heartbeat": f"touched {age:.1f} s ago"})

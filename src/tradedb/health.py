"""``tradedb health``: is the server there, how fast, what it offers."""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field

from tradedb import _connect
from tradedb._secrets import mask_url
from tradedb.embedded import server_url
from tradedb.errors import ConnectionError, ValidationError
from tradedb.settings import Settings, load_settings

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
    extensions_available: dict[str, str] = field(default_factory=dict)
    extensions_installed: dict[str, str] = field(default_factory=dict)
    database_sizes: dict[str, int] = field(default_factory=dict)

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


def health(*, settings: Settings | None = None, url: str | None = None, wait: float = 0.0) -> HealthReport:
    """Connect within the connect timeout and report version, latency, extensions and database sizes."""
    settings = settings or load_settings()
    target = url or server_url(settings)
    if wait:
        wait_until_ready(settings, target, wait)
    with _connect.maintenance_connect(target, settings) as conn:
        samples = []
        for _ in range(5):
            started = time.perf_counter()
            conn.execute("SELECT 1").fetchone()
            samples.append((time.perf_counter() - started) * 1000)
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
    installed: dict[str, str] = {}
    if settings.trading_db_name in sizes:
        with _connect.connect(target, settings, dbname=settings.trading_db_name, autocommit=True) as conn:
            installed = {
                str(r[0]): str(r[1]) for r in conn.execute("SELECT extname, extversion FROM pg_extension ORDER BY 1")
            }
    return HealthReport(
        url=mask_url(target),
        server_version=str(version_row[0]),
        server_version_num=int(version_row[1]),
        latency_ms=round(statistics.median(samples), 3),
        in_recovery=bool(version_row[2]),
        extensions_available=available,
        extensions_installed=installed,
        database_sizes=sizes,
    )

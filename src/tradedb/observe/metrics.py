"""Prometheus metrics: a collector for an application's own registry, and ``tradedb metrics serve``.

The collector reads this process's pools and counters (free) and, on each scrape, the database's state with a
few read-only statements (bounded by ``timeout``; a database that cannot answer sets ``tradedb_up`` to 0 and the
process metrics are still exported). Names follow Prometheus conventions: ``tradedb_`` prefix, ``_total`` for
counters, base units (``_seconds``, ``_bytes``).
"""

from __future__ import annotations

import errno
import threading
import time
from collections.abc import Callable, Iterator
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import psycopg
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from psycopg.rows import dict_row

from tradedb.db.counters import COUNTERS
from tradedb.errors import MetricsError, TradeDBError, ValidationError
from tradedb.observe import _sql as q
from tradedb.observe.handler import HANDLERS

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

    from tradedb.db.connections import Connections

#: Every metric name the collector exports (the dashboard test checks panels against it).
NAMES = (
    "tradedb_up",
    "tradedb_scrape_duration_seconds",
    "tradedb_pool_size",
    "tradedb_pool_max_size",
    "tradedb_pool_connections_in_use",
    "tradedb_pool_requests_waiting",
    "tradedb_pool_timeouts_total",
    "tradedb_transaction_retries_total",
    "tradedb_rows_written_total",
    "tradedb_log_records_total",
    "tradedb_log_queue_length",
    "tradedb_log_spill_pending",
    "tradedb_connections",
    "tradedb_database_size_bytes",
    "tradedb_partitions",
    "tradedb_data_freshness_seconds",
    "tradedb_quality_findings",
    "tradedb_replica_lag_seconds",
    "tradedb_replica_lag_bytes",
    "tradedb_events_undelivered",
    "tradedb_events_relay_lag_seconds",
)


class TradedbCollector(Collector):
    """Collect tradedb's metrics for ``db`` (a :class:`~tradedb.Database`, whose pools are reported):
    ``REGISTRY.register(TradedbCollector(db))``.

    ``databases`` are the databases whose size is reported (default: the trading and Prefect databases).
    """

    def __init__(self, db: Connections, *, timeout: float = 5.0, databases: list[str] | None = None) -> None:
        if not isinstance(timeout, int | float) or not 0 < timeout <= 300:
            raise ValidationError(f"timeout must be between 0 and 300 seconds, got {timeout!r}")
        self.db = db
        self.timeout = float(timeout)
        self.databases = databases or [db.settings.trading_db_name, db.settings.prefect_db_name]
        self._lock = threading.Lock()

    def describe(self) -> list[Metric]:
        return []  # collected on demand: registering must not query the database

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        yield from self._process()
        with self._lock:  # scrapes in parallel would only repeat the same statements
            database = list(self._database())
        yield from database
        scrape = GaugeMetricFamily("tradedb_scrape_duration_seconds", "Seconds the last collection took.")
        scrape.add_metric([], time.perf_counter() - started)
        yield scrape

    # --- this process -----------------------------------------------------------------------------------

    def _process(self) -> Iterator[Metric]:
        size = GaugeMetricFamily("tradedb_pool_size", "Connections open in the pool.", labels=["pool"])
        most = GaugeMetricFamily("tradedb_pool_max_size", "Largest size the pool may reach.", labels=["pool"])
        used = GaugeMetricFamily("tradedb_pool_connections_in_use", "Connections lent out.", labels=["pool"])
        waiting = GaugeMetricFamily(
            "tradedb_pool_requests_waiting", "Checkouts waiting for a connection.", labels=["pool"]
        )
        timeouts = CounterMetricFamily(
            "tradedb_pool_timeouts_total", "Checkouts that failed (timed out) since the pool opened.", labels=["pool"]
        )
        for pool, stats in self.db.stats().items():
            size.add_metric([pool], stats.get("pool_size", 0))
            most.add_metric([pool], stats.get("pool_max", 0))
            used.add_metric([pool], stats.get("pool_size", 0) - stats.get("pool_available", 0))
            waiting.add_metric([pool], stats.get("requests_waiting", 0))
            timeouts.add_metric([pool], stats.get("requests_errors", 0))
        yield from (size, most, used, waiting, timeouts)
        retries = CounterMetricFamily(
            "tradedb_transaction_retries_total", "Transactions re-run after a transient failure (this process)."
        )
        retries.add_metric([], COUNTERS.transaction_retries)
        yield retries
        rows = CounterMetricFamily(
            "tradedb_rows_written_total", "Rows committed by tradedb's writers (this process).", labels=["table"]
        )
        for table, count in sorted(COUNTERS.rows_written.items()):
            rows.add_metric([table], count)
        yield rows
        records = CounterMetricFamily(
            "tradedb_log_records_total", "Log records and timings by outcome (this process).", labels=["outcome"]
        )
        queued = GaugeMetricFamily("tradedb_log_queue_length", "Log records waiting for the writer thread.")
        spilled = GaugeMetricFamily("tradedb_log_spill_pending", "Log rows in spill files, waiting for the database.")
        totals: dict[str, int] = {}
        queue = pending = 0
        for handler in list(HANDLERS):
            stats = handler.stats()
            for outcome in ("accepted", "stored", "spilled", "overflowed", "replayed", "rejected"):
                totals[outcome] = totals.get(outcome, 0) + stats[outcome]
            queue += stats["queued"]
            pending += stats["spill_pending"]
        for outcome, count in sorted(totals.items()):
            records.add_metric([outcome], count)
        queued.add_metric([], queue)
        spilled.add_metric([], pending)
        yield from (records, queued, spilled)

    # --- the database -----------------------------------------------------------------------------------

    def _database(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("tradedb_up", "1 when the database answered this scrape.")
        try:
            families = self._read_database()
        except (TradeDBError, psycopg.Error, OSError):
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _read_database(self) -> list[Metric]:
        out: list[Metric] = []
        with self.db.connection() as conn:
            cursor = conn.cursor(row_factory=dict_row)
            # Transaction-local: the pooled connection goes back without it.
            cursor.execute("SELECT set_config('statement_timeout', %s, true)", (f"{int(self.timeout * 1000)}ms",))
            connections = GaugeMetricFamily(
                "tradedb_connections", "Client connections to the server by state.", labels=["state"]
            )
            for r in cursor.execute(q.CONNECTIONS).fetchall():
                connections.add_metric([r["state"]], r["n"])
            sizes = GaugeMetricFamily("tradedb_database_size_bytes", "Size of the database.", labels=["database"])
            for r in cursor.execute(q.DATABASE_SIZES, (self.databases,)).fetchall():
                sizes.add_metric([r["database"]], r["bytes"])
            partitions = GaugeMetricFamily(
                "tradedb_partitions",
                "Partitions of each partitioned table (the default one included).",
                labels=["table"],
            )
            counts: dict[str, int] = {}
            for r in cursor.execute(q.PARTITIONS).fetchall():
                counts[r["table"]] = counts.get(r["table"], 0) + 1
            for table, count in sorted(counts.items()):
                partitions.add_metric([table], count)
            freshness = GaugeMetricFamily(
                "tradedb_data_freshness_seconds",
                "Seconds since the newest stored row, per market-data table and source.",
                labels=["table", "source"],
            )
            for r in cursor.execute(q.FRESHNESS).fetchall():
                freshness.add_metric([r["table"], r["source"]], r["seconds"])
            quality = GaugeMetricFamily(
                "tradedb_quality_findings",
                "Data-quality findings logged in the last 24 hours.",
                labels=["table", "check", "status"],
            )
            for r in cursor.execute(q.QUALITY).fetchall():
                quality.add_metric([r["table"], r["check"], r["status"]], r["n"])
            lag = GaugeMetricFamily(
                "tradedb_replica_lag_seconds", "Replay lag of each streaming replica.", labels=["replica"]
            )
            lag_bytes = GaugeMetricFamily(
                "tradedb_replica_lag_bytes", "WAL bytes a streaming replica has not replayed.", labels=["replica"]
            )
            for r in cursor.execute(q.REPLICATION).fetchall():
                name = r["name"] or r["client"] or "replica"
                lag.add_metric([name], r["lag_s"] or 0.0)
                lag_bytes.add_metric([name], r["lag_bytes"] or 0.0)
            events = cursor.execute(q.EVENTS).fetchone() or {}
            undelivered = GaugeMetricFamily("tradedb_events_undelivered", "Outbox events not relayed yet.")
            undelivered.add_metric([], events.get("undelivered") or 0)
            relay_lag = GaugeMetricFamily(
                "tradedb_events_relay_lag_seconds", "Age of the oldest event not relayed yet (0 when none)."
            )
            relay_lag.add_metric([], events.get("oldest_s") or 0.0)
            out += [connections, sizes, partitions, freshness, quality, lag, lag_bytes, undelivered, relay_lag]
        return out


# --- the endpoint --------------------------------------------------------------------------------------------


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds would flood the log."""


class MetricsServer:
    """``/metrics`` (Prometheus text format), ``/livez`` (the process answers) and ``/readyz`` (``readiness()``
    says the database is usable: 200, else 503 with the reason) on ``host:port``; ``port=0`` picks a free one."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        host: str = "0.0.0.0",
        port: int = 9187,
        readiness: Callable[[], tuple[bool, str]] | None = None,
    ) -> None:
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
            raise ValidationError(f"port must be between 0 and 65535, got {port!r}")
        self._metrics = make_wsgi_app(registry)
        self._readiness = readiness
        try:
            self._server = make_server(host, port, self._app, server_class=_Server, handler_class=_Quiet)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise MetricsError(f"port {port} is in use on {host}: choose another with --port") from exc
            raise MetricsError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        self.port = int(self._server.server_port)
        self._thread: threading.Thread | None = None

    def _app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        path = environ.get("PATH_INFO", "/")
        if path == "/livez":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        if path == "/readyz":
            ready, detail = self._readiness() if self._readiness else (True, "ok")
            start_response("200 OK" if ready else "503 Service Unavailable", [("Content-Type", "text/plain")])
            return [detail.encode() + b"\n"]
        return self._metrics(environ, start_response)

    def start(self) -> MetricsServer:
        """Serve from a daemon thread."""
        self._thread = threading.Thread(target=self._server.serve_forever, name="tradedb-metrics", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

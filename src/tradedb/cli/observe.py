"""CLI commands for observability: ``tradedb top`` and ``tradedb metrics serve``."""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import RenderableType
from rich.live import Live

from tradedb.cli._common import _database, _print_json, _settings, app, err, out
from tradedb.cli._lazy import lazy
from tradedb.observe import DatabaseHandler, SlowQueryCapture, Snapshot, snapshot
from tradedb.observe.timing import logger as performance_logger
from tradedb.observe.top import render

if TYPE_CHECKING:
    from tradedb.ops import health as health_module
    from tradedb.ops import maintenance
else:
    health_module = lazy("tradedb.ops.health")
    maintenance = lazy("tradedb.ops.maintenance")

metrics_app = typer.Typer(help="Prometheus metrics of the database and this process.", no_args_is_help=True)
app.add_typer(metrics_app, name="metrics")


@app.command()
def top(
    once: Annotated[bool, typer.Option("--once", help="Take one snapshot and exit.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --once: print JSON.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between refreshes.")] = 2.0,
    limit: Annotated[int, typer.Option(help="Rows of each list.")] = 15,
    slow_ms: Annotated[
        float | None,
        typer.Option(help="Record statements running longer than this into performance_logs (TRADEDB_SLOW_QUERY_MS)."),
    ] = None,
    no_capture: Annotated[bool, typer.Option("--no-capture", help="Do not record slow statements.")] = False,
) -> None:
    """A live view of the database: active queries and their waits, blocking chains, pools, replication,
    partitions near retention, rows in default partitions, table sizes and bloat, top statements."""
    if interval <= 0:
        raise typer.BadParameter("--interval must be positive")
    settings = _settings()
    retention = maintenance.effective_retention(settings)
    with _database() as db:

        def look() -> Snapshot:
            with db.connection() as conn:
                return snapshot(conn, pools=db.stats(), retention=retention, limit=limit)

        if once:
            taken = look()
            if as_json:
                _print_json(taken.as_dict())
            else:
                out.print(render(taken))
            return
        capture = None if no_capture else SlowQueryCapture(slow_ms if slow_ms is not None else settings.slow_query_ms)
        handler = None
        if capture is not None:
            handler = DatabaseHandler(db.options.conninfo, service="tradedb-top", settings=settings)
            performance_logger.addHandler(handler)
            performance_logger.setLevel(logging.INFO)

        def frames() -> Iterator[RenderableType]:
            while True:
                snap = look()
                if capture is not None:
                    snap.slow = capture.observe(snap.activity)
                yield render(snap)
                time.sleep(interval)

        try:
            if out.is_terminal:
                with Live(console=out, auto_refresh=False, screen=True) as live:
                    for frame in frames():
                        live.update(frame, refresh=True)
            else:  # piped: one snapshot after another, like top -b
                for frame in frames():
                    out.print(frame)
        except KeyboardInterrupt:
            pass
        finally:
            if handler is not None:
                performance_logger.removeHandler(handler)
                handler.close()


@metrics_app.command("serve")
def serve(
    port: Annotated[int, typer.Option(help="TCP port (0: any free one, printed).")] = 9187,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "0.0.0.0",
    timeout: Annotated[float, typer.Option(help="Seconds the database statements of a scrape may take.")] = 5.0,
) -> None:
    """Serve /metrics (Prometheus), /livez and /readyz until stopped (SIGTERM or Ctrl-C)."""
    from prometheus_client import CollectorRegistry

    from tradedb.observe.metrics import MetricsServer, TradedbCollector

    with _database() as db:
        registry = CollectorRegistry()
        registry.register(TradedbCollector(db, timeout=timeout))

        def ready() -> tuple[bool, str]:
            probe = health_module.readiness(db=db)
            return probe.ok, probe.summary()

        server = MetricsServer(registry, host=host, port=port, readiness=ready)

        def stop(signum: int, frame: FrameType | None) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, stop)
        err.print(f"metrics: serving http://{host}:{server.port}/metrics", highlight=False)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()

"""Benchmark: the market-data tables as TimescaleDB hypertables against native partitions, in the same run.

A PostgreSQL 15 server of the benchmark's own with TimescaleDB preloaded (`make test-timescale` builds it) holds two
trading databases set up alike, the second converted by ``convert_to_hypertables``. Each gets the quotes of
market_data.py (1M, 500 symbols, 5 days) by server-side binary COPY and by tradedb ``append``, ROUNDS rounds,
medians (chunks and partitions exist before each timed round); then ``latest_quotes`` for 500 symbols. Goals
(issue 19): ingest into hypertables within 10 % of native partitions (server COPY into each as the baseline),
``latest_quotes(500)`` on hypertables within 1.5x native.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
from pathlib import Path

import psycopg
import pyarrow as pa

import tradedb
from _server import bench_database
from market_data import BASELINE_COLUMNS, COLUMNS, SYMBOLS, median_seconds, sample, timed_latest
from tradedb.columnar.binary_encode import encode_copy
from tradedb.db.embedded import EmbeddedServer
from tradedb.ops import maintenance
from tradedb.settings import Settings

PG15 = Path("/usr/lib/postgresql/15/bin")


def main() -> None:
    if not list(Path("/usr/lib/postgresql/15/lib").glob("timescaledb-*.so")):
        print("skipped: TimescaleDB is not built for PostgreSQL 15 (make test-timescale builds it)")
        return
    home = Path(tempfile.mkdtemp(prefix="tradedb-bench-ts-", dir="/tmp"))
    home.chmod(0o755)
    server = EmbeddedServer(Settings(_env_file=None, home=home, pg_bindir=PG15))
    server.start()
    try:
        server.configure(maintenance.TIMESCALEDB_SERVER_SETTINGS)
        server.stop()
        server.start()
        run(server.url("postgres"), home)
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


def run(admin_url: str, folder: Path) -> None:
    data = sample([])
    results: dict[str, dict[str, float]] = {}
    latest: dict[str, float] = {}
    for kind in ("native", "hypertable"):
        with bench_database(admin_url, f"tdbbench_ts_{kind[:5]}") as (url, settings):
            if kind == "hypertable":
                maintenance.convert_to_hypertables(settings=settings, url=admin_url)
            with tradedb.connect(url, settings=settings) as db:
                md = db.market_data
                md.write_quotes(data, source="warmup", create_securities=True)  # securities and partitions
                ids = md.security_ids([f"B{i:03d}" for i in range(SYMBOLS)])
                id_column = pa.array([ids[s] for s in data["symbol"].to_pylist()], pa.int64())
                by_id = data.drop_columns(["symbol"]).add_column(1, "security_id", id_column)
                binary = folder / f"quotes-{kind}.bin"
                binary.write_bytes(b"".join(bytes(b) for b in encode_copy(by_id, BASELINE_COLUMNS, {"source": "b"})))
                binary.chmod(0o644)
                with psycopg.connect(url, autocommit=True) as conn:

                    def empty(hyper: bool = kind == "hypertable") -> None:
                        # Both keep their containers between rounds, as a live table does: TRUNCATE keeps the
                        # partitions but would drop every chunk, so the hypertable is emptied by DELETE + VACUUM.
                        if hyper:
                            conn.execute("DELETE FROM data_ingestion.quotes")
                            conn.execute("VACUUM data_ingestion.quotes")
                            conn.execute("TRUNCATE data_ingestion.coverage, data_ingestion.last_quotes")
                        else:
                            conn.execute(
                                "TRUNCATE data_ingestion.quotes, data_ingestion.coverage, data_ingestion.last_quotes"
                            )

                    def server_copy(path: Path = binary) -> None:
                        conn.execute(f"COPY data_ingestion.quotes ({COLUMNS}) FROM '{path}' (FORMAT binary)")

                    def append(writers: int = 2) -> None:
                        with tradedb.connect(url, settings=settings) as fresh:
                            fresh.market_data.write_quotes(data, source="b", writers=writers)

                    results[kind] = {
                        "server COPY FROM file (binary)": median_seconds(empty, server_copy),
                        "tradedb append (2 writers)": median_seconds(empty, append),
                        "tradedb append (1 writer)": median_seconds(empty, lambda: append(1)),
                    }
                    times = timed_latest(md, [f"B{i:03d}" for i in range(SYMBOLS)])
                    latest[kind] = statistics.median(times)
    n = data.num_rows
    print(f"\n{n:,} quotes, {SYMBOLS} symbols; medians of 3 rounds; PostgreSQL 15 + TimescaleDB, the same server")
    print(f"{'method':32} {'native s':>9} {'hypertable s':>13} {'hypertable/native':>18}")
    for method in results["native"]:
        a, b = results["native"][method], results["hypertable"][method]
        print(f"{method:32} {a:9.2f} {b:13.2f} {a / b:17.2f}x")
    print("  (throughput ratio: above 0.90x meets the goal 'within 10 %'; chunks and partitions exist before timing)")
    ratio = latest["hypertable"] / latest["native"]
    print(
        f"latest_quotes({SYMBOLS}): native median {latest['native'] * 1000:.2f} ms, hypertables "
        f"{latest['hypertable'] * 1000:.2f} ms ({ratio:.2f}x; goal <= 1.5x)"
    )


if __name__ == "__main__":
    main()

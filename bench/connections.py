"""Benchmark: checkout + SELECT 1 through tradedb's Database vs a bare psycopg_pool, 1 and 4 threads.

Both pools have the same size, the same health check on checkout, and commit each transaction, so the ratio is
tradedb's own overhead (goal: under 10 %). Each figure is the median of 5 rounds whose order alternates (the
client and the server share two cores here, so single rounds are noisy). The client CPU time per transaction
(1 thread) is printed too: it is the steadiest measure of what tradedb adds.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable

from psycopg_pool import ConnectionPool

import tradedb
from _server import bench_server
from tradedb.settings import Settings

OPS_PER_THREAD = 4000
ROUNDS = 5


def _throughput(threads: int, op: Callable[[], object]) -> float:
    for _ in range(200):  # warm up: connections open, caches hot
        op()
    barrier = threading.Barrier(threads + 1)

    def work() -> None:
        barrier.wait()
        for _ in range(OPS_PER_THREAD):
            op()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    started = time.perf_counter()
    for worker in workers:
        worker.join()
    return threads * OPS_PER_THREAD / (time.perf_counter() - started)


def _measure(which: str, url: str, settings: Settings, threads: int) -> float:
    if which == "bare":
        with ConnectionPool(
            url,
            min_size=threads,
            max_size=threads,
            open=True,
            check=ConnectionPool.check_connection,
            kwargs=settings.connection_options(),
        ) as pool:

            def bare() -> object:
                with pool.connection() as conn:
                    return conn.execute("SELECT 1").fetchone()

            return _throughput(threads, bare)
    with tradedb.connect(url, settings=settings, min_size=threads, max_size=threads) as db:
        return _throughput(threads, lambda: db.fetch_value("SELECT 1", readonly=False))


def _cpu_per_op(url: str, settings: Settings, ops: int = 3000) -> tuple[float, float]:
    with (
        ConnectionPool(
            url,
            min_size=1,
            max_size=1,
            open=True,
            check=ConnectionPool.check_connection,
            kwargs=settings.connection_options(),
        ) as pool,
        tradedb.connect(url, settings=settings, min_size=1, max_size=1) as db,
    ):

        def bare() -> object:
            with pool.connection() as conn:
                return conn.execute("SELECT 1").fetchone()

        def ours() -> object:
            return db.fetch_value("SELECT 1", readonly=False)

        results: dict[str, list[float]] = {}
        for name, op in (("bare", bare), ("ours", ours), ("bare", bare), ("ours", ours)):
            for _ in range(200):
                op()
            started = time.process_time()
            for _ in range(ops):
                op()
            results.setdefault(name, []).append((time.process_time() - started) / ops * 1e6)
        return min(results["bare"]), min(results["ours"])


def main() -> None:
    with bench_server() as url:
        settings = Settings(_env_file=None)
        print(f"checkout + SELECT 1, {OPS_PER_THREAD} per thread, medians of {ROUNDS} rounds")
        print(
            f"{'threads':>7} {'bare psycopg_pool tx/s':>23} {'tradedb Database tx/s':>22} {'ratio':>6} {'overhead':>9}"
        )
        for threads in (1, 4):
            bare_runs, ours_runs = [], []
            for _ in range(ROUNDS):
                with ConnectionPool(
                    url,
                    min_size=threads,
                    max_size=threads,
                    open=True,
                    check=ConnectionPool.check_connection,
                    kwargs=settings.connection_options(),
                ) as pool:

                    def bare(pool: ConnectionPool = pool) -> object:
                        with pool.connection() as conn:
                            return conn.execute("SELECT 1").fetchone()

                    bare_runs.append(_throughput(threads, bare))
                with tradedb.connect(url, settings=settings, min_size=threads, max_size=threads) as db:

                    def ours(db: tradedb.Database = db) -> object:
                        return db.fetch_value("SELECT 1", readonly=False)

                    ours_runs.append(_throughput(threads, ours))
            bare_rate, ours_rate = statistics.median(bare_runs), statistics.median(ours_runs)
            ratio = ours_rate / bare_rate
            print(f"{threads:>7} {bare_rate:>23,.0f} {ours_rate:>22,.0f} {ratio:>6.2f} {(1 - ratio) * 100:>8.1f}%")
        bare_cpu, ours_cpu = _cpu_per_op(url, settings)
        print(
            f"client CPU per transaction (1 thread): bare {bare_cpu:.1f} us, tradedb {ours_cpu:.1f} us, "
            f"ratio {ours_cpu / bare_cpu:.2f}"
        )


if __name__ == "__main__":
    main()

"""Benchmark: checkout + SELECT 1 through tradedb's Database vs a bare psycopg_pool, 1 and 4 threads.

Both pools have the same size, the same health check on checkout, and commit each transaction, so the ratio is
tradedb's own overhead (goal: under 10 %). Each figure is the median of 3 rounds.
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
ROUNDS = 3


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


def main() -> None:
    with bench_server() as url:
        settings = Settings(_env_file=None)  # type: ignore[call-arg]
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


if __name__ == "__main__":
    main()

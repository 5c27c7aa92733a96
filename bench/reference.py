"""Benchmark: reference data, every figure against a baseline measured in the same run.

1. Loading every listing file of ../shared/data/04_symbol_master (the ISO MIC list, the late-2000s listings, today's
   NASDAQ Trader files, the S&P 500 and the index listings: about 29,000 rows and 70,000 identifiers) through
   ``load_listings`` against raw binary COPY of the same listings and identifiers into unindexed tables of the
   same columns (the most the server can take in). Rows per second of each.
2. Resolving 100,000 random symbols (the symbols of today's listings in any of their conventions, and unknown
   ones): ``lookup_many`` in batches of 10,000 (one statement each) against a plain join of the same symbols on
   ``securities.symbol`` (no conventions, no dates), and one symbol per call (``lookup``) for a sample.
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from pathlib import Path

import psycopg

import tradedb
from _server import bench_database, bench_server
from tradedb.reference import read

MASTER = Path(__file__).resolve().parents[2] / "shared" / "data" / "04_symbol_master"
SNAPSHOTS = (
    (("fimport_nyseListing.csv", "fimport_nasdaqListing.csv", "fimport_amexListing.csv"), "2009-01-02", "historic"),
    (("nasdaq-listed-symbols.csv", "other-listed.csv"), "2026-07-31", "nasdaqtrader"),
    (("sp500-constituents.csv",), "2026-08-31", "wikipedia"),
    (("pytickersymbols_1.17.10_index_listings.csv",), "2026-09-01", "pytickersymbols"),
)
LOOKUPS = 100_000
BATCH = 10_000
SINGLE = 2_000
ROUNDS = 3
DBNAME = "tdbbench_reference"
#: The US conventions: a bare symbol is ambiguous across countries (VMC on NYSE and in Frankfurt).
US = ("nasdaq", "cqs", "act")

RAW_TABLES = """
CREATE TEMP TABLE raw_listings (symbol text, exchange_mic text, name text, asset_type text, currency text,
                                isin text, market_cap numeric);
CREATE TEMP TABLE raw_identifiers (listing int, scheme text, value text, scope text)
"""


def load_once(url: str, settings: tradedb.Settings) -> tuple[int, float]:
    """Load every file into an emptied security master; return (rows read, seconds)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE shared.security_identifiers, shared.index_members, data_ingestion.delisted_symbols, "
            "data_ingestion.key_statistics, data_ingestion.load_runs, shared.securities CASCADE"
        )
    rows = 0
    with tradedb.connect(url, settings=settings) as db:
        started = time.perf_counter()
        added, updated = db.securities.load_exchanges(MASTER / "iso10383_mic_2026-01-12.csv")
        rows += added + updated
        for names, day, source in SNAPSHOTS:
            report = db.securities.load_listings([MASTER / n for n in names], as_of=day, source=source, complete=True)
            rows += report.rows
        return rows, time.perf_counter() - started


def raw_copy_once(url: str) -> tuple[int, float]:
    """Parse the same files and COPY their listings and identifiers into unindexed temp tables; (rows, s)."""
    with psycopg.connect(url) as conn:
        conn.execute(RAW_TABLES)
        started = time.perf_counter()
        rows = len(read(MASTER / "iso10383_mic_2026-01-12.csv").venues)
        for names, _, _ in SNAPSHOTS:
            for name in names:
                parsed = read(MASTER / name)
                rows += len(parsed.listings) + parsed.skipped
                with conn.cursor().copy("COPY raw_listings FROM STDIN") as copy:
                    for x in parsed.listings:
                        copy.write_row(
                            (x.symbol, x.exchange_mic, x.name, x.asset_type, x.currency, x.isin, x.market_cap)
                        )
                with conn.cursor().copy("COPY raw_identifiers FROM STDIN") as copy:
                    for n, x in enumerate(parsed.listings):
                        for scheme, value, scope in x.identifiers:
                            copy.write_row((n, scheme, value, scope))
        conn.commit()
        return rows, time.perf_counter() - started


def symbols_to_resolve(url: str) -> list[str]:
    """100,000 symbols: today's listings in their NASDAQ, CQS and ACT spellings, and 5 % unknown ones."""
    with psycopg.connect(url) as conn:
        known = [
            r[0]
            for r in conn.execute(
                "SELECT value FROM shared.security_identifiers WHERE scheme IN ('nasdaq', 'cqs', 'act') "
                "AND valid_to IS NULL"
            )
        ]
    rng = random.Random(7)
    return [rng.choice(known) if rng.random() < 0.95 else f"NOPE{rng.randrange(10**6)}" for _ in range(LOOKUPS)]


def batched(db: tradedb.Database, symbols: list[str]) -> float:
    started = time.perf_counter()
    for i in range(0, len(symbols), BATCH):
        db.securities.lookup_many(symbols[i : i + BATCH], scheme=US)
    return time.perf_counter() - started


def plain_join(url: str, symbols: list[str]) -> float:
    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        for i in range(0, len(symbols), BATCH):
            conn.execute(
                "SELECT w.symbol, s.security_id FROM unnest(%s::text[]) AS w(symbol) "
                "JOIN shared.securities s ON s.symbol = w.symbol AND s.status <> 'delisted'",
                (symbols[i : i + BATCH],),
            ).fetchall()
        return time.perf_counter() - started


def one_by_one(db: tradedb.Database, symbols: list[str]) -> float:
    started = time.perf_counter()
    for symbol in symbols:
        db.securities.lookup_many([symbol], scheme=US)
    return time.perf_counter() - started


def main() -> None:
    if not MASTER.is_dir():
        sys.exit(f"the listing files are not at {MASTER}")
    with bench_server() as admin, bench_database(admin, DBNAME) as (url, settings):
        loads, raws = [], []
        rows = 0
        for _ in range(ROUNDS):
            rows, seconds = load_once(url, settings)
            loads.append(seconds)
            raws.append(raw_copy_once(url)[1])
        load, raw = statistics.median(loads), statistics.median(raws)
        print(f"load {rows:,} listing rows (all files, with identifiers), median of {ROUNDS}:")
        print(f"  raw binary COPY, no index    {rows / raw:10,.0f} rows/s")
        print(f"  load_listings                {rows / load:10,.0f} rows/s  ({raw / load:.2f}x raw COPY)")

        symbols = symbols_to_resolve(url)
        with tradedb.connect(url, settings=settings) as db:
            batch = statistics.median(batched(db, symbols) for _ in range(ROUNDS))
            plain = statistics.median(plain_join(url, symbols) for _ in range(ROUNDS))
            single = one_by_one(db, symbols[:SINGLE])
        print(f"resolve {LOOKUPS:,} random symbols (5 % unknown), median of {ROUNDS}:")
        print(f"  plain join on securities.symbol       {LOOKUPS / plain:10,.0f} lookups/s")
        print(f"  lookup_many, batches of {BATCH:,}      {LOOKUPS / batch:10,.0f} lookups/s  ({plain / batch:.2f}x)")
        print(
            f"  one symbol per call ({SINGLE:,})        {SINGLE / single:10,.0f} lookups/s  "
            f"({(SINGLE / single) / (LOOKUPS / batch):.3f}x the batches)"
        )


if __name__ == "__main__":
    main()

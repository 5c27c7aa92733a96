"""Benchmark: the audit ledger over 1M audit rows: sealing, verification, verification against a digest.

The rows are written the way services write them: 1,000 transactions of 1,000 audited inserts each (the
per-statement insert trigger). Baseline: reading the whole log once (``COPY ... TO STDOUT``) in the same run.
"""

from __future__ import annotations

import base64
import os
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

import tradedb
from _server import bench_server
from tradedb.ops import setup as provision
from tradedb.security import ledger
from tradedb.security.secrets import Keyring, generate_key
from tradedb.settings import Settings, with_dbname

ROWS = int(os.environ.get("TRADEDB_BENCH_AUDIT_ROWS", "1000000"))
PER_TRANSACTION = 1000
PREFIX = "tdbbench_"


def main() -> None:
    with bench_server() as admin:
        name = f"{PREFIX}audit_{uuid.uuid4().hex[:6]}"
        settings = Settings(_env_file=None, trading_db_name=name, prefect_db_name=f"{name}_prefect", role_prefix=PREFIX)
        provision.setup(settings=settings, url=admin)
        url = with_dbname(admin, name)
        try:
            started = time.perf_counter()
            with psycopg.connect(url) as conn:
                for first in range(0, ROWS, PER_TRANSACTION):
                    conn.execute(
                        "INSERT INTO execution.accounts (account_id, name)"
                        " SELECT 'AUD-' || g, 'bench' FROM generate_series(%s::int, %s::int) g",
                        (first, first + PER_TRANSACTION - 1),
                    )
                    conn.commit()
            written = time.perf_counter() - started
            with tradedb.connect(url, settings=settings) as db:
                started = time.perf_counter()
                sealed = ledger.seal(db)
                seal_seconds = time.perf_counter() - started
                assert sealed is not None
                started = time.perf_counter()
                with (
                    db.connection() as conn,
                    conn.cursor().copy("COPY (SELECT * FROM shared.audit_log) TO STDOUT") as copy,
                ):
                    for _ in copy:
                        pass
                read_seconds = time.perf_counter() - started
                started = time.perf_counter()
                report = ledger.verify(db)
                verify_seconds = time.perf_counter() - started
                keyring = Keyring((("k1", base64.b64decode(generate_key())),))
                folder = Path(tempfile.mkdtemp(prefix="tradedb-digests-"))
                ledger.write_digest(ledger.digest(db, keyring), folder)
                started = time.perf_counter()
                ledger.verify(db, digests=ledger.read_digests(folder, keyring))
                digest_seconds = time.perf_counter() - started
        finally:
            with psycopg.connect(with_dbname(admin, "postgres"), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                conn.execute(f'DROP DATABASE IF EXISTS "{name}_prefect" WITH (FORCE)')
    rows = report.rows
    print(f"audit ledger, {rows:,} audit rows in {report.transactions:,} transactions")
    print(f"{'operation':<42} {'seconds':>8} {'rows/s':>12} {'vs reading the log':>19}")
    for label, seconds in (
        ("baseline: read the whole log (COPY TO)", read_seconds),
        ("write them (1,000 rows per transaction)", written),
        ("seal them into one block", seal_seconds),
        ("verify (every row, transaction, block)", verify_seconds),
        ("verify against a digest", digest_seconds),
    ):
        print(f"{label:<42} {seconds:>8.2f} {rows / seconds:>12,.0f} {seconds / read_seconds:>18.1f}x")


if __name__ == "__main__":
    main()

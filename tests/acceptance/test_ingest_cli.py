"""`tradedb ingest`, `coverage` and `quality` as a user runs them; a killed ingest leaves whole batches only."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv

from tests.conftest import TRADEDB, TestDatabase, run_cli

BATCH = 20_000


def write_quotes_csv(path: Path, rows: int) -> None:
    start = datetime(2025, 6, 2, 13, 30, tzinfo=UTC)
    bid = np.round(100 + np.cumsum(np.full(rows, 0.0001)), 4)
    pacsv.write_csv(
        pa.table(
            {
                "timestamp": pa.array([start + timedelta(milliseconds=i) for i in range(rows)]),
                "symbol": ["KILL"] * rows,
                "bid": bid,
                "ask": bid + 0.01,
                "bid_size": np.full(rows, 100.0),
                "ask_size": np.full(rows, 100.0),
            }
        ),
        path,
    )


def test_ingest_coverage_quality_and_errors(db: TestDatabase, tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_text(
        "timestamp,symbol,bid,ask\n"
        "2025-06-02T13:30:00Z,CLI1,10.0,10.1\n"
        "2025-06-02T13:30:01Z,CLI1,10.2,10.1\n"  # crossed
        "2025-06-02T13:30:02Z,CLI1,10.0,10.1\n"
    )
    refused = run_cli("ingest", "quotes", str(path), "--source", "cli", "--create-securities", env=db.env())
    assert refused.returncode != 0
    assert "crossed_quote" in refused.stderr and "Traceback" not in refused.stderr
    done = run_cli(
        "ingest",
        "quotes",
        str(path),
        "--source",
        "cli",
        "--create-securities",
        "--policy",
        "quarantine",
        "--json",
        env=db.env(),
    )
    assert done.returncode == 0, done.stderr
    [result] = json.loads(done.stdout)
    assert (result["written"], result["rejected"], result["findings"]) == (2, 1, {"crossed_quote": 1})
    coverage = run_cli("coverage", "--symbol", "CLI1", env=db.env())
    assert coverage.returncode == 0 and "CLI1" in coverage.stdout and "quotes" in coverage.stdout
    quality = run_cli("quality", "--source", "cli", env=db.env())
    assert quality.returncode == 0 and "crossed_quote" in quality.stdout
    for args, needle in (
        (["ingest", "quotes", str(tmp_path / "missing.csv"), "--source", "x"], "no such file"),
        (["ingest", "quotes", str(path), "--source", "x", "--on-conflict", "merge"], "on_conflict"),
        (["ingest", "bars", str(path), "--source", "x", "--timeframe", "2d"], "timeframe"),
        (["ingest", "quotes", str(path), "--source", "x", "--format", "xlsx"], "--format"),
    ):
        bad = run_cli(*args, env=db.env())
        assert bad.returncode != 0 and needle in bad.stderr and "Traceback" not in bad.stderr, bad.stderr


def test_ingest_securities_from_a_listing(db: TestDatabase, tmp_path: Path) -> None:
    listing = tmp_path / "listed.csv"
    listing.write_text(
        "Symbol,Security Name,Market Category,Test Issue,ETF\nQQQ,Invesco QQQ,G,N,Y\nZXZZT,Test,G,Y,N\n"
        "File Creation Time: 0731202621:31,,,,\n"
    )
    done = run_cli("ingest", "securities", str(listing), "--json", env=db.env())
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"added": 1, "updated": 0, "skipped": 2}
    with db.connect() as conn:
        row = conn.execute("SELECT exchange_mic, asset_type FROM shared.securities WHERE symbol = 'QQQ'").fetchone()
    assert row == ("XNAS", "etf")


def test_a_killed_ingest_leaves_only_whole_batches(db: TestDatabase, tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    write_quotes_csv(path, 400_000)
    seed = run_cli(
        "ingest", "quotes", str(path), "--source", "seed", "--create-securities", "--batch-rows", "400000", env=db.env()
    )
    assert seed.returncode == 0, seed.stderr
    process = subprocess.Popen(
        [str(TRADEDB), "ingest", "quotes", str(path), "--source", "kill", "--batch-rows", str(BATCH)],
        env=db.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    landed = 0
    with psycopg.connect(db.url, autocommit=True) as conn:
        while time.monotonic() < deadline and landed == 0:
            row = conn.execute("SELECT count(*) FROM data_ingestion.quotes WHERE source = 'kill'").fetchone()
            landed = int(row[0]) if row else 0
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        time.sleep(0.5)  # the server notices the dead connection and rolls its transaction back
        row = conn.execute("SELECT count(*) FROM data_ingestion.quotes WHERE source = 'kill'").fetchone()
        assert row is not None
        final = int(row[0])
        cov = conn.execute(
            "SELECT coalesce(sum(row_count), 0) FROM data_ingestion.coverage WHERE source = 'kill'"
        ).fetchone()
    assert 0 < final < 400_000, "the ingest finished before it could be killed: make the file bigger"
    assert final % BATCH == 0, f"{final} rows: a partial batch landed"
    assert cov is not None and int(cov[0]) == final


def test_replace_of_a_file_with_repeated_timestamps_keeps_every_row(db: TestDatabase, tmp_path: Path) -> None:
    """About 3,000 quotes, several per minute (contributors quoting at the same instant), re-loaded with replace in
    batches of 500: every batch boundary that falls inside a minute used to delete the previous batch's rows."""
    path = tmp_path / "minutes.csv"
    rows = 3_000
    start = datetime(2025, 6, 3, 9, 0, tzinfo=UTC)
    rng = np.random.default_rng(11)
    per_minute = rng.integers(1, 12, size=rows)
    ts: list[datetime] = []
    minute = 0
    while len(ts) < rows:
        ts += [start + timedelta(minutes=minute)] * int(per_minute[minute])
        minute += 1
    bid = np.round(1.1 + np.arange(rows) * 1e-5, 5)
    pacsv.write_csv(
        pa.table({"timestamp": pa.array(ts[:rows]), "symbol": ["EURUSD"] * rows, "bid": bid, "ask": bid + 0.0002}),
        path,
    )
    common = ("ingest", "quotes", str(path), "--source", "minutes", "--create-securities", "--json")
    first = run_cli(*common, env=db.env())
    assert first.returncode == 0, first.stderr
    again = run_cli(*common, "--on-conflict", "replace", "--batch-rows", "500", env=db.env())
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)[0]
    assert (report["written"], report["replaced"]) == (rows, rows)
    with psycopg.connect(db.url) as conn:
        stored = conn.execute("SELECT count(*) FROM data_ingestion.quotes WHERE source = 'minutes'").fetchone()
        covered = conn.execute(
            "SELECT sum(row_count) FROM data_ingestion.coverage WHERE source = 'minutes' AND table_name = 'quotes'"
        ).fetchone()
    assert stored is not None and covered is not None
    assert (stored[0], covered[0]) == (rows, rows)

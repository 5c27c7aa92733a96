"""`tradedb ingest` on what vendors actually send: every item of the market-data correctness issue, as a user runs
it (the installed CLI), with the database as the judge."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import TestDatabase, run_cli

DATA_ERROR = 8


def stored(db: TestDatabase, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(db.url) as conn:
        return conn.execute(sql, params).fetchall()


def one_clean_line(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    assert "Traceback" not in stderr
    return errors[0]


def test_a_bad_dividend_writes_no_bar(db: TestDatabase, tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text(
        "date,symbol,open,high,low,close,volume,dividend,split\n"
        "2024-03-01,DIVX,10,11,9,10.5,1000,0,1\n"
        "2024-03-04,DIVX,10.5,11,10,10.8,1000,-0.25,1\n"
    )
    result = run_cli("ingest", "bars", str(path), "--source", "divx", "--create-securities", env=db.env())
    assert result.returncode == DATA_ERROR
    line = one_clean_line(result.stderr)
    assert "bars.csv line 3" in line and "dividend" in line
    assert stored(db, "SELECT count(*) FROM data_ingestion.bars WHERE source = 'divx'") == [(0,)]


def test_every_finding_of_a_row_is_recorded(db: TestDatabase, tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_text("timestamp,symbol,bid,ask\n2025-06-02T13:30:00Z,TWOF,10.0,0\n2025-06-02T13:30:01Z,TWOF,10.0,10.1\n")
    done = run_cli(
        "ingest", "quotes", str(path), "--source", "twof", "--create-securities", "--policy", "quarantine",
        "--json", env=db.env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["findings"] == {"crossed_quote": 1, "non_positive_price": 1}
    for check in ("crossed_quote", "non_positive_price"):
        found = run_cli("quality", "--source", "twof", "--check", check, "--rows", "--json", env=db.env())
        assert found.returncode == 0, found.stderr
        rows = json.loads(found.stdout)
        assert [r["check_type"] for r in rows] == [check]
        assert rows[0]["details"]["reasons"] == ["non_positive_price", "crossed_quote"]
        assert rows[0]["details"]["line"] == 2


def test_nan_in_a_csv_is_a_finding_as_in_arrow(db: TestDatabase, tmp_path: Path) -> None:
    path = tmp_path / "nan.csv"
    path.write_text(
        "timestamp,symbol,bid,ask\n2025-06-02T13:30:00Z,NANQ,10.0,10.1\n2025-06-02T13:30:01Z,NANQ,NaN,10.1\n"
    )
    refused = run_cli("ingest", "quotes", str(path), "--source", "nanq", "--create-securities", env=db.env())
    assert refused.returncode == DATA_ERROR
    line = one_clean_line(refused.stderr)
    assert "line 3 (non_finite)" in line
    assert stored(db, "SELECT count(*) FROM data_ingestion.quotes WHERE source = 'nanq'") == [(0,)]


def test_a_non_utf8_byte_is_one_line_naming_file_and_line(db: TestDatabase, tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"timestamp,symbol,bid,ask\n2025-06-02T13:30:00Z,OK,1,2\n2025-06-02T13:30:01Z,CAF\xe9,1,2\n")
    result = run_cli("ingest", "quotes", str(path), "--source", "latin", env=db.env())
    assert result.returncode == DATA_ERROR
    line = one_clean_line(result.stderr)
    assert "latin1.csv line 3" in line and "not UTF-8" in line and "0xe9" in line


def test_unmapped_columns_are_named_and_missing_prices_are_explained(db: TestDatabase, tmp_path: Path) -> None:
    path = tmp_path / "extra.csv"
    path.write_text("timestamp,symbol,bid,ask,venue_flags,seq\n2025-06-02T13:30:00Z,XTRA,10.0,10.1,R,7\n")
    done = run_cli("ingest", "quotes", str(path), "--source", "xtra", "--create-securities", "--json", env=db.env())
    assert done.returncode == 0, done.stderr
    assert "ignored columns (not quotes columns): venue_flags, seq" in done.stderr
    assert json.loads(done.stdout)[0]["ignored_columns"] == ["venue_flags", "seq"]
    nothing = tmp_path / "noprices.csv"
    nothing.write_text("timestamp,symbol,bid_px,ask_px\n2025-06-02T13:30:00Z,XTRA,10.0,10.1\n")
    refused = run_cli("ingest", "quotes", str(nothing), "--source", "xtra", env=db.env())
    assert refused.returncode == DATA_ERROR
    line = one_clean_line(refused.stderr)
    assert "no bid or ask column" in line and "bid_px, ask_px" in line


@pytest.mark.parametrize(
    ("header", "rows", "options", "used"),
    [
        # A vendor's YYYYMMDDhhmm integers under its own name, named by --time-column.
        ("DTYYYYMMDDHHMM,symbol,bid,ask", ["202506021330,{s},1,2", "202506021331,{s},1,2"], ["--time-column",
         "DTYYYYMMDDHHMM", "--tz", "UTC"], "DTYYYYMMDDHHMM"),
        # Separate date and time columns, recognised by their names.
        ("Date,Time,symbol,bid,ask", ["2025-06-02,13:30:00,{s},1,2", "2025-06-02,13:31:00,{s},1,2"], ["--tz", "UTC"],
         "Date + Time"),
        # Epoch milliseconds, recognised by size.
        ("timestamp,symbol,bid,ask", ["1748871000000,{s},1,2", "1748871060000,{s},1,2"], [], "timestamp"),
        # Epoch seconds, said explicitly.
        ("t_sec,symbol,bid,ask", ["1748871000,{s},1,2", "1748871060,{s},1,2"], ["--time-column", "t_sec",
         "--time-format", "epoch-s"], "t_sec (epoch-s)"),
        # A strptime format.
        ("when,symbol,bid,ask", ["02/06/2025 13:30,{s},1,2", "02/06/2025 13:31,{s},1,2"], ["--time-column", "when",
         "--time-format", "%d/%m/%Y %H:%M", "--tz", "UTC"], "when (%d/%m/%Y %H:%M)"),
    ],
)  # fmt: skip
def test_time_columns_in_vendor_spellings(
    db: TestDatabase, tmp_path: Path, header: str, rows: list[str], options: list[str], used: str
) -> None:
    symbol = f"TM{abs(hash(used)) % 10_000}"
    path = tmp_path / "times.csv"
    path.write_text("\n".join([header, *(r.format(s=symbol) for r in rows)]) + "\n")
    done = run_cli(
        "ingest", "quotes", str(path), "--source", "times", "--create-securities", *options, env=db.env()
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"times from {used}" in done.stderr
    times = stored(
        db,
        "SELECT q.ts FROM data_ingestion.quotes q JOIN shared.securities s USING (security_id) "
        "WHERE s.symbol = %s ORDER BY q.ts",
        symbol,
    )
    start = datetime(2025, 6, 2, 13, 30, tzinfo=UTC)
    assert [t for (t,) in times] == [start, start + timedelta(minutes=1)]


def test_undecidable_integer_times_ask_for_a_format(db: TestDatabase, tmp_path: Path) -> None:
    path = tmp_path / "ints.csv"
    path.write_text("seq,symbol,bid,ask\n1,IQ,1,2\n2,IQ,1,2\n")
    refused = run_cli("ingest", "quotes", str(path), "--source", "ints", "--time-column", "seq", env=db.env())
    assert refused.returncode == DATA_ERROR
    assert "--time-format" in one_clean_line(refused.stderr)


def test_quandl_wiki_columns_become_corporate_actions(db: TestDatabase, tmp_path: Path) -> None:
    path = tmp_path / "wiki.csv"
    path.write_text(
        "Date,ticker,Open,High,Low,Close,Volume,Ex-Dividend,Split_Ratio\n"
        "2014-06-05,WIKI,647.35,649.87,642.61,647.35,8587700,0.0,1.0\n"
        "2014-06-06,WIKI,649.90,651.26,644.47,645.57,12497800,3.29,1.0\n"
        "2014-06-09,WIKI,92.70,93.88,91.75,93.70,75415000,0.0,7.0\n"
    )
    done = run_cli("ingest", "bars", str(path), "--source", "wiki", "--create-securities", "--json", env=db.env())
    assert done.returncode == 0, done.stderr
    assert "2 corporate action(s) found and stored" in done.stderr
    assert json.loads(done.stdout)[0]["corporate_actions"] == 2
    actions = stored(
        db,
        "SELECT ex_date, kind, value FROM data_ingestion.corporate_actions a JOIN shared.securities s "
        "USING (security_id) WHERE s.symbol = 'WIKI' ORDER BY ex_date",
    )
    assert [(d, k, float(v)) for d, k, v in actions] == [
        (date(2014, 6, 6), "dividend", 3.29),
        (date(2014, 6, 9), "split", 7.0),
    ]
    plain = tmp_path / "plain.csv"
    plain.write_text("date,symbol,open,high,low,close,volume\n2014-06-05,PLN,1,2,1,2,10\n")
    done = run_cli("ingest", "bars", str(plain), "--source", "wiki", "--create-securities", env=db.env())
    assert done.returncode == 0, done.stderr
    assert "0 corporate actions found" in done.stderr


def test_quotes_of_several_contributors_at_one_instant(db: TestDatabase, tmp_path: Path) -> None:
    path = tmp_path / "banks.csv"
    lines = ["timestamp,symbol,bid,ask,contributor"]
    for minute in range(3):
        for bank in ("BANK-A", "BANK-B", "BANK-C"):  # the same quote from three banks at one instant
            lines.append(f"2025-06-02T13:3{minute}:00Z,EURCHF,0.9401,0.9405,{bank}")
    path.write_text("\n".join(lines) + "\n")
    done = run_cli("ingest", "quotes", str(path), "--source", "banks", "--create-securities", "--json", env=db.env())
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["written"] == 9
    again = run_cli("ingest", "quotes", str(path), "--source", "banks", "--on-conflict", "skip", "--json", env=db.env())
    assert json.loads(again.stdout)[0]["skipped"] == 9
    counts = stored(
        db, "SELECT contributor, count(*) FROM data_ingestion.quotes WHERE source = 'banks' GROUP BY 1 ORDER BY 1"
    )
    assert counts == [("BANK-A", 3), ("BANK-B", 3), ("BANK-C", 3)]
    # Without contributors the same rows are repeats of one another.
    path.write_text("\n".join(line.rsplit(",", 1)[0] for line in lines) + "\n")
    refused = run_cli("ingest", "quotes", str(path), "--source", "nobanks", env=db.env())
    assert refused.returncode == DATA_ERROR
    assert "duplicate" in one_clean_line(refused.stderr)

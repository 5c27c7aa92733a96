"""Partition maintenance: create ahead, move rows out of default partitions, retention with coverage kept right."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

import tradedb
from tests.conftest import TestDatabase, run_cli
from tradedb import ValidationError
from tradedb.ops import maintenance
from tradedb.schema import metadata

NOW = datetime(2026, 11, 22, 12, 30, tzinfo=UTC)


def partitions(db: TestDatabase, parent: str) -> set[str]:
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = %s::regclass",
            (parent,),
        ).fetchall()
    return {str(r[0]) for r in rows}


def test_create_ahead_is_idempotent_and_dry_run_changes_nothing(db: TestDatabase) -> None:
    before = partitions(db, "data_ingestion.quotes")
    planned = maintenance.maintain(settings=db.settings, url=db.server_url, ahead=3, now=NOW, dry_run=True)
    assert "data_ingestion.quotes_p20261122_1500" in planned.created
    assert any(s.startswith("CREATE TABLE IF NOT EXISTS") for s in planned.statements)
    assert partitions(db, "data_ingestion.quotes") == before
    done = maintenance.maintain(settings=db.settings, url=db.server_url, ahead=3, now=NOW)
    assert set(planned.created) == set(done.created)
    assert {"quotes_p20261122_1200", "quotes_p20261122_1500"} <= partitions(db, "data_ingestion.quotes")
    again = maintenance.maintain(settings=db.settings, url=db.server_url, ahead=3, now=NOW)
    assert again.created == [] and again.moved == {}


def test_retention_drops_old_partitions_and_keeps_coverage_right(db: TestDatabase) -> None:
    old, recent = NOW - timedelta(days=40), NOW - timedelta(days=2)
    with tradedb.connect(db.url, settings=db.settings) as conn:
        md = conn.market_data
        rows = [(old + timedelta(minutes=i), "RET", 1.0, 1.1) for i in range(3)]
        rows += [(recent + timedelta(minutes=i), "RET", 1.0, 1.1) for i in range(2)]
        md.write_quotes(rows, source="ret", create_securities=True)
        report = maintenance.maintain(settings=db.settings, url=db.server_url, ahead=0, now=NOW, retention="quotes=30d")
        assert any(name.startswith("data_ingestion.quotes_p2026101") for name in report.dropped), report.dropped
        cov = md.coverage(symbol="RET")
        assert [(c["row_count"], c["first_ts"]) for c in cov] == [(2, recent)]
        assert conn.fetch_value("SELECT count(*) FROM data_ingestion.quotes WHERE source = 'ret'") == 2
        # Detach keeps the rows in a table of their own, outside the parent.
        md.write_quotes([(old, "RET", 1.0, 1.1)], source="ret2")
        detached = maintenance.maintain(
            settings=db.settings, url=db.server_url, ahead=0, now=NOW, retention="quotes=30d", mode="detach"
        )
        assert len(detached.detached) == 1 and detached.dropped == []
        name = detached.detached[0]
        assert conn.fetch_value(f"SELECT count(*) FROM {name}") == 1  # a name maintain() created
        assert md.coverage(symbol="RET", source="ret2") == []


def test_bad_maintenance_input_is_refused() -> None:
    for text, needle in (
        ("quotes", "expected table="),
        ("quotes=30x", "expected table="),
        ("orders=3d", "not a partitioned table"),
        ("quotes=0d", "positive"),
    ):
        with pytest.raises(ValidationError, match=needle):
            maintenance.parse_retention(text)
    assert maintenance.parse_retention("quotes=2w, data_ingestion.bars=520w") == {
        "data_ingestion.quotes": timedelta(weeks=2),
        "data_ingestion.bars": timedelta(weeks=520),
    }
    with pytest.raises(ValidationError, match="drop or detach"):
        maintenance.maintain(mode="archive")


def test_cli_maintain_and_timescale_sql(db: TestDatabase) -> None:
    done = run_cli("maintain", "--json", env=db.env())
    assert done.returncode == 0, done.stderr
    assert set(json.loads(done.stdout)) >= {"created", "moved", "dropped", "detached", "hypertables"}
    bad = run_cli("maintain", "--retention", "quotes=forever", env=db.env())
    assert bad.returncode != 0 and "Traceback" not in bad.stderr and "quotes=forever" in bad.stderr
    env = db.env(TRADEDB_RETENTION="quotes=30d")
    sql_text = run_cli("maintain", "--timescale-sql", env=env)
    assert sql_text.returncode == 0, sql_text.stderr
    assert (
        "create_hypertable('data_ingestion.quotes_hypertable', by_range('ts', INTERVAL '3600 seconds'), "
        "create_default_indexes => false)"
    ) in sql_text.stdout
    # What LIKE does not copy comes back under the table's own names (read from this database's catalog).
    assert (
        "ALTER TABLE data_ingestion.bars ADD CONSTRAINT pk_bars PRIMARY KEY (security_id, timeframe, source, ts)"
        in (sql_text.stdout)
    )
    assert "CREATE INDEX ix_quotes_security_id ON data_ingestion.quotes USING btree (security_id, ts DESC)" in (
        sql_text.stdout
    )
    assert "CREATE TRIGGER maintenance_mode BEFORE INSERT OR DELETE OR UPDATE OR TRUNCATE ON data_ingestion.quotes" in (
        sql_text.stdout
    )
    assert "-- retention 30 days: `tradedb maintain` drops chunks older than that" in sql_text.stdout
    assert "timescaledb.compress_segmentby = 'security_id'" in sql_text.stdout
    with db.connect() as conn:  # printing changed nothing
        assert conn.execute(
            "SELECT relkind FROM pg_class WHERE oid = 'data_ingestion.quotes'::regclass"
        ).fetchone() == ("p",)


def test_timescale_sql_text() -> None:
    table = metadata.tables["data_ingestion.bars"]
    statements = maintenance.timescale_sql(table, chunk_interval="month", retain=timedelta(days=3650))
    assert statements[0].startswith('CREATE TABLE "data_ingestion"."bars_hypertable" (LIKE "data_ingestion"."bars"')
    assert statements[1] == (
        "SELECT create_hypertable('data_ingestion.bars_hypertable', by_range('ts', INTERVAL '1 month'), "
        "create_default_indexes => false)"
    )
    assert statements[-1] == "-- retention 3650 days: `tradedb maintain` drops chunks older than that"
    assert not any("compress" in s for s in statements)

"""tradedb verify names what is missing or different."""

from __future__ import annotations

import json

from tests.conftest import TestDatabase, run_cli
from tradedb.ops.verify import verify


def test_a_set_up_database_verifies(db: TestDatabase) -> None:
    assert verify(settings=db.settings, url=db.server_url) == []
    result = run_cli("verify", "--json", env=db.env())
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"ok": True, "problems": []}


def test_verify_names_a_dropped_index_and_a_dropped_table(db: TestDatabase) -> None:
    with db.connect(autocommit=True) as conn:
        conn.execute("DROP INDEX execution.ix_orders_account_id_status")
        conn.execute("DROP TABLE analytics.portfolio_summary")
        conn.execute("ALTER TABLE execution.fills DROP CONSTRAINT ck_fills_price_positive")
    problems = {(p.kind, p.name) for p in verify(settings=db.settings, url=db.server_url)}
    assert ("index", "execution.ix_orders_account_id_status") in problems
    assert ("table", "analytics.portfolio_summary") in problems
    assert ("constraint", "execution.ck_fills_price_positive") in problems
    assert any(kind == "drift" for kind, _ in problems)

    result = run_cli("verify", env=db.env())
    assert result.returncode == 1
    assert "ix_orders_account_id_status" in result.stdout
    assert "analytics.portfolio_summary" in result.stdout
    assert "Traceback" not in result.stderr


def test_verify_reports_a_missing_default_partition_and_prefect_db(db: TestDatabase) -> None:
    with db.connect(autocommit=True) as conn:
        conn.execute("DROP TABLE data_ingestion.quotes_default")
    settings = db.settings.model_copy(update={"prefect_db_name": "tdbt_no_such_prefect"})
    problems = {(p.kind, p.name) for p in verify(settings=settings, url=db.server_url)}
    assert ("partition", "data_ingestion.quotes") in problems
    assert ("database", "tdbt_no_such_prefect") in problems

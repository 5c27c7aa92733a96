"""The Prefect flows run locally against the real database (Prefect's test harness: a temporary local server)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import tradedb
from tests.conftest import TestDatabase
from tradedb.ops import backup
from tradedb.ops import setup as provision

prefect = pytest.importorskip("prefect", reason="the Prefect flows need the `prefect` extra")

from prefect.client.schemas.schedules import CronSchedule  # noqa: E402
from prefect.testing.utilities import prefect_test_harness  # noqa: E402

from tradedb.ops import flows  # noqa: E402


@pytest.fixture(scope="module")
def harness() -> Iterator[None]:
    with prefect_test_harness(server_startup_timeout=60):
        yield


@pytest.fixture
def environment(db: TestDatabase, monkeypatch: pytest.MonkeyPatch) -> TestDatabase:
    for key, value in db.env().items():
        if key.startswith(("DATABASE_", "TRADING_", "PREFECT_DB", "TRADEDB_")):
            monkeypatch.setenv(key, value)
    return db


def test_backup_and_restore_check_flows(harness: None, environment: TestDatabase, tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    made = flows.backup_flow(folder=str(folder), verify=True)
    assert made["verified_at"] and made["tables"] > 30
    assert (folder / f"{made['name']}.dump").exists()
    checked = flows.restore_check_flow(folder=str(folder))
    assert checked["name"] == made["name"]
    assert backup.read_manifest(folder / f"{made['name']}.dump").verified_at == checked["verified_at"]


def test_restore_check_fails_without_a_backup(harness: None, environment: TestDatabase, tmp_path: Path) -> None:
    with pytest.raises(tradedb.BackupError, match="no backup"):
        flows.restore_check_flow(folder=str(tmp_path / "empty"))


def test_maintenance_flow_creates_partitions_ahead_and_protects_them(harness: None, environment: TestDatabase) -> None:
    t = datetime(2024, 5, 9, 10, 1, tzinfo=UTC)
    events = [
        {"ts": t + timedelta(minutes=m), "symbol": "FLOW", "event_type": "new", "order_ref": f"o{m}", "side": "buy",
         "price": 10.0, "size": 1.0, "sequence": m}
        for m in (0, 39)
    ]  # fmt: skip
    with tradedb.connect(environment.url, settings=environment.settings) as db:
        db.market_data.write_order_book_events(events, source="test", create_securities=True)
    result = flows.maintenance_flow(ahead=3)
    assert any(name.startswith("data_ingestion.quotes_p") for name in result["created"])
    assert result["book_snapshots"] == {"FLOW/test": 2}  # 10:15 and 10:30: the grid between the two events
    with environment.connect() as conn:
        newest = conn.execute(
            "SELECT c.relname, c.relrowsecurity FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'execution.order_events'::regclass ORDER BY c.relname DESC LIMIT 1"
        ).fetchone()
    assert newest is not None and newest[1] is True  # tenant policies reach the new partition
    again = flows.maintenance_flow(ahead=3)
    assert again["created"] == [] and again["rls_statements"] == 0 and again["book_snapshots"] == {}


def test_deploy_registers_the_schedules(harness: None, environment: TestDatabase) -> None:
    from prefect.client.orchestration import get_client

    ids = flows.deploy(folder="/var/backups/tradedb")
    assert len(ids) == 5
    with get_client(sync_client=True) as client:
        deployments = {d.name: d for d in client.read_deployments()}
    weekly = deployments["weekly-backup"]
    schedule = weekly.schedules[0].schedule
    assert isinstance(schedule, CronSchedule)
    assert (schedule.cron, schedule.timezone) == ("0 4 * * 0", "UTC")
    assert weekly.parameters == {"folder": "/var/backups/tradedb"}
    marks = deployments["mark-to-market"].schedules[0].schedule
    assert isinstance(marks, CronSchedule) and marks.cron == "*/5 * * * *"
    assert "daily-performance" in deployments


def test_mark_to_market_and_performance_flows(harness: None, environment: TestDatabase) -> None:
    with tradedb.connect(environment.url, settings=environment.settings) as db:
        account = f"FLOW-{datetime.now(UTC):%H%M%S%f}"
        db.accounts.create(account, "flow book", capital=100_000)
        security = db.securities.add(f"F{datetime.now(UTC):%M%S%f}"[:8], exchange="XNAS")
        db.risk.set_limit(account, "max_daily_loss", 50, halt_on_breach=True)
        placed = db.execution.submit_order(
            account_id=account, security_id=security, side="buy", quantity=10, order_type="limit", limit_price=100
        )
        db.execution.record_fill(f"F-{account}", placed["order_id"], 10, 100)
        db.market_data.write_trades(
            [{"ts": datetime.now(UTC), "security_id": security, "price": 90.0, "size": 1.0}], source="flow"
        )
    result = flows.mark_to_market_flow()
    assert result["breaches"][account] == ["max_daily_loss"] and account in result["halted"]
    with tradedb.connect(environment.url, settings=environment.settings) as db:
        snapshot = db.analytics.portfolio(account)
        assert [(r["quantity"], r["market_value"], r["unrealized_pnl"]) for r in snapshot] == [(10, 900, -100)]
    daily = flows.daily_performance_flow()
    assert daily["days"][account] >= 1


def test_prefect_migrates_its_own_database(db: TestDatabase) -> None:
    url = provision.prefect_database_url(db.settings, db.server_url, show_password=True)
    result = subprocess.run(
        [str(Path(sys.executable).parent / "prefect"), "server", "database", "upgrade", "-y"],
        env={**db.env(), "PREFECT_API_DATABASE_CONNECTION_URL": url, "PREFECT_HOME": str(Path("/tmp") / db.name)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    import psycopg

    with psycopg.connect(db.server_url.rsplit("/", 1)[0] + "/" + db.settings.prefect_db_name) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
    assert tables is not None and tables[0] > 20


def test_deploy_with_pitr_registers_the_pgbackrest_backups(harness: None, environment: TestDatabase) -> None:
    from prefect.client.orchestration import get_client

    ids = flows.deploy(folder="/var/backups/tradedb", pitr_backups=True)
    assert len(ids) == 7
    with get_client(sync_client=True) as client:
        deployments = {d.name: d for d in client.read_deployments()}
    full, incremental = deployments["weekly-pitr-full"], deployments["daily-pitr-incremental"]
    assert (full.parameters, incremental.parameters) == ({"kind": "full"}, {"kind": "incr"})
    schedule = incremental.schedules[0].schedule
    assert isinstance(schedule, CronSchedule) and (schedule.cron, schedule.timezone) == ("0 3 * * 1-6", "UTC")

"""Platform settings and maintenance mode against a real database, through both APIs and the CLI."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest

import tradedb
from tests.conftest import TestDatabase, run_cli
from tests.integration.facade import Api
from tradedb import MaintenanceMode, NotFoundError, ValidationError
from tradedb.config import GUARDED_SCHEMAS
from tradedb.ops.verify import verify


@pytest.fixture(params=["sync", "async"])
def api(request: pytest.FixtureRequest, fresh_db: TestDatabase) -> Iterator[Api]:
    handle = Api(str(request.param), fresh_db.url, fresh_db.settings, app_user="ops-alice")
    yield handle
    handle.close()


def test_settings_are_typed_validated_and_audited(api: Api, fresh_db: TestDatabase) -> None:
    config = api.feature("config")
    assert config.get("maintenance_mode") is False
    assert config.get("default_risk_limit") == Decimal(10000)
    assert config.set("default_risk_limit", "2500.75") == Decimal("2500.75")
    assert config.get("default_risk_limit") == Decimal("2500.75")
    assert config.set("maintenance_mode", "off") is False
    before = {r["key"]: r["value"] for r in config.all()}
    for key, value, message in [
        ("maintenance_mode", "maybe", "true or false"),
        ("maintenance_mode", 2, "true or false"),
        ("default_risk_limit", -1, "must be > 0"),
        ("default_risk_limit", "lots", "must be a number"),
        ("system_version", "9.9", "read-only"),
        (" padded", 1, "without surrounding spaces"),
    ]:
        with pytest.raises(ValidationError, match=message):
            config.set(key, value)
    with pytest.raises(NotFoundError, match="pass create=True"):
        config.set("desk_open_hour", 8)
    assert {r["key"]: r["value"] for r in config.all()} == before  # nothing written
    assert config.set("desk_open_hour", 8, create=True, description="when the desk opens") == 8
    assert config.get("desk_open_hour") == 8
    with pytest.raises(NotFoundError, match="no setting 'nope'"):
        config.get("nope")
    assert "max_concurrent_trades" not in before  # removed by migration 0017: nothing honoured it
    # Every change is in the audit log, with who made it.
    with fresh_db.connect() as conn:
        who = conn.execute(
            "SELECT app_user, row_key->>'key' FROM shared.audit_log WHERE table_name = 'system_config'"
            " AND operation = 'UPDATE' ORDER BY audit_id"
        ).fetchall()
    assert ("ops-alice", "default_risk_limit") in who


def test_default_risk_limit_applies_to_new_accounts(fresh_db: TestDatabase) -> None:
    with tradedb.connect(fresh_db.url, settings=fresh_db.settings, max_size=1) as db:
        db.config.set("default_risk_limit", 777)
        db.accounts.create("DEF-1", "with the default")
        db.config.set("default_risk_limit", None)
        db.accounts.create("DEF-2", "without one")
        assert [(x["limit_type"], x["limit_value"]) for x in db.risk.limits("DEF-1")] == [
            ("max_position_notional", Decimal(777))
        ]
        assert db.risk.limits("DEF-2") == []


def test_maintenance_mode_refuses_writes_and_allows_reads(fresh_db: TestDatabase) -> None:
    with tradedb.connect(fresh_db.url, settings=fresh_db.settings, max_size=2) as db:
        db.accounts.create("MM-1", "book")
        db.risk.set_limit("MM-1", "max_position_notional", 10**9)
        security = db.securities.add("MMX", exchange="XNAS")
        db.config.set("maintenance_mode", True)
        with pytest.raises(MaintenanceMode, match=r"maintenance mode: execution\.orders is read-only"):
            db.execution.submit_order(
                account_id="MM-1", security_id=security, side="buy", quantity=1, reference_price=1
            )
        quote = {"ts": datetime.now(UTC), "security_id": security, "bid": 1.0, "ask": 1.1}
        with pytest.raises(MaintenanceMode, match=r"data_ingestion\.quotes"):
            db.market_data.write_quotes([quote], source="mm")
        with pytest.raises(MaintenanceMode):
            db.accounts.create("MM-2", "refused")
        # Reads go on; so do the settings (shared is not guarded), and an operator's session may write.
        assert db.accounts.get("MM-1")["account_id"] == "MM-1"
        assert db.execution.orders(account_id="MM-1") == []
        with db.transaction() as conn:
            conn.execute("SET LOCAL tradedb.maintenance_writes = on")
            conn.execute("UPDATE execution.accounts SET name = 'repaired' WHERE account_id = 'MM-1'")
        assert db.accounts.get("MM-1")["name"] == "repaired"
        db.config.set("maintenance_mode", False)
        placed = db.execution.submit_order(
            account_id="MM-1", security_id=security, side="buy", quantity=1, reference_price=1
        )
        assert placed["status"] == "pending"


def test_every_table_of_the_guarded_schemas_is_guarded(fresh_db: TestDatabase) -> None:
    assert verify(settings=fresh_db.settings, url=fresh_db.server_url) == []
    with fresh_db.connect() as conn:
        guarded = conn.execute(
            "SELECT count(DISTINCT tgrelid) FROM pg_trigger WHERE tgname = 'maintenance_mode'"
        ).fetchone()
        tables = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = ANY(%s) AND c.relkind IN ('r', 'p') AND NOT c.relispartition",
            (list(GUARDED_SCHEMAS),),
        ).fetchone()
        assert guarded == tables and tables is not None and int(str(tables[0])) > 30
        conn.execute("CREATE TABLE analytics.scratch_table (x int)")
        conn.commit()
    problems = verify(settings=fresh_db.settings, url=fresh_db.server_url)
    assert [(p.kind, p.name) for p in problems if p.kind == "trigger"] == [("trigger", "analytics.scratch_table")]


def test_cli_reads_and_changes_settings(fresh_db: TestDatabase) -> None:
    env = fresh_db.env()
    listed = run_cli("config", "list", env=env)
    assert listed.returncode == 0 and "maintenance_mode" in listed.stdout and "default_risk_limit" in listed.stdout
    changed = run_cli("config", "set", "maintenance_mode", "true", "--by", "ops-bob", env=env)
    assert changed.returncode == 0 and "maintenance_mode = true" in changed.stdout
    assert run_cli("config", "get", "maintenance_mode", env=env).stdout.strip() == "true"
    account = f"CFG-{uuid.uuid4().hex[:6]}"
    refused = run_cli("accounts", "create", account, "--name", "n", env=env)
    assert refused.returncode != 0 and "maintenance mode" in refused.stderr and "Traceback" not in refused.stderr
    bad = run_cli("config", "set", "maintenance_mode", "perhaps", env=env)
    assert bad.returncode == 8 and "true or false" in bad.stderr
    assert run_cli("config", "set", "maintenance_mode", "false", env=env).returncode == 0
    assert run_cli("accounts", "create", account, "--name", "n", env=env).returncode == 0

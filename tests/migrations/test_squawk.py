"""squawk lints the offline SQL of every revision (exceptions, with reasons, in .squawk.toml)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import REPO
from tradedb.ops import migrate

SQUAWK = Path(sys.executable).parent / "squawk"
#: Rules a single revision breaks on purpose, with the reason (the repository-wide ones are in .squawk.toml).
DELIBERATE: dict[str, tuple[str, ...]] = {
    # 0006 drops bars' foreign key to the security master on purpose: the writers check ids themselves (as on
    # the tick tables) and the per-row check held appends to a seventh of COPY speed.
    "0006": ("ban-drop-constraint",),
    # 0010 changes the backtest tables' result columns to double precision in place and indexes them without
    # CONCURRENTLY: no code wrote those tables before it, so the rewrite and the lock cover empty tables.
    # A run's instance becomes optional (an optimization's trials belong to the strategy), hence the dropped NOT NULL;
    # the result series lose their foreign keys (a per-row check cost four times the COPY), as bars did in 0006.
    "0010": ("changing-column-type", "require-concurrent-index-creation", "ban-drop-not-null", "ban-drop-constraint"),
    # 0012 replaces shared.event_outbox, which nothing wrote before it, with a partitioned table.
    "0012": ("ban-drop-table",),
    # 0014 replaces data_ingestion.load_runs, which nothing wrote before it, with an ingest log; it turns the
    # security master's unique key into a unique index over listings that still trade (a delisted listing gives its
    # ticker up) and indexes its new tables without CONCURRENTLY: the security master holds tens of thousands of
    # rows at most (an index build of milliseconds), and CONCURRENTLY cannot run in the migration's transaction.
    "0014": ("ban-drop-table", "ban-drop-constraint", "require-concurrent-index-creation"),
    # 0015 indexes the audit log's new txid column (NULL in every existing row) on the partitioned parent, where
    # CONCURRENTLY is not available; the build blocks audited writes for as long as it reads the log once.
    "0015": ("require-concurrent-index-creation",),
    # 0018 checks accounts.capital > 0 in the revision that adds the column: every row holds NULL, and the accounts
    # table holds one row per trading account, so the validating scan is instant.
    "0018": ("constraint-missing-not-valid",),
    # 0022 changes the execution tables' keys to lead with the account (what a Citus cluster requires): a key is
    # replaced by dropping it and building the new one, and the foreign keys on it with it, in one transaction
    # (NOT VALID would save nothing there: the index builds hold the tables anyway, and a partitioned table takes
    # no NOT VALID foreign key before PostgreSQL 18). The Runbook says to apply it in a quiet window, with what it
    # takes per million fills. record_fill is replaced, not overloaded, so calls with 0015's nine arguments
    # resolve to the new one.
    "0022": (
        "ban-drop-constraint",
        "constraint-missing-not-valid",
        "disallowed-unique-constraint",
        "adding-serial-primary-key-field",
        "adding-foreign-key-constraint",
        "require-concurrent-index-creation",
        "ban-drop-function",
    ),
}


REPOSITORY_WIDE: list[str] = tomllib.loads((REPO / ".squawk.toml").read_text())["excluded_rules"]


@pytest.mark.parametrize("revision", [r.revision for r in migrate.history()])
def test_revision_sql_passes_squawk(revision: str, tmp_path: Path) -> None:
    assert SQUAWK.exists() or shutil.which("squawk"), "squawk-cli is part of the dev extra"
    down = next(r.down_revision for r in migrate.history() if r.revision == revision)
    text = migrate.offline_sql(down, revision)
    path = tmp_path / f"{revision}.sql"
    path.write_text(text)
    result = subprocess.run(
        [
            str(SQUAWK if SQUAWK.exists() else "squawk"),
            "-c",
            str(REPO / ".squawk.toml"),
            # --exclude replaces the configuration's list, so both are passed.
            *(f"--exclude={rule}" for rule in (*REPOSITORY_WIDE, *DELIBERATE.get(revision, ()))),
            "--reporter",
            "gcc",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr

"""The audit ledger against a real database: sealing, digests, and every kind of tampering it must name."""

from __future__ import annotations

import base64
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

import tradedb
from tests.conftest import ROLE_PREFIX, TestDatabase, run_cli
from tradedb import DigestError, LedgerTampered, SecretError
from tradedb.ops import migrate
from tradedb.security import ledger
from tradedb.security import secrets as crypto

KEYS = f"k2:{crypto.generate_key()},k1:{crypto.generate_key()}"

# What an attacker who owns the database can do: recompute a row's hash, then its transaction's, then every block's
# from there on, with the published formulas. Only a digest kept outside the database tells.
REHASH_ROW = """
UPDATE shared.audit_log SET row_hash = sha256(convert_to(concat_ws(E'\\x1f', txid::text, audit_id::text,
    to_char(changed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'), table_schema, table_name, operation,
    coalesce(row_key::text, ''), coalesce(old_values::text, ''), coalesce(new_values::text, ''), db_user,
    coalesce(app_user, '')), 'UTF8'))
WHERE audit_id = %s
"""
REHASH_LEGACY_ROW = """
UPDATE shared.audit_log SET row_hash = sha256(coalesce(prev_hash, '\\x'::bytea) || convert_to(concat_ws(E'\\x1f',
    audit_id::text, to_char(changed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'), table_schema, table_name,
    operation, coalesce(row_key::text, ''), coalesce(old_values::text, ''), coalesce(new_values::text, ''), db_user,
    coalesce(app_user, '')), 'UTF8'))
WHERE audit_id = %s
"""
REHASH_TRANSACTION = """
UPDATE shared.audit_transactions t SET row_count = c.n, tx_hash = c.h
FROM (SELECT txid, count(*) AS n, sha256(convert_to(txid::text, 'UTF8')
        || string_agg(row_hash, '\\x'::bytea ORDER BY audit_id)) AS h
      FROM shared.audit_log WHERE txid = %(txid)s GROUP BY txid) c
WHERE t.txid = c.txid
"""
REHASH_BLOCKS = """
DO $$
DECLARE b record; prev bytea;
BEGIN
    FOR b IN SELECT block_id FROM shared.audit_blocks ORDER BY block_id LOOP
        IF b.block_id > 0 THEN
            UPDATE shared.audit_blocks k SET prev_hash = prev, block_hash = sha256(prev
                || convert_to(format('%s|%s|%s|', k.block_id, k.transactions, k.row_count), 'UTF8')
                || (SELECT string_agg(tx_hash, '\\x'::bytea ORDER BY ordinal) FROM shared.audit_transactions t
                    WHERE t.block_id = k.block_id))
            WHERE k.block_id = b.block_id;
        END IF;
        SELECT block_hash INTO prev FROM shared.audit_blocks WHERE block_id = b.block_id;
    END LOOP;
END $$
"""


@dataclass
class Ledger:
    db: TestDatabase
    #: The three blocks the fixture sealed (a template's own changes are sealed before them).
    blocks: list[int]


@pytest.fixture
def ledger_db(fresh_db: TestDatabase) -> Ledger:
    """A database with three sealed blocks of five transactions each, and one transaction not sealed yet."""
    blocks = []
    with tradedb.connect(fresh_db.url, settings=fresh_db.settings) as db:
        ledger.seal(db)
        for block in range(3):
            for n in range(4):
                db.execute("INSERT INTO execution.accounts (account_id, name) VALUES (%s, 'x')", (f"L-{block}-{n}",))
            db.execute("UPDATE execution.accounts SET name = 'y' WHERE account_id LIKE %s", (f"L-{block}-%",))
            sealed = ledger.seal(db)
            assert sealed is not None
            assert (sealed.transactions, sealed.rows) == (5, 8)
            blocks.append(sealed.block_id)
        db.execute("INSERT INTO execution.accounts (account_id, name) VALUES ('L-pending', 'x')")
    return Ledger(fresh_db, blocks)


def owner_sql(db: TestDatabase, *statements: tuple[str, Sequence[Any] | Mapping[str, Any] | None]) -> None:
    with db.connect() as conn:
        conn.execute(f"SET ROLE {ROLE_PREFIX}owner")
        for statement, params in statements:
            conn.execute(statement, params)
        conn.commit()


def keyring(*, drop_newest: bool = False) -> crypto.Keyring:
    keys = tuple((k, base64.b64decode(v)) for k, _, v in (item.partition(":") for item in KEYS.split(",")))
    return crypto.Keyring(keys[1:] if drop_newest else keys)


def findings(db: TestDatabase, digests: Path | None = None) -> list[str]:
    documents = ledger.read_digests(digests, keyring()) if digests else None
    with tradedb.connect(db.url, settings=db.settings) as handle:
        try:
            ledger.verify(handle, digests=documents)
        except LedgerTampered as exc:
            return list(exc.report.findings)
    return []


def sealed_row(db: TestDatabase, block: int, offset: int = 0) -> tuple[int, int]:
    """(audit_id, txid) of a row of the largest transaction sealed in ``block`` (the update of 4 rows)."""
    with db.connect() as conn:
        row = conn.execute(
            "SELECT l.audit_id, l.txid FROM shared.audit_log l JOIN shared.audit_transactions t USING (txid)"
            " WHERE t.block_id = %s ORDER BY t.row_count DESC, l.audit_id OFFSET %s LIMIT 1",
            (block, offset),
        ).fetchone()
    assert row is not None
    return int(str(row[0])), int(str(row[1]))


def test_an_intact_ledger_verifies_and_says_what_is_not_sealed(ledger_db: Ledger) -> None:
    with tradedb.connect(ledger_db.db.url, settings=ledger_db.db.settings) as db:
        report = ledger.verify(db)
        assert (report.blocks, report.unsealed_rows, report.findings) == (ledger_db.blocks[-1] + 1, 1, [])
        sealed = ledger.seal(db)
        assert sealed is not None
        assert (sealed.block_id, sealed.transactions, sealed.rows) == (ledger_db.blocks[-1] + 1, 1, 1)
        assert ledger.seal(db) is None
        assert ledger.verify(db).unsealed_rows == 0


def test_an_edited_row(ledger_db: Ledger) -> None:
    block = ledger_db.blocks[1]
    audit_id, txid = sealed_row(ledger_db.db, block)
    owner_sql(ledger_db.db, ("UPDATE shared.audit_log SET app_user = 'mallory' WHERE audit_id = %s", (audit_id,)))
    assert findings(ledger_db.db) == [f"audit_id {audit_id}: its content does not match its row_hash (edited)"]
    # Re-hashing the row hides it from the row check, not from its transaction's hash.
    owner_sql(ledger_db.db, (REHASH_ROW, (audit_id,)))
    assert findings(ledger_db.db) == [
        f"transaction {txid} (block {block}): its rows hash differently than when sealed (edited, reordered or "
        f"replaced)"
    ]


def test_a_deleted_row_and_a_deleted_transaction(ledger_db: Ledger) -> None:
    block = ledger_db.blocks[0]
    audit_id, txid = sealed_row(ledger_db.db, block)
    owner_sql(ledger_db.db, ("DELETE FROM shared.audit_log WHERE audit_id = %s", (audit_id,)))
    assert findings(ledger_db.db) == [f"transaction {txid} (block {block}): 3 row(s) where 4 were sealed (deleted)"]
    owner_sql(ledger_db.db, ("DELETE FROM shared.audit_log WHERE txid = %s", (txid,)))
    assert findings(ledger_db.db) == [f"transaction {txid} (block {block}): all 4 of its rows are gone (deleted)"]


def test_inserted_rows(ledger_db: Ledger) -> None:
    block = ledger_db.blocks[0]
    audit_id, txid = sealed_row(ledger_db.db, block)
    copy = (
        "INSERT INTO shared.audit_log (audit_id, changed_at, table_schema, table_name, operation, row_key,"
        " old_values, new_values, db_user, app_user, txid, row_hash)"
        " SELECT nextval('shared.audit_log_audit_id_seq'), changed_at, table_schema, table_name, operation, row_key,"
        " old_values, new_values, db_user, 'forged', %s, row_hash FROM shared.audit_log WHERE audit_id = %s"
    )
    # Into a sealed transaction, and as a transaction of its own that ended before the last seal.
    owner_sql(ledger_db.db, (copy, (txid, audit_id)), (copy, (txid - 1000, audit_id)))
    found = findings(ledger_db.db)
    assert f"transaction {txid} (block {block}): 5 row(s) where 4 were sealed (inserted)" in found
    assert any(f.startswith(f"transaction {txid - 1000}: 1 audit row(s) that no seal took") for f in found)


def test_reordered_rows(ledger_db: Ledger) -> None:
    block = ledger_db.blocks[2]
    first, txid = sealed_row(ledger_db.db, block, 0)
    second, _ = sealed_row(ledger_db.db, block, 1)
    swap = "UPDATE shared.audit_log SET audit_id = %s WHERE audit_id = %s"
    owner_sql(ledger_db.db, (swap, (-1, first)), (swap, (first, second)), (swap, (second, -1)))
    owner_sql(ledger_db.db, (REHASH_ROW, (first,)), (REHASH_ROW, (second,)))
    assert findings(ledger_db.db) == [
        f"transaction {txid} (block {block}): its rows hash differently than when sealed (edited, reordered or "
        f"replaced)"
    ]


def test_a_block_out_of_order(ledger_db: Ledger) -> None:
    gone, after = ledger_db.blocks[1], ledger_db.blocks[2]
    txids = "SELECT txid FROM shared.audit_transactions WHERE block_id = %s"
    owner_sql(
        ledger_db.db,
        (f"DELETE FROM shared.audit_log WHERE txid IN ({txids})", (gone,)),
        ("DELETE FROM shared.audit_transactions WHERE block_id = %s", (gone,)),
        ("DELETE FROM shared.audit_blocks WHERE block_id = %s", (gone,)),
    )
    found = findings(ledger_db.db)
    assert f"block {after} is where block {gone} should be (blocks out of order)" in found
    assert f"block {after}: prev_hash is not the hash of block {gone}" in found


def test_a_ledger_rewritten_after_a_digest_is_caught_by_the_digest(ledger_db: Ledger, tmp_path: Path) -> None:
    env = ledger_db.db.env(TRADEDB_ENCRYPTION_KEYS=KEYS)
    written = run_cli("audit", "digest", "--out", str(tmp_path), env=env)
    assert written.returncode == 0, written.stderr
    last = ledger_db.blocks[-1] + 1  # the digest sealed the pending transaction first
    assert f"digest of block {last} written" in written.stdout
    assert run_cli("audit", "verify", "--digests", str(tmp_path), env=env).returncode == 0
    audit_id, txid = sealed_row(ledger_db.db, ledger_db.blocks[1])
    owner_sql(
        ledger_db.db,
        ('UPDATE shared.audit_log SET new_values = \'{"name": "z"}\' WHERE audit_id = %s', (audit_id,)),
        (REHASH_ROW, (audit_id,)),
        (REHASH_TRANSACTION, {"txid": txid}),
        (REHASH_BLOCKS, None),
    )
    # Consistent with itself: a hash chain alone cannot tell.
    assert findings(ledger_db.db) == []
    found = findings(ledger_db.db, tmp_path)
    assert len(found) == 1
    assert f"block {last} hashes differently than when the digest was taken" in found[0]
    assert "the ledger was rewritten" in found[0]
    shown = run_cli("audit", "verify", "--digests", str(tmp_path), env=env)
    assert shown.returncode == 1
    assert "the ledger was rewritten" in shown.stderr


def test_digest_errors(ledger_db: Ledger, tmp_path: Path) -> None:
    with tradedb.connect(ledger_db.db.url, settings=ledger_db.db.settings) as db:
        document = ledger.digest(db, keyring())
    assert document["key_id"] == "k2"
    path = ledger.write_digest(document, tmp_path)
    with pytest.raises(DigestError, match="written once"):
        ledger.write_digest(document, tmp_path)
    with pytest.raises(DigestError, match="does not exist"):
        ledger.read_digests(tmp_path / "missing", keyring())
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DigestError, match="holds no digest"):
        ledger.read_digests(empty, keyring())
    text = path.read_text()
    path.write_text(text.replace(document["block_hash"], "00" * 32))
    with pytest.raises(DigestError, match="the signature does not match"):
        ledger.read_digests(tmp_path, keyring())
    path.write_text("{not json")
    with pytest.raises(DigestError, match="is not a tradedb audit digest"):
        ledger.read_digests(tmp_path, keyring())
    path.write_text(text)
    with pytest.raises(SecretError, match="'k2' is not in TRADEDB_ENCRYPTION_KEYS"):
        ledger.read_digests(tmp_path, keyring(drop_newest=True))
    env = ledger_db.db.env(TRADEDB_ENCRYPTION_KEYS=KEYS)
    missing = run_cli("audit", "verify", "--digests", str(tmp_path / "nope"), env=env)
    assert missing.returncode == DigestError.exit_code
    assert "does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_writers_do_not_wait_for_each_other(fresh_db: TestDatabase) -> None:
    """An audited transaction left open does not hold up another one (the old chain's lock did, until commit)."""
    with fresh_db.connect() as holder:
        holder.execute("INSERT INTO execution.accounts (account_id, name) VALUES ('OPEN', 'x')")
        outcome: list[object] = []

        def other() -> None:
            try:
                with psycopg.connect(fresh_db.url, options="-c statement_timeout=3000") as conn:
                    conn.execute("INSERT INTO execution.accounts (account_id, name) VALUES ('OTHER', 'x')")
                    conn.commit()
                outcome.append("committed")
            except psycopg.Error as exc:
                outcome.append(exc)

        thread = threading.Thread(target=other)
        thread.start()
        thread.join(timeout=10)
        assert outcome == ["committed"]
        holder.commit()
    with tradedb.connect(fresh_db.url, settings=fresh_db.settings) as db:
        assert ledger.seal(db) is not None
        assert ledger.verify(db).findings == []


def test_history_written_before_the_ledger_migrates_and_still_verifies(fresh_db: TestDatabase) -> None:
    migrate.downgrade("0014", settings=fresh_db.settings, url=fresh_db.url)
    with fresh_db.connect() as conn:
        for n in range(5):
            conn.execute("INSERT INTO execution.accounts (account_id, name) VALUES (%s, 'old')", (f"OLD-{n}",))
        conn.commit()
        chained = conn.execute("SELECT count(*) FROM shared.audit_log WHERE prev_hash IS NOT NULL").fetchone()
    assert chained is not None and int(str(chained[0])) >= 4
    migrate.upgrade(settings=fresh_db.settings, url=fresh_db.url)
    with tradedb.connect(fresh_db.url, settings=fresh_db.settings) as db:
        db.execute("INSERT INTO execution.accounts (account_id, name) VALUES ('NEW', 'new')")
        assert ledger.seal(db) is not None
        report = ledger.verify(db)
    assert report.legacy_rows >= 5 and report.findings == []
    with fresh_db.connect() as conn:
        old = conn.execute(
            "SELECT audit_id FROM shared.audit_log WHERE txid IS NULL ORDER BY audit_id DESC LIMIT 1"
        ).fetchone()
    assert old is not None
    owner_sql(fresh_db, ("UPDATE shared.audit_log SET app_user = 'mallory' WHERE audit_id = %s", old))
    assert findings(fresh_db) == [f"audit_id {old[0]}: row_hash does not match the row's content"]
    # Re-hashing the old chain is caught by block 0, which sealed the old chain's last hash.
    owner_sql(fresh_db, (REHASH_LEGACY_ROW, old))
    assert findings(fresh_db) == ["block 0: its hash does not match its contents"]

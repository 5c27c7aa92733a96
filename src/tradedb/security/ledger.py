"""The audit ledger: sealing committed audit rows into chained blocks, digests of the chain, and verification.

Writers hash each audit row on its own (no lock); ``seal`` groups the transactions committed since the last seal
into a block whose hash covers the block before it. A digest is the latest block's hash signed with a key from
``TRADEDB_ENCRYPTION_KEYS``, kept outside the database (a write-once folder): a ledger rewritten and re-hashed after
a digest was taken no longer matches it. ``verify`` recomputes every hash with SQL of its own (it trusts no
function stored in the audited database) and names each row, transaction and block that does not match.

On a Citus cluster every worker keeps a ledger of its own (the audited tables' triggers run on their shards):
``seal`` seals every node's, a digest names every node's latest block, and ``verify`` checks every node. The
workers are reached with the Database's login, at the addresses the coordinator's metadata gives them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from tradedb.db.connections import Connections
from tradedb.errors import DigestError, LedgerTampered, NodeUnavailable
from tradedb.security.secrets import Keyring
from tradedb.settings import with_host

DIGEST_FORMAT = "tradedb-audit-digest/1"
_PURPOSE = "audit digest"
#: Findings listed per kind before the rest are counted.
_SHOWN = 20

SEAL = "SELECT block_id, transactions, row_count, block_hash FROM shared.audit_seal()"

# The payload expressions of migrations 0002 (the chain before the ledger) and 0015 (ledger rows, which add txid),
# spelled here rather than called: a function in the audited database could be replaced along with the rows.
LEGACY_CHAIN = """
SELECT audit_id, prev_hash, row_hash, sha256(coalesce(prev_hash, '\\x'::bytea) || convert_to(concat_ws(E'\\x1f',
    audit_id::text, to_char(changed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'), table_schema, table_name,
    operation, coalesce(row_key::text, ''), coalesce(old_values::text, ''), coalesce(new_values::text, ''), db_user,
    coalesce(app_user, '')), 'UTF8'))
FROM shared.audit_log WHERE txid IS NULL ORDER BY audit_id
"""
#: One pass over the ledger rows: how many, and the ids of those whose content does not match their hash.
EDITED_ROWS = """
SELECT count(*), coalesce(array_agg(audit_id ORDER BY audit_id) FILTER (WHERE row_hash IS DISTINCT FROM
    sha256(convert_to(concat_ws(E'\\x1f', txid::text, audit_id::text,
    to_char(changed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'), table_schema, table_name, operation,
    coalesce(row_key::text, ''), coalesce(old_values::text, ''), coalesce(new_values::text, ''), db_user,
    coalesce(app_user, '')), 'UTF8'))), '{}')
FROM shared.audit_log WHERE txid IS NOT NULL
"""
TRANSACTIONS = """
WITH computed AS (
    SELECT txid, count(*) AS n,
           sha256(convert_to(txid::text, 'UTF8') || string_agg(row_hash, '\\x'::bytea ORDER BY audit_id)) AS h
    FROM shared.audit_log WHERE txid IS NOT NULL GROUP BY txid
)
SELECT coalesce(t.txid, c.txid) AS txid, t.block_id, t.row_count, c.n, t.tx_hash = c.h AS same
FROM shared.audit_transactions t FULL JOIN computed c ON c.txid = t.txid
WHERE t.txid IS NULL OR c.txid IS NULL OR t.row_count <> c.n OR t.tx_hash <> c.h
ORDER BY 1
"""
BLOCKS = """
SELECT b.block_id, b.prev_hash, b.block_hash, b.transactions, b.row_count, b.horizon, b.sealed_at,
       count(t.txid) AS found_transactions, coalesce(sum(t.row_count), 0) AS found_rows,
       coalesce(string_agg(t.tx_hash, '\\x'::bytea ORDER BY t.ordinal), '\\x'::bytea) AS tx_hashes,
       coalesce(array_agg(t.ordinal ORDER BY t.ordinal) FILTER (WHERE t.txid IS NOT NULL), '{}') AS ordinals
FROM shared.audit_blocks b LEFT JOIN shared.audit_transactions t ON t.block_id = b.block_id
GROUP BY b.block_id ORDER BY b.block_id
"""
#: The workers of a Citus coordinator (none on one server).
WORKERS = """
SELECT nodename || ':' || nodeport FROM pg_dist_node WHERE groupid > 0 AND noderole = 'primary' AND isactive
ORDER BY groupid
"""
LATEST_BLOCK = """
SELECT block_id, block_hash, sealed_at, (SELECT sum(row_count) FROM shared.audit_blocks) AS rows,
       current_database() AS database
FROM shared.audit_blocks ORDER BY block_id DESC LIMIT 1
"""


@dataclass(frozen=True)
class Sealed:
    """A block ``seal`` wrote."""

    block_id: int
    transactions: int
    rows: int
    block_hash: str


@dataclass
class LedgerReport:
    """What ``verify`` checked; ``findings`` names each mismatch (empty: the ledger is intact)."""

    rows: int = 0
    legacy_rows: int = 0
    transactions: int = 0
    blocks: int = 0
    unsealed_rows: int = 0
    digests: int = 0
    findings: list[str] = field(default_factory=list)


def seal(db: Connections) -> Sealed | None:
    """Seal the transactions committed since the last seal into a block; None when there were none.

    On a Citus cluster every worker's ledger is sealed too (``seal_workers``); the coordinator's block is returned.
    """
    row = db.fetch_one(SEAL, readonly=False)
    seal_workers(db)
    if row is None:
        return None
    return Sealed(row["block_id"], row["transactions"], row["row_count"], bytes(row["block_hash"]).hex())


def workers(db: Connections) -> list[str]:
    """The workers (``host:port``) whose ledgers belong to this database: none unless it is a Citus coordinator."""
    with db.connection() as conn:
        return workers_of(conn)


def workers_of(conn: psycopg.Connection[Any]) -> list[str]:
    """``workers``, asked on a connection to the database."""
    if conn.execute("SELECT to_regclass('pg_catalog.pg_dist_node')").fetchone() == (None,):
        return []
    return [str(r[0]) for r in conn.execute(WORKERS)]


def _on_node(conninfo: str, node: str, **kwargs: Any) -> psycopg.Connection[Any]:
    """A connection to ``node`` (``host:port``) with the login and options of ``conninfo`` and ``kwargs``."""
    host, _, port = node.rpartition(":")
    try:
        return psycopg.connect(with_host(conninfo, host, port), **kwargs)
    except psycopg.OperationalError as exc:
        raise NodeUnavailable(f"worker {node} of the Citus cluster is unreachable: {exc}", node=node) from None


def seal_workers(db: Connections) -> dict[str, Sealed | None]:
    """Seal the ledger of every worker of a Citus cluster; by worker, its new block (None: nothing to seal)."""
    with db.connection() as conn:
        return seal_workers_of(conn, db.options.conninfo, **db.options.kwargs)


def seal_workers_of(conn: psycopg.Connection[Any], conninfo: str, **kwargs: Any) -> dict[str, Sealed | None]:
    """``seal_workers``, the workers found on ``conn`` and reached with ``conninfo``'s login (and ``kwargs``)."""
    out: dict[str, Sealed | None] = {}
    for node in workers_of(conn):
        with _on_node(conninfo, node, autocommit=True, **kwargs) as on_node:
            row = on_node.execute(SEAL).fetchone()
            out[node] = None if row is None else Sealed(row[0], row[1], row[2], bytes(row[3]).hex())
    return out


def block_hash(prev: bytes | None, block_id: int, transactions: int, rows: int, tx_hashes: bytes) -> bytes:
    """The hash of a block, as ``shared.audit_seal`` computes it."""
    head = f"{block_id}|{transactions}|{rows}|".encode()
    return hashlib.sha256((prev or b"") + head + tx_hashes).digest()


def legacy_hash(rows: int, last: bytes | None) -> bytes:
    """The hash of block 0: the length and last hash of the chain written before the ledger."""
    return hashlib.sha256(f"tradedb legacy chain|{rows}|".encode() + (last or b"")).digest()


def _signed_fields(digest: dict[str, Any]) -> bytes:
    return json.dumps({k: v for k, v in digest.items() if k != "signature"}, sort_keys=True).encode()


def digest(db: Connections, keyring: Keyring, *, seal_first: bool = True) -> dict[str, Any]:
    """Seal what is committed, then return the latest block's digest signed with the newest key (HMAC-SHA256 with
    a key derived for digests). On a Citus cluster, ``nodes`` holds every worker's latest block too."""
    if seal_first:
        seal(db)
    row = db.fetch_one(LATEST_BLOCK, readonly=False)
    if row is None:
        raise DigestError("the audit ledger has no block yet: run `tradedb migrate upgrade` (revision 0015)")
    kid, key = keyring.mac_key(_PURPOSE)
    document: dict[str, Any] = {
        "format": DIGEST_FORMAT,
        "database": row["database"],
        "block_id": row["block_id"],
        "block_hash": bytes(row["block_hash"]).hex(),
        "rows": int(row["rows"]),
        "sealed_at": row["sealed_at"].isoformat(),
        "key_id": kid,
    }
    nodes = {}
    for node in workers(db):
        with _on_node(db.options.conninfo, node, **db.options.kwargs) as conn:
            latest = conn.execute(LATEST_BLOCK).fetchone()
        if latest is None:
            raise DigestError(f"worker {node} has no audit ledger: run `tradedb setup` against the coordinator")
        nodes[node] = {"block_id": latest[0], "block_hash": bytes(latest[1]).hex(), "rows": int(latest[3])}
    if nodes:
        document["nodes"] = nodes
    document["signature"] = hmac.new(key, _signed_fields(document), hashlib.sha256).hexdigest()
    return document


def write_digest(document: dict[str, Any], folder: Path) -> Path:
    """Write a digest into ``folder`` as a new file (never over an existing one); return its path."""
    if not folder.is_dir():
        raise DigestError(f"digest folder {folder} does not exist (or is not a folder)")
    path = folder / f"audit-digest-{document['database']}-{document['block_id']:012d}.json"
    try:
        with path.open("x", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2, sort_keys=True)
            handle.write("\n")
    except FileExistsError:
        raise DigestError(f"{path} exists already: digests are written once") from None
    return path


def read_digests(folder: Path, keyring: Keyring) -> list[tuple[Path, dict[str, Any]]]:
    """Read and authenticate every digest in ``folder``; a missing folder, an empty one, a malformed file or a
    signature that does not match raises DigestError naming the file."""
    if not folder.is_dir():
        raise DigestError(f"digest folder {folder} does not exist (or is not a folder)")
    found = []
    for path in sorted(folder.glob("*.json")):
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            kid, block_id, signature = document["key_id"], document["block_id"], document["signature"]
            bytes.fromhex(document["block_hash"])
            for _, block in _nodes(document):
                int(block["block_id"])
                bytes.fromhex(block["block_hash"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DigestError(f"digest {path} is not a tradedb audit digest ({type(exc).__name__})") from None
        if document.get("format") != DIGEST_FORMAT or not isinstance(block_id, int):
            raise DigestError(f"digest {path} is not a tradedb audit digest (format {document.get('format')!r})")
        _, key = keyring.mac_key(_PURPOSE, kid)
        expected = hmac.new(key, _signed_fields(document), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, str(signature)):
            raise DigestError(
                f"digest {path}: the signature does not match (the file was edited, or signed with "
                f"another key than {kid!r})"
            )
        found.append((path, document))
    if not found:
        raise DigestError(f"digest folder {folder} holds no digest (*.json)")
    return found


def verify(db: Connections, *, digests: list[tuple[Path, dict[str, Any]]] | None = None) -> LedgerReport:
    """Recompute the ledger: the chain before it, each row, each sealed transaction and each block, then compare
    the blocks with ``digests`` (from ``read_digests``). Raise LedgerTampered naming what differs. On a Citus
    cluster every worker's ledger is checked too (its findings name the worker)."""
    report = LedgerReport()
    with db.connection() as conn:
        stored = {"": _verify_node(conn, report, "")}
    for node in workers(db):
        with _on_node(db.options.conninfo, node, **db.options.kwargs) as conn:
            stored[node] = _verify_node(conn, report, f"worker {node}: ")
    findings = report.findings
    for path, document in digests or []:
        report.digests += 1
        signed = [("", document["block_id"], document["block_hash"], document.get("sealed_at"))]
        signed += [(n, b["block_id"], b["block_hash"], document.get("sealed_at")) for n, b in _nodes(document)]
        for node, block_id, block_hash, sealed_at in signed:
            where = f"worker {node}: " if node else ""
            blocks = stored.get(node)
            if blocks is None:
                findings.append(f"digest {path.name}: worker {node} is not a node of the cluster any more")
            elif block_id not in blocks:
                findings.append(
                    f"digest {path.name}: {where}block {block_id} is not in the ledger (truncated or rewritten)"
                )
            elif blocks[block_id] != bytes.fromhex(block_hash):
                findings.append(
                    f"digest {path.name}: {where}block {block_id} hashes differently than when the digest was taken "
                    f"({sealed_at}): the ledger was rewritten"
                )
    if findings:
        raise LedgerTampered(f"the audit ledger does not verify: {len(findings)} finding(s)", report=report)
    return report


def _nodes(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """A digest's workers and their latest blocks (a digest of one server has none)."""
    return list(document.get("nodes", {}).items())


def _verify_node(conn: Any, total: LedgerReport, where: str) -> dict[int, bytes]:
    """Check one node's ledger, adding its counts and findings (prefixed with ``where``) to ``total``; return its
    blocks' stored hashes by block id."""
    report = LedgerReport()
    findings = report.findings
    legacy_last = _legacy_chain(conn, report)
    counted = conn.execute(EDITED_ROWS).fetchone()
    assert counted is not None
    report.rows = report.legacy_rows + int(counted[0])
    edited: list[int] = counted[1]
    findings.extend(f"audit_id {a}: its content does not match its row_hash (edited)" for a in edited[:_SHOWN])
    _more(findings, len(edited), "edited rows")
    blocks = conn.execute(BLOCKS).fetchall()
    horizon = max((b[5] for b in blocks), default=0)
    problems = conn.execute(TRANSACTIONS).fetchall()
    report.transactions = sum(b[7] for b in blocks)
    unsealed = [p for p in problems if p[1] is None and p[0] >= horizon]
    report.unsealed_rows = sum(p[3] for p in unsealed)
    shown = 0
    for txid, block_id, sealed_rows, found_rows, same in problems:
        if block_id is None and txid >= horizon:
            continue  # committed after the last seal: the next seal takes it
        shown += 1
        if shown > _SHOWN:
            continue
        if block_id is None:
            findings.append(
                f"transaction {txid}: {found_rows} audit row(s) that no seal took although the transaction ended "
                f"before the last seal (inserted)"
            )
        elif found_rows is None:
            findings.append(f"transaction {txid} (block {block_id}): all {sealed_rows} of its rows are gone (deleted)")
        elif sealed_rows != found_rows:
            change = "deleted" if found_rows < sealed_rows else "inserted"
            findings.append(
                f"transaction {txid} (block {block_id}): {found_rows} row(s) where {sealed_rows} were sealed ({change})"
            )
        elif not same:
            findings.append(
                f"transaction {txid} (block {block_id}): its rows hash differently than when sealed (edited, "
                f"reordered or replaced)"
            )
    _more(findings, shown, "transactions that differ")
    report.blocks = len(blocks)
    stored = _check_blocks(blocks, legacy_last, report)
    total.rows += report.rows
    total.legacy_rows += report.legacy_rows
    total.transactions += report.transactions
    total.blocks += report.blocks
    total.unsealed_rows += report.unsealed_rows
    total.findings += [where + finding for finding in findings]
    return stored


def _legacy_chain(conn: Any, report: LedgerReport) -> bytes | None:
    """Check the chain written before the ledger, row by row; return its last hash."""
    previous: bytes | None = None
    with conn.cursor(name="tradedb_audit_legacy") as cursor:
        cursor.itersize = 5000
        cursor.execute(LEGACY_CHAIN)
        broken = False
        for audit_id, prev_hash, row_hash, computed in cursor:
            report.legacy_rows += 1
            prev = bytes(prev_hash) if prev_hash is not None else None
            if not broken and prev != previous:
                report.findings.append(f"audit_id {audit_id}: prev_hash does not match the previous row's hash")
                broken = True
            if not broken and (row_hash is None or bytes(row_hash) != bytes(computed)):
                report.findings.append(f"audit_id {audit_id}: row_hash does not match the row's content")
                broken = True
            previous = bytes(row_hash) if row_hash is not None else None
    return previous


def _check_blocks(blocks: list[tuple[Any, ...]], legacy_last: bytes | None, report: LedgerReport) -> dict[int, bytes]:
    """Recompute each block's hash and link; return the stored hashes by block id."""
    stored: dict[int, bytes] = {}
    previous: bytes | None = None
    for expected_id, block in enumerate(blocks):
        block_id, prev_hash, hash_, transactions, rows, _, _, found_tx, found_rows, tx_hashes, ordinals = block
        here = bytes(hash_)
        stored[block_id] = here
        if block_id != expected_id:
            report.findings.append(f"block {block_id} is where block {expected_id} should be (blocks out of order)")
        if block_id == 0:
            computed = legacy_hash(report.legacy_rows, legacy_last)
            if rows != report.legacy_rows:
                report.findings.append(
                    f"block 0 sealed {rows} row(s) of the chain before the ledger, {report.legacy_rows} are there"
                )
        else:
            computed = block_hash(previous, block_id, transactions, rows, bytes(tx_hashes))
            if (found_tx, found_rows) != (transactions, rows):
                report.findings.append(
                    f"block {block_id}: {found_tx} transaction(s) and {found_rows} row(s) where {transactions} and "
                    f"{rows} were sealed"
                )
            if list(ordinals) != list(range(1, len(ordinals) + 1)):
                report.findings.append(f"block {block_id}: its transactions' ordinals are not 1..{len(ordinals)}")
        if (bytes(prev_hash) if prev_hash is not None else None) != previous:
            report.findings.append(f"block {block_id}: prev_hash is not the hash of block {block_id - 1}")
        if computed != here:
            report.findings.append(f"block {block_id}: its hash does not match its contents")
        previous = here
    if not blocks:
        report.findings.append("the audit ledger has no block: block 0 is missing")
    return stored


def _more(findings: list[str], count: int, what: str) -> None:
    if count > _SHOWN:
        findings.append(f"... and {count - _SHOWN} more {what}")

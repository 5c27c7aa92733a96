"""``tradedb roles``, ``audit ...``, ``secrets ...``."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tradedb.cli._common import _cell, _database, _settings, app, err, out, secrets_app
from tradedb.errors import DigestError, LedgerTampered
from tradedb.schema import SERVICE_SCHEMAS
from tradedb.schema import privileges as roles_module
from tradedb.security import audit as audit_module
from tradedb.security import ledger, rls
from tradedb.security import secrets as crypto


@app.command("roles")
def roles_matrix() -> None:
    """Print the live privilege matrix: role x schema x privilege (S select, I insert, U update, D delete)."""
    settings = _settings()
    with _database() as db, db.connection() as conn:
        live = roles_module.live_table_privileges(conn, settings.role_prefix)
        protected = rls.protected_tables(conn)
    schemas = list(SERVICE_SCHEMAS)
    table = Table("role", *schemas, title="privileges per schema (lower case: on some tables only)")
    for role in roles_module.SERVICE_ROLES:
        name = roles_module.role_name(settings.role_prefix, role.service)
        cells = []
        for schema in schemas:
            sets = [p for (r, t), p in live.items() if r == name and t.startswith(schema + ".")]
            letters = ""
            for privilege in roles_module.PRIVILEGES:
                held = sum(privilege in p for p in sets)
                letters += privilege[0] if sets and held == len(sets) else privilege[0].lower() if held else ""
            cells.append(letters or "-")
        table.add_row(name, *cells)
    out.print(table)
    out.print("row-level security by account on: " + ", ".join(protected))


audit_app = typer.Typer(
    help="The audit trail (shared.audit_log) and its ledger: seal, digest, verify.", no_args_is_help=True
)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify(
    digests: Annotated[
        Path | None,
        typer.Option(help="Also compare the ledger with the digests in this folder (from `audit digest --out`)."),
    ] = None,
) -> None:
    """Recompute every audit row, transaction and block hash (and compare with digests); name each mismatch and
    exit 1 when there is one."""
    settings = _settings()
    documents = ledger.read_digests(digests, crypto.Keyring.from_settings(settings)) if digests else None
    with _database() as db:
        try:
            report = ledger.verify(db, digests=documents)
        except LedgerTampered as exc:
            err.print(exc.message)
            for finding in exc.report.findings:
                err.print(f"  {finding}", highlight=False)
            raise typer.Exit(1) from None
    checked = f", {report.digests} digest(s) match" if documents else ""
    pending = f"; {report.unsealed_rows} row(s) not sealed yet" if report.unsealed_rows else ""
    out.print(
        f"ok: {report.rows} audit row(s) in {report.transactions} transaction(s) and {report.blocks} block(s), "
        f"every hash matches{checked}{pending}"
    )


@audit_app.command("seal")
def audit_seal() -> None:
    """Seal the transactions committed since the last seal into a block of the ledger (maintain does it too)."""
    with _database() as db:
        sealed = ledger.seal(db)
    if sealed is None:
        out.print("nothing to seal: no transaction committed audit rows since the last seal")
        return
    out.print(
        f"sealed block {sealed.block_id}: {sealed.transactions} transaction(s), {sealed.rows} row(s), "
        f"hash {sealed.block_hash}"
    )


@audit_app.command("digest")
def audit_digest(
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Write the digest as a new file in this folder (meant for write-once storage)."),
    ] = None,
) -> None:
    """Seal, then print (or write) the latest block's digest, signed with the newest TRADEDB_ENCRYPTION_KEYS key."""
    keyring = crypto.Keyring.from_settings(_settings())
    if out_dir is not None and not out_dir.is_dir():
        raise DigestError(f"digest folder {out_dir} does not exist (or is not a folder)")
    with _database() as db:
        document = ledger.digest(db, keyring)
    if out_dir is None:
        sys.stdout.write(json.dumps(document, indent=2, sort_keys=True) + "\n")
        return
    path = ledger.write_digest(document, out_dir)
    out.print(f"digest of block {document['block_id']} written to {path}")


@audit_app.command("show")
def audit_show(
    table: Annotated[str | None, typer.Option(help="Only this table (schema.table).")] = None,
    since: Annotated[
        datetime | None,
        typer.Option(
            help="Only changes at or after this time (ISO 8601, with zone).",
            formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z"],
        ),
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
) -> None:
    """List audited changes, newest first."""
    with _database() as db:
        rows = audit_module.changes(db, table=table, since=since, limit=limit)
    out_table = Table("id", "at", "table", "op", "key", "db user", "app user", title=f"{len(rows)} change(s)")
    for r in rows:
        out_table.add_row(
            str(r["audit_id"]),
            _cell(r["changed_at"]),
            f"{r['table_schema']}.{r['table_name']}",
            r["operation"],
            json.dumps(r["row_key"]),
            _cell(r["db_user"]),
            _cell(r["app_user"]),
        )
    out.print(out_table)


@secrets_app.command("generate-key")
def secrets_generate_key(key_id: Annotated[str, typer.Option(help="Id for the new key.")] = "k1") -> None:
    """Print a new random AES-256 key as an entry for TRADEDB_ENCRYPTION_KEYS (store it in your secret store)."""
    out.print(f"{key_id}:{crypto.generate_key()}", highlight=False)


@secrets_app.command("set")
def secrets_set(
    key: Annotated[str, typer.Argument(help="The shared.system_config key.")],
    description: Annotated[str | None, typer.Option(help="What the secret is for.")] = None,
) -> None:
    """Store a secret read from standard input (never from the command line), encrypted."""
    value = sys.stdin.read().rstrip("\n")
    with _database() as db:
        kid = crypto.set_secret(db, key, value, description=description)
    out.print(f"stored {key} encrypted with key {kid}")


@secrets_app.command("list")
def secrets_list() -> None:
    """List the stored secrets and the key each is encrypted with (never their values)."""
    with _database() as db:
        rows = crypto.list_secrets(db)
    table = Table("kind", "name", "key id", "updated", title=f"{len(rows)} secret(s)")
    for r in rows:
        table.add_row(r["kind"], r["name"], _cell(r["key_id"]), _cell(r["updated_at"]))
    out.print(table)


@secrets_app.command("rotate")
def secrets_rotate() -> None:
    """Re-encrypt every secret with the newest key of TRADEDB_ENCRYPTION_KEYS."""
    with _database() as db:
        changed = crypto.rotate(db)
        newest = crypto.Keyring.from_settings(db.settings).newest
    out.print(f"re-encrypted {changed} secret(s) with key {newest}")
